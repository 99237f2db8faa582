package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/internal/bench"
)

// parseAcks parses --acks. The CLI and the bench share the acks type so
// `weir produce` and `weir bench produce` configure producers identically.
func parseAcks(s string) (bench.Acks, error) {
	a, err := bench.ParseAcks(s)
	if err != nil {
		return 0, fmt.Errorf("invalid --acks %q: want all, 1 or 0", s)
	}
	return a, nil
}

// startKind says where a consumer starts reading.
type startKind int

const (
	fromStart     startKind = iota // the log start offset
	fromEnd                        // the high watermark: only new records
	fromOffset                     // an exact offset
	fromTimestamp                  // the first record at or after a time
)

// startSpec is a parsed --from value.
type startSpec struct {
	kind startKind
	n    int64 // the offset (fromOffset) or Unix milliseconds (fromTimestamp)
}

// parseFrom parses --from: start, end, an offset, or @ and a Unix time in
// milliseconds.
func parseFrom(s string) (startSpec, error) {
	switch s {
	case "start":
		return startSpec{kind: fromStart}, nil
	case "end":
		return startSpec{kind: fromEnd}, nil
	}
	kind, digits := fromOffset, s
	if rest, ok := strings.CutPrefix(s, "@"); ok {
		kind, digits = fromTimestamp, rest
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 {
		return startSpec{}, fmt.Errorf("invalid --from %q: want start, end, an offset (42) or @ and a Unix time in milliseconds (@1700000000000)", s)
	}
	return startSpec{kind: kind, n: n}, nil
}

// offset returns the spec as a kgo offset.
func (s startSpec) offset() kgo.Offset {
	switch s.kind {
	case fromEnd:
		return kgo.NewOffset().AtEnd()
	case fromOffset:
		return kgo.NewOffset().At(s.n)
	case fromTimestamp:
		return kgo.NewOffset().AfterMilli(s.n)
	}
	return kgo.NewOffset().AtStart()
}

// parseConfigs parses repeated --config k=v flags. A value may be empty or
// contain '=' and ','; a key may not be empty or repeat.
func parseConfigs(kvs []string) (map[string]*string, error) {
	configs := make(map[string]*string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid --config %q: want key=value", kv)
		}
		if _, dup := configs[k]; dup {
			return nil, fmt.Errorf("--config %q given more than once", k)
		}
		configs[k] = &v
	}
	return configs, nil
}

// parseIsolation parses --isolation.
func parseIsolation(s string) (kgo.IsolationLevel, error) {
	switch s {
	case "read_uncommitted":
		return kgo.ReadUncommitted(), nil
	case "read_committed":
		return kgo.ReadCommitted(), nil
	}
	return kgo.IsolationLevel{}, fmt.Errorf("invalid --isolation %q: want read_uncommitted or read_committed", s)
}

// outputFormat is how consume prints a record.
type outputFormat int

const (
	formatValue outputFormat = iota // the value, one per line
	formatKV                        // key, tab, value
	formatJSON                      // one JSON object per line
)

// parseFormat parses --format.
func parseFormat(s string) (outputFormat, error) {
	switch s {
	case "value":
		return formatValue, nil
	case "kv":
		return formatKV, nil
	case "json":
		return formatJSON, nil
	}
	return 0, fmt.Errorf("invalid --format %q: want value, kv or json", s)
}
