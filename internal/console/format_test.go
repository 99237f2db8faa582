package console

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A reset's time is Unix milliseconds or a UTC time at or after 1970;
// anything else (a time before 1970 would be read as a ListOffsets query)
// is refused with a message, not read as zero.
func TestParseTimeReadsMillisecondsOrUTCAndRefusesTheRest(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1700000000000", 1700000000000, true},
		{"2023-11-14T22:13:20", 1700000000000, true},
		{"2023-11-14T22:13:20Z", 1700000000000, true},
		{"2023-11-14 22:13:20", 1700000000000, true},
		{"-5", 0, false},
		{"-1", 0, false},
		{"1969-12-31T23:59:59.999Z", 0, false},
		{"1969-12-31T23:59:59", 0, false},
		{"1970-01-01T00:00:00Z", 0, true},
		{"yesterday", 0, false},
		{"", 0, false},
	} {
		got, err := parseTime(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseTime(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// A control record's type is read from its key (version, type: 0 abort,
// 1 commit); a data record shows its key and value, cut and quoted when
// not text.
func TestRecordRowsMarkControlRecordsAndShowDataAsText(t *testing.T) {
	abort := rowOf(&kgo.Record{Offset: 3, Key: []byte{0, 0, 0, 0}, Attrs: kgo.RecordAttrs{}})
	if abort.Control != "" {
		t.Fatalf("a record without the control attribute read as a marker: %+v", abort)
	}
	for _, tc := range []struct {
		key  []byte
		want string
	}{{[]byte{0, 0, 0, 0}, "ABORT"}, {[]byte{0, 0, 0, 1}, "COMMIT"}, {[]byte{0, 0, 0, 9}, "marker"}, {nil, "marker"}} {
		r := controlRecord(tc.key)
		if got := rowOf(r).Control; got != tc.want {
			t.Errorf("control key %v read as %q, want %q", tc.key, got, tc.want)
		}
	}
	if got := shown([]byte{0xff, 'a'}); got != `"\xffa"` {
		t.Errorf("non-UTF-8 bytes shown as %s", got)
	}
	if got := shown([]byte(strings.Repeat("x", maxShownBytes+10))); len(got) != maxShownBytes+len("…") {
		t.Errorf("a long value is shown in %d bytes, want it cut at %d", len(got), maxShownBytes)
	}
}

// controlRecord is a transaction marker as a consumer that keeps control
// records receives it.
func controlRecord(key []byte) *kgo.Record {
	return &kgo.Record{Key: key, Attrs: kgo.NewRecordAttrs(kgo.RecordAttrsOpts{Transactional: true, Control: true})}
}
