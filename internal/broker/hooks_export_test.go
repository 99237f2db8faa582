package broker

// Test hooks, set through these functions from the external test package.

// SetAfterFetchRead installs f to run after each fetch's first read of its
// partitions, before the fetch decides whether to wait (nil removes it).
func SetAfterFetchRead(b *Broker, f func()) {
	if f == nil {
		b.afterFetchRead.Store(nil)
		return
	}
	b.afterFetchRead.Store(&f)
}

// SetBeforeProducePartition installs f to run before each partition of a
// produce request is looked up (nil removes it).
func SetBeforeProducePartition(b *Broker, f func(topic string, partition int32)) {
	if f == nil {
		b.beforeProducePartition.Store(nil)
		return
	}
	b.beforeProducePartition.Store(&f)
}
