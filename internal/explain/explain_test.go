package explain

import (
	"slices"
	"strings"
	"testing"

	"github.com/weir-broker/weir/internal/lab"
)

// props reads "k=v k=v" into a map.
func props(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Fields(s) {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

const (
	safeTopic = "replication.factor=3 min.insync.replicas=2 unclean.leader.election.enable=false"
)

// classifications is the specification: each configuration with the
// guarantee it gives, its weakest layers and the failures that break a
// stronger guarantee. The rules themselves are in rules.go.
var classifications = []struct {
	name               string
	client             Client
	producer, consumer string
	topic              string
	want               Guarantee
	weakest            []Layer
	failures           []string
	absorbed           []string
}{
	{
		name: "librdkafka acks=1 with auto-commit on one replica: the new user's configuration", client: Librdkafka,
		producer: "acks=1 bootstrap.servers=x:9092 linger.ms=5", consumer: "enable.auto.commit=true group.id=g", topic: "replication.factor=1",
		want: None, weakest: []Layer{Producer, Consumer},
		failures: []string{"acks-1", "retry-duplicates", "single-replica", "auto-commit-skips", "auto-commit-redelivers"},
	},
	{
		name: "Java defaults with auto-commit processed in the poll loop", client: Java,
		topic: safeTopic, want: AtLeastOnce, weakest: []Layer{Consumer},
		failures: []string{"auto-commit-redelivers"},
	},
	{
		name: "acks=0 with commit before processing", client: Java,
		producer: "acks=0", consumer: "enable.auto.commit=false weir.commit=before-processing", topic: safeTopic,
		want: AtMostOnce, weakest: []Layer{Producer, Consumer},
		failures: []string{"acks-0", "commit-before-processing"},
	},
	{
		name: "idempotent acks=all, process then commit, safe topic", client: Java,
		producer: "acks=all enable.idempotence=true", consumer: "enable.auto.commit=false weir.commit=after-processing", topic: safeTopic,
		want: AtLeastOnce, weakest: []Layer{Consumer}, failures: []string{"commit-after-redelivers"},
	},
	{
		name: "idempotent acks=all, process then commit with a dedup store, safe topic", client: Java,
		producer: "acks=all", consumer: "enable.auto.commit=false weir.commit=after-processing weir.dedup=true", topic: safeTopic,
		want: ExactlyOnce,
	},
	{
		name: "min.insync.replicas=1 lets acks=all rest on the leader alone", client: Java,
		consumer: "enable.auto.commit=false weir.dedup=true", topic: "replication.factor=3 min.insync.replicas=1",
		want: AtMostOnce, weakest: []Layer{Topic}, failures: []string{"min-insync-1"},
	},
	{
		name: "unclean election loses what min.insync.replicas=2 kept", client: Java,
		consumer: "enable.auto.commit=false weir.dedup=true", topic: "replication.factor=3 min.insync.replicas=2 unclean.leader.election.enable=true",
		want: AtMostOnce, weakest: []Layer{Topic}, failures: []string{"unclean-election"},
	},
	{
		name: "one replica", client: Java,
		consumer: "enable.auto.commit=false weir.dedup=true", topic: "replication.factor=1 min.insync.replicas=1",
		want: AtMostOnce, weakest: []Layer{Topic}, failures: []string{"single-replica"},
	},
	{
		name: "Java acks=1 turns default idempotence off; the dedup store absorbs the retries", client: Java,
		producer: "acks=1", consumer: "enable.auto.commit=false weir.commit=after-processing weir.dedup=true", topic: safeTopic,
		want: AtMostOnce, weakest: []Layer{Producer}, failures: []string{"acks-1"}, absorbed: []string{"retry-duplicates"},
	},
	{
		name: "librdkafka acks=all without idempotence (its default), process then commit", client: Librdkafka,
		producer: "acks=all", consumer: "enable.auto.commit=false", topic: safeTopic,
		want: AtLeastOnce, weakest: []Layer{Producer, Consumer},
		failures: []string{"retry-duplicates", "commit-after-redelivers"},
	},
	{
		name: "librdkafka idempotent with a dedup store", client: Librdkafka,
		producer: "enable.idempotence=true", consumer: "enable.auto.commit=false weir.commit=after-processing weir.dedup=true", topic: safeTopic,
		want: ExactlyOnce,
	},
	{
		name: "offsets in the transaction but reading uncommitted input", client: Java,
		producer: "transactional.id=t1", consumer: "enable.auto.commit=false weir.commit=transaction", topic: safeTopic,
		want: AtLeastOnce, weakest: []Layer{Consumer}, failures: []string{"txn-offsets-uncommitted-input"},
	},
	{
		name: "consume-transform-produce: offsets in the transaction, read_committed", client: Java,
		producer: "transactional.id=t1", consumer: "enable.auto.commit=false weir.commit=transaction isolation.level=read_committed", topic: safeTopic,
		want: ExactlyOnce,
	},
	{
		name: "transactional producer, read_committed consumer committing after processing", client: Java,
		producer: "transactional.id=t1", consumer: "enable.auto.commit=false isolation.level=read_committed", topic: safeTopic,
		want: AtLeastOnce, weakest: []Layer{Consumer}, failures: []string{"commit-after-redelivers"},
	},
	{
		// The dedup store skips the rewritten copy of an aborted record,
		// not the aborted record itself (KIP-98: read_uncommitted returns
		// records of aborted transactions).
		name: "transactional producer, read_uncommitted consumer with a dedup store", client: Java,
		producer: "transactional.id=t1", consumer: "enable.auto.commit=false weir.dedup=true isolation.level=read_uncommitted", topic: safeTopic,
		want: AtLeastOnce, weakest: []Layer{Consumer}, failures: []string{"read-uncommitted"},
	},
	{
		name: "transactional producer, read_uncommitted consumer committing before processing", client: Java,
		producer: "transactional.id=t1", consumer: "enable.auto.commit=false weir.commit=before-processing", topic: safeTopic,
		want: None, weakest: []Layer{Consumer}, failures: []string{"commit-before-processing", "read-uncommitted"},
	},
	{
		// kgo's default auto-commit commits what earlier polls returned
		// (consumer_group.go: the one-poll lag makes it at-least-once).
		name: "franz-go defaults: auto-commit of earlier polls", client: FranzGo,
		topic: safeTopic, want: AtLeastOnce, weakest: []Layer{Consumer},
		failures: []string{"auto-commit-redelivers"},
	},
	{
		name: "franz-go GreedyAutoCommit commits what was polled, processed or not", client: FranzGo,
		consumer: "GreedyAutoCommit=true", topic: safeTopic, want: None, weakest: []Layer{Consumer},
		failures: []string{"auto-commit-skips", "auto-commit-redelivers"},
	},
	{
		name: "Java auto-commit with commits of its own before processing", client: Java,
		consumer: "enable.auto.commit=true weir.commit=before-processing", topic: safeTopic,
		want: AtMostOnce, weakest: []Layer{Consumer}, failures: []string{"commit-before-processing"},
	},
	{
		name: "librdkafka message.timeout.ms shorter than one retry", client: Librdkafka,
		producer: "enable.idempotence=true message.timeout.ms=1000", consumer: "enable.auto.commit=false weir.dedup=true", topic: safeTopic,
		want: AtMostOnce, weakest: []Layer{Producer}, failures: []string{"delivery-timeout-no-retry"},
	},
	{
		name: "franz-go AllowIdempotentProduceCancellation gives up duplicate avoidance", client: FranzGo,
		producer: "AllowIdempotentProduceCancellation=true", consumer: "DisableAutoCommit=true", topic: safeTopic,
		want: AtLeastOnce, weakest: []Layer{Producer, Consumer}, failures: []string{"idempotent-cancellation", "commit-after-redelivers"},
	},
	{
		name: "franz-go leader acks without idempotence, process then commit", client: FranzGo,
		producer: "RequiredAcks=LeaderAck DisableIdempotentWrite=true", consumer: "DisableAutoCommit=true weir.commit=after-processing", topic: safeTopic,
		want: None, weakest: []Layer{Producer}, failures: []string{"acks-1", "retry-duplicates", "commit-after-redelivers"},
	},
	{
		name: "franz-go AutoCommitMarks commits what was marked: after processing", client: FranzGo,
		consumer: "AutoCommitMarks=true FetchIsolationLevel=ReadCommitted", topic: safeTopic,
		want: AtLeastOnce, weakest: []Layer{Consumer}, failures: []string{"commit-after-redelivers"},
	},
	{
		name: "librdkafka auto-commit of offsets stored after processing, with a dedup store", client: Librdkafka,
		producer: "enable.idempotence=true", consumer: "enable.auto.offset.store=false weir.commit=after-processing weir.dedup=true", topic: safeTopic,
		want: ExactlyOnce,
	},
	{
		name: "retries=0 fails records a retry would have stored", client: Java,
		producer: "retries=0", consumer: "enable.auto.commit=false weir.dedup=true", topic: safeTopic,
		want: AtMostOnce, weakest: []Layer{Producer}, failures: []string{"retries-0"},
	},
	{
		name: "acks=1 with unclean election and process then commit", client: Java,
		producer: "acks=1", consumer: "enable.auto.commit=false", topic: "replication.factor=3 min.insync.replicas=2 unclean.leader.election.enable=true",
		want: None, weakest: []Layer{Producer},
		failures: []string{"acks-1", "retry-duplicates", "unclean-election", "commit-after-redelivers"},
	},
	{
		name: "acks=0, one replica, Java auto-commit: every layer breaks one half", client: Java,
		producer: "acks=0", topic: "replication.factor=1",
		want: None, weakest: []Layer{Producer, Topic, Consumer},
		failures: []string{"acks-0", "single-replica", "auto-commit-redelivers"},
	},
	{
		name: "min.insync.replicas gates acks=all only: acks=1 loses on its own", client: Librdkafka,
		producer: "request.required.acks=1 message.send.max.retries=3", consumer: "enable.auto.commit=false weir.dedup=true", topic: "replication.factor=3 min.insync.replicas=1",
		want: AtMostOnce, weakest: []Layer{Producer}, failures: []string{"acks-1"}, absorbed: []string{"retry-duplicates"},
	},
}

func ruleIDs(rs []*Rule) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func TestExplainClassifiesEachConfigurationByItsWeakestLayer(t *testing.T) {
	if len(classifications) < 20 {
		t.Fatalf("the specification lists %d configurations, want at least 20", len(classifications))
	}
	for _, tc := range classifications {
		t.Run(tc.name, func(t *testing.T) {
			ex, err := Explain(Input{Client: tc.client, Producer: props(tc.producer), Consumer: props(tc.consumer), Topic: props(tc.topic)})
			if err != nil {
				t.Fatal(err)
			}
			if ex.Guarantee != tc.want {
				t.Errorf("guarantee %s, want %s (failures %v)", ex.Guarantee, tc.want, ruleIDs(ex.Failures))
			}
			if !slices.Equal(ex.Weakest, tc.weakest) {
				t.Errorf("weakest layers %v, want %v", ex.Weakest, tc.weakest)
			}
			if got := ruleIDs(ex.Failures); !slices.Equal(got, tc.failures) {
				t.Errorf("failures %v, want %v", got, tc.failures)
			}
			if got := ruleIDs(ex.Absorbed); !slices.Equal(got, tc.absorbed) {
				t.Errorf("absorbed %v, want %v", got, tc.absorbed)
			}
		})
	}
}

func TestSuggestedChangesReachTheNextGuarantee(t *testing.T) {
	for _, tc := range classifications {
		t.Run(tc.name, func(t *testing.T) {
			ex, err := Explain(Input{Client: tc.client, Producer: props(tc.producer), Consumer: props(tc.consumer), Topic: props(tc.topic)})
			if err != nil {
				t.Fatal(err)
			}
			if !ex.HasTarget {
				if len(ex.Changes) > 0 {
					t.Fatalf("exactly-once, yet changes suggested: %v", ex.Changes)
				}
				return
			}
			if len(ex.Changes) == 0 {
				t.Fatalf("%s: no change suggested towards %s", ex.Guarantee, ex.Target)
			}
			after, err := Explain(ex.Improved)
			if err != nil {
				t.Fatal(err)
			}
			ok := after.Guarantee == ex.Target || after.Guarantee == ExactlyOnce
			if !ok {
				t.Fatalf("after %v: %s, want %s", ex.Changes, after.Guarantee, ex.Target)
			}
		})
	}
}

func TestTheNewUsersConfigurationIsToldEveryChangeToAtLeastOnce(t *testing.T) {
	ex, err := Explain(Input{Client: Librdkafka, Producer: props("acks=1"), Consumer: props("enable.auto.commit=true"), Topic: props("replication.factor=1")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range ex.Changes {
		got = append(got, c.Layer.String()+" "+c.String())
	}
	want := []string{
		"producer acks=all",
		"topic replication.factor=3", "topic min.insync.replicas=2",
		"consumer enable.auto.commit=false", "consumer weir.commit=after-processing",
	}
	if ex.Target != AtLeastOnce || !slices.Equal(got, want) {
		t.Fatalf("towards %s: %v, want at-least-once: %v", ex.Target, got, want)
	}
	for _, c := range ex.Changes {
		if c.Key == keyReplicationFactor && !strings.Contains(c.Because.Cost, "0.63") {
			t.Errorf("replication's measured cost missing: %q", c.Because.Cost)
		}
	}
}

// TestEveryRuleNamesItsSourceAndARunnableLabScenario checks the table
// against the lab: every scenario a rule points to, for every
// configuration above, is one `weir lab` runs (not one it prunes).
func TestEveryRuleNamesItsSourceAndARunnableLabScenario(t *testing.T) {
	runnable := map[string]bool{}
	for _, cluster := range []int{0, 3} {
		for _, line := range lab.Plan(lab.Config{Seed: 1, Cluster: cluster}) {
			if strings.Contains(line, ": pruned: ") {
				continue
			}
			name, _, _ := strings.Cut(line, ": ")
			runnable[name] = true
		}
	}
	ids := map[string]bool{}
	for _, r := range Rules {
		if r.ID == "" || r.Cause == "" || r.Failure == "" || r.Source == "" || r.Applies == nil || r.Lab == nil || r.Fix == nil {
			t.Errorf("rule %q lacks an id, cause, failure, source, condition, lab scenarios or fix", r.ID)
		}
		if ids[r.ID] {
			t.Errorf("rule id %q repeated", r.ID)
		}
		ids[r.ID] = true
	}
	for _, tc := range classifications {
		res, err := Resolve(Input{Client: tc.client, Producer: props(tc.producer), Consumer: props(tc.consumer), Topic: props(tc.topic)})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range Rules {
			if !r.Applies(&res.Config) {
				continue
			}
			for _, s := range r.Lab(&res.Config) {
				if !runnable[s] {
					t.Errorf("%s: rule %s names lab scenario %q, which weir lab does not run", tc.name, r.ID, s)
				}
			}
		}
	}
}

func TestExplainRefusesWhatTheClientRefuses(t *testing.T) {
	for _, tc := range []struct {
		client                    Client
		producer, consumer, topic string
		want                      string
	}{
		{Librdkafka, "enable.idempotence=true acks=1", "", "", "cannot be combined with acks=1"},
		{Java, "enable.idempotence=true max.in.flight.requests.per.connection=6", "", "", "cannot be combined"},
		{FranzGo, "RequiredAcks=LeaderAck", "", "", "needs DisableIdempotentWrite"},
		{Java, "transactional.id=t enable.idempotence=false", "", "", "needs enable.idempotence=true"},
		{Java, "acks=2", "", "", `invalid acks "2"`},
		{Java, "retries=-1", "", "", `invalid retries "-1"`},
		{FranzGo, "RecordDeliveryTimeout=soon", "", "", "RecordDeliveryTimeout"},
		{Java, "", "isolation.level=serializable", "", "invalid isolation.level"},
		{Java, "", "enable.auto.commit=maybe", "", "invalid enable.auto.commit"},
		{Java, "", "enable.auto.commit=false weir.commit=transaction", "", "needs a transactional producer"},
		{Java, "transactional.id=t", "weir.commit=transaction", "", "needs enable.auto.commit=false"},
		{Java, "", "weir.commit=sometimes", "", "invalid weir.commit"},
		{Java, "", "", "acks=all", "acks is a producer setting"},
		{Librdkafka, "enable.idempotance=true", "", "", "no such configuration property enable.idempotance"},
		{Librdkafka, "message.timeout.ms=5", "", "", "must be greater than linger.ms"},
		{FranzGo, "TransactionalID=t AllowIdempotentProduceCancellation=true", "", "", "cannot be combined with a TransactionalID"},
		{Java, "", "", "replication.factor=0", "invalid replication.factor"},
		{Java, "", "", "retention.ms=1", "unknown setting retention.ms"},
		{Librdkafka, "acks=1 request.required.acks=all", "", "", "both set acks"},
	} {
		_, err := Explain(Input{Client: tc.client, Producer: props(tc.producer), Consumer: props(tc.consumer), Topic: props(tc.topic)})
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v %q %q %q: error %v, want one line containing %q", tc.client, tc.producer, tc.consumer, tc.topic, err, tc.want)
		}
	}
}

func TestEachClientsDefaultsDecideWhatAnEmptyFileGives(t *testing.T) {
	for _, tc := range []struct {
		client        Client
		idempotent    bool
		readCommitted bool
	}{
		{Java, true, false},
		{Librdkafka, false, true},
		{FranzGo, true, false},
	} {
		r, err := Resolve(Input{Client: tc.client})
		if err != nil {
			t.Fatal(err)
		}
		if r.Acks != -1 || r.Idempotent != tc.idempotent || r.ReadCommitted != tc.readCommitted || !r.AutoCommit || r.Commit != CommitAuto {
			t.Errorf("%v defaults: acks %d idempotent %v read_committed %v auto-commit %v commit %v", tc.client, r.Acks, r.Idempotent, r.ReadCommitted, r.AutoCommit, r.Commit)
		}
	}
}

// Verify judges measurements with lab.Result.Violations, converting a
// Guarantee by its number: the two orders must stay the same.
func TestGuaranteesNumberAsTheLabsDo(t *testing.T) {
	for g, lg := range map[Guarantee]lab.Guarantee{None: lab.NoGuarantee, AtMostOnce: lab.AtMostOnce, AtLeastOnce: lab.AtLeastOnce, ExactlyOnce: lab.ExactlyOnce} {
		if lab.Guarantee(g) != lg || g.String() != lg.String() {
			t.Errorf("%s is lab's %s", g, lab.Guarantee(g))
		}
	}
}

// --verify runs only scenarios whose settings are the configuration's,
// and says which layers it cannot reproduce.
func TestVerifyPlansTheLabScenariosOfExactlyTheseSettings(t *testing.T) {
	for _, tc := range []struct {
		client             Client
		producer, consumer string
		topic              string
		want               []string
		skipped            []Layer
	}{
		{
			Librdkafka, "acks=all", "enable.auto.commit=false weir.commit=after-processing", safeTopic,
			[]string{
				"producer / acks=all / lost acks", "producer / acks=all / connection drops", "producer / acks=all / broker killed",
				"cluster / acks=all min.insync=2 unclean=off / leader killed", "cluster / acks=all min.insync=2 unclean=off / followers lag then leader killed",
				"consumer / process then commit / consumer killed mid-batch",
			}, nil,
		},
		{
			Java, "acks=1", "", "replication.factor=3 min.insync.replicas=2 unclean.leader.election.enable=true",
			[]string{
				"producer / acks=1 / lost acks", "producer / acks=1 / connection drops", "producer / acks=1 / broker killed",
				"cluster / acks=1 min.insync=1 unclean=on / followers lag then leader killed",
			}, []Layer{Consumer},
		},
		{
			FranzGo, "TransactionalID=t", "DisableAutoCommit=true weir.commit=transaction FetchIsolationLevel=ReadCommitted", "replication.factor=1",
			[]string{
				"producer / transactional / lost acks", "producer / transactional / connection drops", "producer / transactional / broker killed",
				"end to end / consume-transform-produce / worker killed mid-transaction",
			}, []Layer{Topic},
		},
		{
			// The lab's auto-commit worker has no dedup store.
			FranzGo, "", "weir.dedup=true", "replication.factor=5 min.insync.replicas=3",
			[]string{"producer / acks=all idempotent / lost acks", "producer / acks=all idempotent / connection drops", "producer / acks=all idempotent / broker killed"},
			[]Layer{Topic, Consumer},
		},
		{
			// librdkafka's auto-commit commits what consume() handed
			// over: the greedy worker's, not kgo's default.
			Librdkafka, "", "", "replication.factor=1",
			[]string{"producer / acks=all / lost acks", "producer / acks=all / connection drops", "producer / acks=all / broker killed", "consumer / greedy auto-commit / consumer killed mid-batch"},
			[]Layer{Topic},
		},
		{
			FranzGo, "", "", "replication.factor=1",
			[]string{"producer / acks=all idempotent / lost acks", "producer / acks=all idempotent / connection drops", "producer / acks=all idempotent / broker killed", "consumer / auto-commit / consumer killed mid-batch"},
			[]Layer{Topic},
		},
		{
			Librdkafka, "enable.idempotence=true message.timeout.ms=1000", "enable.auto.commit=false", "replication.factor=1",
			[]string{"consumer / process then commit / consumer killed mid-batch"},
			[]Layer{Producer, Topic},
		},
		{
			Java, "retries=0", "enable.auto.commit=false weir.commit=before-processing", "replication.factor=1",
			[]string{"consumer / commit before processing / consumer killed mid-batch"},
			[]Layer{Producer, Topic},
		},
	} {
		ex, err := Explain(Input{Client: tc.client, Producer: props(tc.producer), Consumer: props(tc.consumer), Topic: props(tc.topic)})
		if err != nil {
			t.Fatal(err)
		}
		got, skipped := VerifyPlan(ex)
		var layers []Layer
		for _, s := range skipped {
			layers = append(layers, s.Layer)
		}
		if !slices.Equal(got, tc.want) || !slices.Equal(layers, tc.skipped) {
			t.Errorf("%v %q %q %q:\n got %q, skipped %v\nwant %q, skipped %v", tc.client, tc.producer, tc.consumer, tc.topic, got, layers, tc.want, tc.skipped)
		}
	}
}

// One client.properties is often given to both clients, which start
// with it: the other client's settings are listed as ignored, not
// refused and not applied.
func TestSettingsOfTheOtherClientAreIgnoredAsTheClientsDo(t *testing.T) {
	shared := props("acks=1 enable.auto.commit=true isolation.level=read_committed")
	r, err := Resolve(Input{Client: Java, Producer: shared, Consumer: shared})
	if err != nil {
		t.Fatal(err)
	}
	if r.Acks != 1 || !r.AutoCommit || !r.ReadCommitted {
		t.Errorf("acks %d auto-commit %v read_committed %v, want each taken by its own layer", r.Acks, r.AutoCommit, r.ReadCommitted)
	}
	for _, want := range []string{"producer enable.auto.commit (a consumer setting)", "consumer acks (a producer setting)"} {
		if !slices.Contains(r.Ignored, want) {
			t.Errorf("ignored %q, want it to list %q", r.Ignored, want)
		}
	}
}

// franz-go users change kgo options: the changes are spelled as options
// and read back by Explain to the same settings.
func TestChangesForFranzGoAreKgoOptionsThatReachTheTarget(t *testing.T) {
	ex, err := Explain(Input{Client: FranzGo, Producer: props("RequiredAcks=LeaderAck DisableIdempotentWrite=true MaxProduceRequestsInflightPerBroker=10"), Consumer: props("GreedyAutoCommit=true"), Topic: props(safeTopic)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range ex.Changes {
		got = append(got, c.String())
	}
	if want := []string{"RequiredAcks=AllISRAcks", "GreedyAutoCommit=false"}; !slices.Equal(got, want) {
		t.Errorf("changes %v, want %v", got, want)
	}
	var opts []string
	for _, c := range ex.Changes {
		opts = append(opts, KgoOption(c.Setting))
	}
	if want := []string{"kgo.RequiredAcks(kgo.AllISRAcks())", "leave out kgo.GreedyAutoCommit()"}; !slices.Equal(opts, want) {
		t.Errorf("kgo options %q, want %q", opts, want)
	}
	after, err := Explain(ex.Improved)
	if err != nil || after.Guarantee != AtLeastOnce {
		t.Fatalf("after %v: %v %v, want at-least-once", got, after, err)
	}
	if len(after.Changes) == 0 || after.Changes[0].String() != "DisableIdempotentWrite=false" {
		t.Errorf("towards exactly-once: %v, want DisableIdempotentWrite=false first", after.Changes)
	}
}
