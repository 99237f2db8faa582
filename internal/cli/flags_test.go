package cli

import (
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/internal/bench"
)

func TestParseAcksAcceptsKafkaSpellingsOnly(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    bench.Acks
		wantErr bool
	}{
		{in: "all", want: bench.AcksAll},
		{in: "-1", want: bench.AcksAll},
		{in: "1", want: bench.AcksLeader},
		{in: "0", want: bench.AcksNone},
		{in: "2", wantErr: true},
		{in: "ALL", wantErr: true},
		{in: "", wantErr: true},
		{in: "leader", wantErr: true},
	} {
		got, err := parseAcks(tc.in)
		if tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), "--acks") {
				t.Errorf("parseAcks(%q) = %v, %v; want an error naming --acks", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseAcks(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseFromAcceptsStartEndOffsetAndTimestamp(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    startSpec
		wantErr bool
	}{
		{in: "start", want: startSpec{kind: fromStart}},
		{in: "end", want: startSpec{kind: fromEnd}},
		{in: "0", want: startSpec{kind: fromOffset, n: 0}},
		{in: "42", want: startSpec{kind: fromOffset, n: 42}},
		{in: "@1700000000000", want: startSpec{kind: fromTimestamp, n: 1700000000000}},
		{in: "@0", want: startSpec{kind: fromTimestamp}},
		{in: "xyz", wantErr: true},
		{in: "", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "@", wantErr: true},
		{in: "@-5", wantErr: true},
		{in: "@abc", wantErr: true},
		{in: "4.2", wantErr: true},
		{in: "99999999999999999999", wantErr: true},
	} {
		got, err := parseFrom(tc.in)
		if tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), "--from") {
				t.Errorf("parseFrom(%q) = %+v, %v; want an error naming --from", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseFrom(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestStartSpecMapsToKgoOffsets(t *testing.T) {
	for _, tc := range []struct {
		spec startSpec
		want kgo.Offset
	}{
		{startSpec{kind: fromStart}, kgo.NewOffset().AtStart()},
		{startSpec{kind: fromEnd}, kgo.NewOffset().AtEnd()},
		{startSpec{kind: fromOffset, n: 7}, kgo.NewOffset().At(7)},
		{startSpec{kind: fromTimestamp, n: 1234}, kgo.NewOffset().AfterMilli(1234)},
	} {
		if got := tc.spec.offset(); got != tc.want {
			t.Errorf("%+v.offset() = %v, want %v", tc.spec, got, tc.want)
		}
	}
}

func TestParseConfigsSplitsAtFirstEquals(t *testing.T) {
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		name    string
		in      []string
		want    map[string]*string
		wantErr string
	}{
		{name: "none", in: nil, want: map[string]*string{}},
		{name: "one", in: []string{"retention.ms=1000"}, want: map[string]*string{"retention.ms": str("1000")}},
		{name: "list value keeps commas", in: []string{"cleanup.policy=compact,delete"},
			want: map[string]*string{"cleanup.policy": str("compact,delete")}},
		{name: "value may contain equals", in: []string{"a=b=c"}, want: map[string]*string{"a": str("b=c")}},
		{name: "empty value", in: []string{"a="}, want: map[string]*string{"a": str("")}},
		{name: "several", in: []string{"a=1", "b=2"}, want: map[string]*string{"a": str("1"), "b": str("2")}},
		{name: "no equals", in: []string{"retention.ms"}, wantErr: "want key=value"},
		{name: "empty key", in: []string{"=5"}, wantErr: "want key=value"},
		{name: "duplicate key", in: []string{"a=1", "a=2"}, wantErr: "more than once"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfigs(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseConfigs(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parseConfigs(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestConfigAlterationsSetThenDeleteAndRefuseConflicts(t *testing.T) {
	got, err := configAlterations([]string{"a=1", "b=2"}, []string{"c"})
	if err != nil {
		t.Fatal(err)
	}
	one, two := "1", "2"
	want := []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "a", Value: &one},
		{Op: kadm.SetConfig, Name: "b", Value: &two},
		{Op: kadm.DeleteConfig, Name: "c"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("configAlterations = %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		set, del []string
		wantErr  string
	}{
		{set: []string{"a=1"}, del: []string{"a"}, wantErr: "both set and deleted"},
		{del: []string{"a", "a"}, wantErr: "more than once"},
		{del: []string{""}, wantErr: "needs a key"},
		{set: []string{"oops"}, wantErr: "want key=value"},
	} {
		if _, err := configAlterations(tc.set, tc.del); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("configAlterations(%q, %q) error = %v, want one containing %q", tc.set, tc.del, err, tc.wantErr)
		}
	}
}

func TestParseFormatAndIsolation(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    outputFormat
		wantErr bool
	}{
		{in: "value", want: formatValue},
		{in: "kv", want: formatKV},
		{in: "json", want: formatJSON},
		{in: "JSON", wantErr: true},
		{in: "", wantErr: true},
		{in: "csv", wantErr: true},
	} {
		got, err := parseFormat(tc.in)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("parseFormat(%q) = %v, %v; want %v (error %t)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	for _, tc := range []struct {
		in      string
		want    kgo.IsolationLevel
		wantErr bool
	}{
		{in: "read_uncommitted", want: kgo.ReadUncommitted()},
		{in: "read_committed", want: kgo.ReadCommitted()},
		{in: "committed", wantErr: true},
	} {
		got, err := parseIsolation(tc.in)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("parseIsolation(%q) = %v, %v; want %v (error %t)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseBrokersTrimsAndRejectsEmpty(t *testing.T) {
	got, err := parseBrokers(" a:1, b:2 ,,")
	if err != nil || !reflect.DeepEqual(got, []string{"a:1", "b:2"}) {
		t.Fatalf("parseBrokers = %q, %v", got, err)
	}
	if _, err := parseBrokers(" , "); err == nil {
		t.Fatal("parseBrokers of blanks succeeded")
	}
}

func TestConsumeFlagsRejectPartitionWithGroup(t *testing.T) {
	cf := consumeFlags{from: "start", isolation: "read_uncommitted", format: "value", partition: 0, group: "g"}
	if _, err := cf.validate("t"); err == nil || !strings.Contains(err.Error(), "cannot be combined") {
		t.Fatalf("validate = %v, want a --partition/--group conflict", err)
	}
}
