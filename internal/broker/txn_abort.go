package broker

// An operator's abort of a hanging transaction, for the admin console.
// Kafka's kafka-transactions.sh abort writes ABORT markers to one
// partition (KIP-664), which leaves the coordinator thinking the
// transaction open until it times out; here the coordinator that holds
// the transaction aborts it as it aborts a timed-out one: the epoch is
// bumped (the producer is fenced) and ABORT markers go to every partition
// and group of it.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/acl"
	"github.com/weir-broker/weir/internal/txn"
)

// AbortTransaction aborts transactional id's open transaction if it is
// still the one under producerID and epoch begun at startMs (the start
// DescribeTransactions reports), and returns once its markers are
// durable. INVALID_TXN_STATE means that transaction is no longer open;
// NOT_COORDINATOR means another node coordinates id.
func (b *Broker) AbortTransaction(id string, producerID int64, epoch int16, startMs int64) error {
	s, code := b.coordinatorFor(id)
	if code != 0 {
		return kerr.ErrorForCode(code)
	}
	return s.do(txn.Abort{TransactionalID: id, ProducerID: producerID, ProducerEpoch: epoch, StartMs: startMs}).Err
}

// Allowed reports whether principal, connecting from host, may do op on
// the resource under the ACLs in force: always, when no authorizer is
// configured. The console asks it for what it does in-process.
func (b *Broker) Allowed(principal, host string, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	return b.authorizer().Allowed(principal, acl.CanonicalHost(host), op, rt, name)
}
