package broker

import "github.com/weir-broker/weir/internal/txn"

// SetAfterTxnVerify installs f to run after the transaction coordinator
// confirms a transactional write to a partition and before the write is
// appended (nil removes it).
func SetAfterTxnVerify(b *Broker, f func(tp txn.TopicPartition)) {
	if f == nil {
		b.txns.afterVerify.Store(nil)
		return
	}
	b.txns.afterVerify.Store(&f)
}
