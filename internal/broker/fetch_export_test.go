package broker

// SetAfterFetchRead installs f to run after each fetch's first read of its
// partitions, before the fetch decides whether to wait (nil removes it).
func SetAfterFetchRead(b *Broker, f func()) {
	if f == nil {
		b.afterFetchRead.Store(nil)
		return
	}
	b.afterFetchRead.Store(&f)
}
