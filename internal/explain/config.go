package explain

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Commit is when a consumer's offsets are committed relative to
// processing the records they cover.
type Commit int

// Commit timings.
const (
	// CommitAuto: the client commits what it fetched on a timer.
	CommitAuto Commit = iota
	// CommitBefore: offsets are committed, then the records processed.
	CommitBefore
	// CommitAfter: records are processed, then their offsets committed.
	CommitAfter
	// CommitInTransaction: offsets are committed in the transaction that
	// writes the processing's output (sendOffsetsToTransaction, KIP-447).
	CommitInTransaction
)

// String is the weir.commit value of c.
func (c Commit) String() string {
	switch c {
	case CommitBefore:
		return "before-processing"
	case CommitAfter:
		return "after-processing"
	case CommitInTransaction:
		return "transaction"
	}
	return "auto"
}

// Input is a configuration as given: properties by layer in any spelling
// the client accepts.
type Input struct {
	Client   Client
	Producer map[string]string
	Consumer map[string]string
	// Topic holds replication.factor, min.insync.replicas and
	// unclean.leader.election.enable: read from the topic or assumed.
	Topic map[string]string
}

// Config is a configuration resolved to the settings that decide the
// guarantee, each client's defaults applied.
type Config struct {
	Client Client

	Acks            int // -1 (all), 0 or 1
	Idempotent      bool
	Transactional   bool
	Retries         int64
	DeliveryTimeout int64 // milliseconds; 0: none
	MaxInFlight     int64
	// Linger, RequestTimeout and RetryBackoff (milliseconds) decide how
	// long one retry takes (KIP-91).
	Linger, RequestTimeout, RetryBackoff int64
	// AllowCancel is franz-go's AllowIdempotentProduceCancellation.
	AllowCancel bool

	ReplicationFactor int
	MinInsyncReplicas int
	UncleanElection   bool

	AutoCommit bool
	// AutoCommitsUnprocessed: auto-commit commits records as soon as
	// they are handed to the application, processed or not (librdkafka
	// with enable.auto.offset.store=true, franz-go's GreedyAutoCommit),
	// rather than what earlier polls returned (Java, franz-go's default).
	AutoCommitsUnprocessed bool
	Commit                 Commit
	Dedup                  bool
	ReadCommitted          bool

	// Notes are assumptions made and adjustments a client makes on its own.
	Notes []string
}

// AcksName is acks as Kafka spells it.
func (c *Config) AcksName() string {
	if c.Acks == -1 {
		return "all"
	}
	return strconv.Itoa(c.Acks)
}

// OneRetryMs is the shortest delivery timeout that leaves time for one
// retry after an unanswered request: request.timeout.ms +
// retry.backoff.ms + linger.ms (KIP-91). franz-go's idempotent producer
// never fails a record that is in flight unless AllowCancel: only one
// answered with an error, so there a retry needs only its backoff and
// linger.
func (c *Config) OneRetryMs() int64 {
	if c.Client == FranzGo && c.Idempotent && !c.AllowCancel {
		return c.RetryBackoff + c.Linger
	}
	return c.RequestTimeout + c.RetryBackoff + c.Linger
}

// NoRetryInTime reports whether the delivery timeout runs out before a
// record can be retried once: the producer then fails records as with
// retries=0.
func (c *Config) NoRetryInTime() bool {
	return c.DeliveryTimeout > 0 && c.DeliveryTimeout < c.OneRetryMs()
}

// layerProps is one layer's properties in canonical spelling, and which
// of them were given rather than defaulted.
type layerProps struct {
	v     map[string]string
	given map[string]bool
}

// normalize maps a layer's properties to canonical names. Unknown names
// go to ignored: most of a client's properties have no bearing on the
// guarantee (serializers, buffer sizes). So do the other client's
// settings: one client.properties is often handed to both, and the
// clients start with it (librdkafka warns "is a consumer property and
// will be ignored by this producer instance"; Java logs "supplied but
// isn't a known config"). librdkafka refuses a name it does not know at
// all, so for it such a name is an error.
func normalize(c Client, layer Layer, in map[string]string) (layerProps, []string, error) {
	p := layerProps{v: map[string]string{}, given: map[string]bool{}}
	var ignored []string
	spelled := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(in)) {
		raw := strings.TrimSpace(in[k])
		a, ok := canonical(c, k)
		if !ok {
			if c == Librdkafka && !librdkafkaKnows(k) && layer != Topic {
				return p, nil, fmt.Errorf("no such configuration property %s: librdkafka refuses to start with it", k)
			}
			ignored = append(ignored, k)
			continue
		}
		if l, known := layerOf(a.key); known && l != layer {
			if layer == Topic {
				return p, nil, fmt.Errorf("%s is a %s setting, not a %s one", k, l, layer)
			}
			ignored = append(ignored, fmt.Sprintf("%s (a %s setting)", k, l))
			continue
		}
		v := raw
		switch {
		case a.duration:
			d, err := time.ParseDuration(raw)
			if err != nil || d < 0 {
				return p, nil, fmt.Errorf("invalid %s %q: want a duration such as 30s", k, raw)
			}
			v = strconv.FormatInt(d.Milliseconds(), 10)
		case a.invert:
			b, err := parseBool(k, raw)
			if err != nil {
				return p, nil, err
			}
			v = strconv.FormatBool(!b)
		}
		if prev, dup := spelled[a.key]; dup && p.v[a.key] != v {
			return p, nil, fmt.Errorf("%s and %s both set %s, to different values", prev, k, a.key)
		}
		spelled[a.key] = k
		p.v[a.key], p.given[a.key] = v, true
	}
	return p, ignored, nil
}

// librdkafkaKnows reports whether a librdkafka-based client accepts the
// property name k: librdkafka's own, or one of the settings the Go and
// .NET wrappers read themselves (go.delivery.reports,
// dotnet.producer.enable.delivery.reports) before handing the rest on.
func librdkafkaKnows(k string) bool {
	if _, ok := librdkafkaProperties[k]; ok {
		return true
	}
	return strings.HasPrefix(k, "go.") || strings.HasPrefix(k, "dotnet.")
}

func parseBool(key, s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("invalid %s %q: want true or false", key, s)
}

func parseCount(key, s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid %s %q: want a whole number, 0 or more", key, s)
	}
	return n, nil
}

// parseAcks reads acks: all or -1, 1, 0, and franz-go's names.
func parseAcks(s string) (int, error) {
	switch strings.ToLower(s) {
	case "all", "-1", "allisracks":
		return -1, nil
	case "1", "leaderack":
		return 1, nil
	case "0", "noack":
		return 0, nil
	}
	return 0, fmt.Errorf("invalid acks %q: want all (or -1), 1 or 0", s)
}

// parseIsolation reads isolation.level, and franz-go's names.
func parseIsolation(s string) (readCommitted bool, err error) {
	switch strings.ToLower(s) {
	case "read_committed", "readcommitted":
		return true, nil
	case "read_uncommitted", "readuncommitted":
		return false, nil
	}
	return false, fmt.Errorf("invalid isolation.level %q: want read_committed or read_uncommitted", s)
}

func parseCommit(s string) (Commit, error) {
	switch strings.ToLower(s) {
	case "auto":
		return CommitAuto, nil
	case "before-processing", "before":
		return CommitBefore, nil
	case "after-processing", "after":
		return CommitAfter, nil
	case "transaction":
		return CommitInTransaction, nil
	}
	return 0, fmt.Errorf("invalid weir.commit %q: want before-processing, after-processing or transaction", s)
}

// Resolved is a resolved configuration and the properties it ignored.
type Resolved struct {
	Config
	Ignored []string
}

// Resolve applies the client's defaults to in and reads every setting.
// The error is one line naming the property at fault, including the
// combinations the client itself refuses to start with.
func Resolve(in Input) (*Resolved, error) {
	c := in.Client
	prod, ignP, err := normalize(c, Producer, in.Producer)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	cons, ignC, err := normalize(c, Consumer, in.Consumer)
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	top, ignT, err := normalize(c, Topic, in.Topic)
	if err != nil {
		return nil, fmt.Errorf("topic: %w", err)
	}
	if len(ignT) > 0 {
		return nil, fmt.Errorf("topic: unknown setting %s: want replication.factor, min.insync.replicas or unclean.leader.election.enable", ignT[0])
	}
	r := &Resolved{Config: Config{Client: c}}
	for _, k := range ignP {
		r.Ignored = append(r.Ignored, "producer "+k)
	}
	for _, k := range ignC {
		r.Ignored = append(r.Ignored, "consumer "+k)
	}
	get := func(p layerProps, k string, def map[string]string) string {
		if v, ok := p.v[k]; ok {
			return v
		}
		return def[k]
	}
	if err := r.resolveProducer(prod, func(k string) string { return get(prod, k, defaults[c]) }); err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	if err := r.resolveTopic(func(k string) string { return get(top, k, topicDefaults) }, top.given); err != nil {
		return nil, fmt.Errorf("topic: %w", err)
	}
	if err := r.resolveConsumer(cons, func(k string) string { return get(cons, k, defaults[c]) }); err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	return r, nil
}

func (r *Resolved) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *Resolved) resolveProducer(p layerProps, get func(string) string) error {
	var err error
	if r.Acks, err = parseAcks(get(keyAcks)); err != nil {
		return err
	}
	if r.Idempotent, err = parseBool(keyIdempotence, get(keyIdempotence)); err != nil {
		return err
	}
	for _, n := range []struct {
		key  string
		into *int64
	}{
		{keyRetries, &r.Retries}, {keyDeliveryTimeout, &r.DeliveryTimeout}, {keyMaxInFlight, &r.MaxInFlight},
		{keyLinger, &r.Linger}, {keyRequestTimeout, &r.RequestTimeout}, {keyRetryBackoff, &r.RetryBackoff},
	} {
		if *n.into, err = parseCount(n.key, get(n.key)); err != nil {
			return err
		}
	}
	if v := get(keyAllowCancel); v != "" {
		if r.AllowCancel, err = parseBool(keyAllowCancel, v); err != nil {
			return err
		}
	}
	txnID := strings.TrimSpace(get(keyTransactionalID))
	r.Transactional = txnID != ""
	if r.Client == FranzGo && p.given[keyTransactionalID] && txnID == "" {
		return errors.New("TransactionalID is empty: franz-go refuses to start (\"invalid empty transactional id\"); leave it out for no transactions")
	}
	if err := r.checkDeliveryTimeout(p); err != nil {
		return err
	}
	explicit := p.given[keyIdempotence]
	// Only settings the configuration gives can conflict: each client
	// adjusts its own defaults (librdkafka's max.in.flight of 1000000
	// becomes 5) when idempotence is on.
	conflict := ""
	switch {
	case p.given[keyAcks] && r.Acks != -1:
		conflict = "acks=" + r.AcksName()
	case p.given[keyRetries] && r.Retries == 0 && r.Client != FranzGo:
		// kgo enforces RecordRetries on an idempotent producer only where
		// it is safe, and starts with RecordRetries(0).
		conflict = "retries=0"
	case p.given[keyMaxInFlight] && r.Client == FranzGo && r.MaxInFlight != 1:
		// kgo refuses any other value when idempotent ("invalid usage of
		// MaxProduceRequestsInflightPerBroker with idempotency enabled").
		conflict = fmt.Sprintf("MaxProduceRequestsInflightPerBroker=%d", r.MaxInFlight)
	case p.given[keyMaxInFlight] && r.MaxInFlight > 5:
		conflict = fmt.Sprintf("%s=%d", keyMaxInFlight, r.MaxInFlight)
	}
	if r.Transactional && !r.Idempotent && !explicit && r.Client == Librdkafka {
		// librdkafka enables idempotence for a transactional producer.
		r.Idempotent = true
		r.note("transactional.id turns enable.idempotence on (librdkafka)")
	}
	if r.Idempotent && conflict != "" {
		switch {
		case explicit || r.Transactional:
			// Every client refuses to start: Java's ProducerConfig throws a
			// ConfigException, librdkafka fails producer instantiation,
			// kgo.NewClient returns "idempotency requires acks=all".
			return fmt.Errorf("enable.idempotence=true (or a transactional.id) cannot be combined with %s: the %s client refuses to start", conflict, r.Client)
		case r.Client == FranzGo:
			return fmt.Errorf("%s needs DisableIdempotentWrite (enable.idempotence=false): franz-go writes idempotently by default and refuses to start otherwise", conflict)
		default:
			// Java 3.2+ (KAFKA-13673, backported to 3.0.2/3.1.1): a
			// conflicting setting turns the default idempotence off.
			r.Idempotent = false
			r.note("%s turns the Java client's default enable.idempotence=true off (KAFKA-13673)", conflict)
		}
	}
	if r.Transactional && !r.Idempotent {
		return fmt.Errorf("a transactional.id needs enable.idempotence=true (KIP-98)")
	}
	if r.AllowCancel && r.Transactional {
		return errors.New("AllowIdempotentProduceCancellation cannot be combined with a TransactionalID: franz-go refuses to start")
	}
	if r.Client == Java && r.Idempotent && !explicit {
		r.note("enable.idempotence=true is the Java client's default from 3.0.1, 3.1.1 and 3.2.0; 3.0.0 and 3.1.0 leave it off (KAFKA-13598): set it to be sure")
	}
	if r.Idempotent && r.MaxInFlight > 5 {
		r.MaxInFlight = 5
	}
	return nil
}

// checkDeliveryTimeout refuses the delivery timeouts each client refuses
// to start with.
func (r *Resolved) checkDeliveryTimeout(p layerProps) error {
	dt := r.DeliveryTimeout
	switch r.Client {
	case FranzGo:
		// kgo validates "record timeout ... is less than allowed 1s".
		if dt > 0 && dt < 1000 {
			return fmt.Errorf("RecordDeliveryTimeout %dms is below franz-go's minimum of 1s: franz-go refuses to start", dt)
		}
	case Java:
		// KIP-91: a delivery.timeout.ms set below linger.ms +
		// request.timeout.ms is a ConfigException (KAFKA-7705).
		if p.given[keyDeliveryTimeout] && dt < r.Linger+r.RequestTimeout {
			return fmt.Errorf("delivery.timeout.ms=%d is below linger.ms + request.timeout.ms (%d): the Java client refuses to start (KIP-91)", dt, r.Linger+r.RequestTimeout)
		}
	case Librdkafka:
		// "`message.timeout.ms` must be greater than `linger.ms`"; 0 is
		// no timeout.
		if dt > 0 && dt <= r.Linger {
			return fmt.Errorf("message.timeout.ms=%d must be greater than linger.ms=%d: librdkafka refuses to start", dt, r.Linger)
		}
	}
	return nil
}

func (r *Resolved) resolveTopic(get func(string) string, given map[string]bool) error {
	rf, err := parseCount(keyReplicationFactor, get(keyReplicationFactor))
	if err != nil || rf < 1 || rf > 32767 {
		return fmt.Errorf("invalid replication.factor %q: want 1 or more", get(keyReplicationFactor))
	}
	isr, err := parseCount(keyMinISR, get(keyMinISR))
	if err != nil || isr < 1 {
		return fmt.Errorf("invalid min.insync.replicas %q: want 1 or more", get(keyMinISR))
	}
	r.ReplicationFactor, r.MinInsyncReplicas = int(rf), int(isr)
	if r.UncleanElection, err = parseBool(keyUnclean, get(keyUnclean)); err != nil {
		return err
	}
	for _, k := range []string{keyReplicationFactor, keyMinISR, keyUnclean} {
		if !given[k] {
			r.note("%s=%s assumed (Kafka's broker default)", k, get(k))
		}
	}
	if r.MinInsyncReplicas > r.ReplicationFactor {
		r.note("min.insync.replicas=%d exceeds replication.factor=%d: every acks=all write is refused (NOT_ENOUGH_REPLICAS)", r.MinInsyncReplicas, r.ReplicationFactor)
	}
	return nil
}

func (r *Resolved) resolveConsumer(p layerProps, get func(string) string) error {
	var err error
	if r.AutoCommit, err = parseBool(keyAutoCommit, get(keyAutoCommit)); err != nil {
		return err
	}
	if r.ReadCommitted, err = parseIsolation(get(keyIsolation)); err != nil {
		return err
	}
	if v, ok := p.v[keyDedup]; ok {
		if r.Dedup, err = parseBool(keyDedup, v); err != nil {
			return err
		}
	}
	// stored: auto-commit commits what the client handed over; the
	// Java client and franz-go by default commit what earlier polls
	// returned instead (franz-go: offsets become committable at the next
	// poll, which is what makes its default at-least-once).
	stored := true
	switch r.Client {
	case Java:
		stored = false
	case Librdkafka:
		if stored, err = parseBool(keyAutoOffsetStore, get(keyAutoOffsetStore)); err != nil {
			return err
		}
	case FranzGo:
		greedy, err := parseBool(keyGreedyAutoCommit, get(keyGreedyAutoCommit))
		if err != nil {
			return err
		}
		stored = greedy
		if v := p.v[keyAutoCommitMarks]; v != "" {
			marks, err := parseBool(keyAutoCommitMarks, v)
			if err != nil {
				return err
			}
			// Marks commit only what the application marked processed.
			stored = stored && !marks
		}
	}
	// timerDecides: the auto-commit timer decides what is committed.
	// With librdkafka's enable.auto.offset.store=false or kgo's
	// AutoCommitMarks it commits only what the application stored or
	// marked, so weir.commit says when that is.
	timerDecides := r.AutoCommit && (stored || r.Client == Java || r.Client == FranzGo && p.v[keyAutoCommitMarks] == "")
	r.AutoCommitsUnprocessed = r.AutoCommit && stored
	commitGiven := p.v[keyCommit] != ""
	var commit Commit
	if commitGiven {
		if commit, err = parseCommit(p.v[keyCommit]); err != nil {
			return err
		}
	}
	switch {
	case commit == CommitInTransaction && r.AutoCommit:
		return fmt.Errorf("weir.commit=transaction needs enable.auto.commit=false: offsets go in the producer's transaction")
	case commit == CommitInTransaction && !r.Transactional:
		return fmt.Errorf("weir.commit=transaction needs a transactional producer (transactional.id)")
	case timerDecides && commit == CommitBefore:
		// Auto-commit does not stop the application committing too: a
		// commit before processing (Java's commitSync() after poll(),
		// librdkafka's commit(), kgo's CommitRecords) commits past what
		// is not yet processed, whatever the timer does.
		r.Commit = CommitBefore
		r.AutoCommitsUnprocessed = false
		r.note("enable.auto.commit=true commits on its timer as well; the commits before processing decide what a crash skips")
	case timerDecides:
		r.Commit = CommitAuto
		if commitGiven && commit != CommitAuto {
			if r.AutoCommitsUnprocessed {
				r.note("weir.commit=%s does not help: enable.auto.commit=true also commits what was handed over, processed or not", commit)
			} else {
				r.note("weir.commit=%s: auto-commit commits what earlier polls returned, as committing after processing does", commit)
			}
		}
	case commitGiven && commit != CommitAuto:
		r.Commit = commit
	case commitGiven:
		return fmt.Errorf("weir.commit=auto contradicts enable.auto.commit=false")
	default:
		r.Commit = CommitAfter
		r.note("offsets assumed committed after processing (say weir.commit=before-processing if they are not)")
	}
	return nil
}
