package explain

// Guarantee is a delivery guarantee, weakest first.
type Guarantee int

// Guarantees.
const (
	// None: records may be lost and may be duplicated.
	None Guarantee = iota
	// AtMostOnce: records may be lost, never duplicated.
	AtMostOnce
	// AtLeastOnce: no acknowledged record is lost; duplicates may appear.
	AtLeastOnce
	// ExactlyOnce: neither loss nor duplicates.
	ExactlyOnce
)

// String is the guarantee as Kafka's documentation names it.
func (g Guarantee) String() string {
	switch g {
	case AtMostOnce:
		return "at-most-once"
	case AtLeastOnce:
		return "at-least-once"
	case ExactlyOnce:
		return "exactly-once"
	}
	return "none"
}

// guaranteeOf is the guarantee left when records may be lost (lose)
// and may be duplicated (dup).
func guaranteeOf(lose, dup bool) Guarantee {
	switch {
	case lose && dup:
		return None
	case lose:
		return AtMostOnce
	case dup:
		return AtLeastOnce
	}
	return ExactlyOnce
}

// rank orders guarantees for naming the weakest layer: at-most-once and
// at-least-once each break one half of exactly-once, so neither is
// weaker than the other.
func (g Guarantee) rank() int {
	switch g {
	case None:
		return 0
	case ExactlyOnce:
		return 2
	}
	return 1
}

// next is the guarantee a change should aim for from g: from none,
// at-least-once (stop losing records, the usual first need); from either
// half-guarantee, exactly-once. ok is false at exactly-once.
func (g Guarantee) next() (Guarantee, bool) {
	switch g {
	case None:
		return AtLeastOnce, true
	case AtMostOnce, AtLeastOnce:
		return ExactlyOnce, true
	}
	return ExactlyOnce, false
}

// Layer is one of the three places a guarantee is decided.
type Layer int

// Layers, in the order a record passes them.
const (
	Producer Layer = iota
	Topic
	Consumer
)

// Layers lists every layer in order.
var Layers = []Layer{Producer, Topic, Consumer}

// String names the layer.
func (l Layer) String() string {
	switch l {
	case Topic:
		return "topic"
	case Consumer:
		return "consumer"
	}
	return "producer"
}

// Harm is what a failure does to records.
type Harm int

// Harms.
const (
	// Loss: records the producer was told are stored, or that a consumer
	// committed past, are never processed.
	Loss Harm = iota
	// Duplicates: a record is stored or processed more than once.
	Duplicates
)

// String names the harm.
func (h Harm) String() string {
	if h == Duplicates {
		return "duplicates"
	}
	return "loss"
}
