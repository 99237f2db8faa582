package lab

import "github.com/twmb/franz-go/pkg/kgo"

// brokers is where a scenario's clients connect: the bootstrap addresses
// and, against an external cluster that requires them, the security
// options (TLS, SASL) of --command-config.
type brokers struct {
	addrs []string
	sec   []kgo.Opt
}

// opts are a client's options: the seeds, then opts, then the security
// options (last, so a workload cannot drop them).
func (b brokers) opts(opts ...kgo.Opt) []kgo.Opt {
	out := append([]kgo.Opt{kgo.SeedBrokers(b.addrs...)}, opts...)
	return append(out, b.sec...)
}

// client opens a client with b.opts(opts...).
func (b brokers) client(opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(b.opts(opts...)...)
}
