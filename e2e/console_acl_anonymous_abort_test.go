package e2e

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The console honours ACLs whenever an authorizer is configured, not only
// when it asks for a login: on a broker with an authorizer and only a
// PLAINTEXT listener, the console acts as User:ANONYMOUS, as any client
// of that listener does. Its reads go through the broker's ACL checks;
// its transaction abort runs in-process and must be checked the same
// way: it needs Write on the TransactionalId (what the producer itself
// needs to end or fence the transaction). Here User:ANONYMOUS may only
// Describe the transactional id. The correct outcome: the abort is
// refused with 403 and the transaction stays Ongoing.
func TestConsoleAbortWithoutALoginStillNeedsWriteOnTheTransactionalID(t *testing.T) {
	admin := "127.0.0.1:" + strconv.Itoa(freePortRange(t, 1))
	b, _ := startBroker(t, map[string]string{
		"listeners":                      "PLAINTEXT://127.0.0.1:0",
		"authorizer.class.name":          "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"allow.everyone.if.no.acl.found": "true",
		"admin.listeners":                admin,
	})
	addr := b.Addr()
	ctx := testCtx(t)
	adm := newAdmin(t, addr)
	createTopic(t, adm, "guarded", 1, nil)
	prod := newClient(t, addr, kgo.TransactionalID("guarded-txn"), kgo.DefaultProduceTopic("guarded"))
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("held")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	d, err := adm.DescribeTransactions(ctx, "guarded-txn")
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"id": {"guarded-txn"}, "producer_id": {strconv.FormatInt(d["guarded-txn"].ProducerID, 10)},
		"epoch": {strconv.Itoa(int(d["guarded-txn"].ProducerEpoch))}, "start": {strconv.FormatInt(d["guarded-txn"].StartTimestamp, 10)},
		"confirm": {"yes"}}

	// From now on User:ANONYMOUS may describe the transactional id, and
	// do nothing else with it.
	created, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:ANONYMOUS").AllowHosts("*").
		TransactionalIDs("guarded-txn").Operations(kadm.OpDescribe))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range created {
		if c.Err != nil {
			t.Fatal(c.Err)
		}
	}
	// The ACL is in force: User:ANONYMOUS's own InitProducerId for the id
	// (which needs Write) is refused.
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID, init.TransactionTimeoutMillis = kmsg.StringPtr("guarded-txn"), 60000
	resp, err := newClient(t, addr).Request(ctx, init)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.InitProducerIDResponse).ErrorCode; code != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Fatalf("InitProducerId of guarded-txn by User:ANONYMOUS: %v, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", kerr.ErrorForCode(code))
	}

	code, body := consolePost(t, admin, "/transactions/abort", form, nil)
	if code != http.StatusForbidden {
		t.Errorf("abort by User:ANONYMOUS, who may only Describe guarded-txn: %d, want 403:\n%s", code, body)
	}
	d, err = adm.DescribeTransactions(ctx, "guarded-txn")
	if err != nil {
		t.Fatal(err)
	}
	if st := d["guarded-txn"].State; st != "Ongoing" {
		t.Errorf("after the abort User:ANONYMOUS may not make, guarded-txn is %s, want Ongoing", st)
	}
}
