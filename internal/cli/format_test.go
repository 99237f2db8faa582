package cli

import (
	"bufio"
	"bytes"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRecordEncoderFormats(t *testing.T) {
	rec := &kgo.Record{
		Topic:     "orders",
		Partition: 2,
		Offset:    41,
		Timestamp: time.UnixMilli(1700000000123),
		Key:       []byte("k1"),
		Value:     []byte(`{"a":"<b>"}`),
		Headers:   []kgo.RecordHeader{{Key: "h", Value: []byte("v")}, {Key: "h", Value: nil}},
	}
	binary := &kgo.Record{Topic: "t", Value: []byte{0xff, 0x00}, Timestamp: time.UnixMilli(0)}
	for _, tc := range []struct {
		name   string
		format outputFormat
		rec    *kgo.Record
		want   string
	}{
		{"value", formatValue, rec, `{"a":"<b>"}` + "\n"},
		{"kv", formatKV, rec, "k1\t{\"a\":\"<b>\"}\n"},
		{"kv with nil key", formatKV, binary, "\t\xff\x00\n"},
		{"json", formatJSON, rec,
			`{"topic":"orders","partition":2,"offset":41,"timestamp":1700000000123,"key":"k1","value":"{\"a\":\"<b>\"}",` +
				`"headers":[{"key":"h","value":"v"},{"key":"h","value":null}]}` + "\n"},
		{"json with binary value and null key", formatJSON, binary,
			`{"topic":"t","partition":0,"offset":0,"timestamp":0,"key":null,"value":"/wA=","value_encoding":"base64","headers":[]}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := bufio.NewWriter(&buf)
			if err := newRecordEncoder(w, tc.format).encode(tc.rec); err != nil {
				t.Fatal(err)
			}
			w.Flush()
			if got := buf.String(); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestLineRecordStripsLineEndingAndSplitsKey(t *testing.T) {
	for _, tc := range []struct {
		line, sep  string
		key, value string
		nilKey     bool
		wantErr    bool
	}{
		{line: "hello\n", value: "hello", nilKey: true},
		{line: "hello\r\n", value: "hello", nilKey: true},
		{line: "no newline at EOF", value: "no newline at EOF", nilKey: true},
		{line: "\n", value: "", nilKey: true},
		{line: "k:v:w\n", sep: ":", key: "k", value: "v:w"},
		{line: "k::v\n", sep: "::", key: "k", value: "v"},
		{line: ":v\n", sep: ":", key: "", value: "v"},
		{line: "novalue\n", sep: ":", wantErr: true},
	} {
		rec, err := lineRecord([]byte(tc.line), tc.sep)
		if tc.wantErr {
			if err == nil {
				t.Errorf("lineRecord(%q, %q) succeeded, want error", tc.line, tc.sep)
			}
			continue
		}
		if err != nil {
			t.Errorf("lineRecord(%q, %q): %v", tc.line, tc.sep, err)
			continue
		}
		if string(rec.Value) != tc.value || string(rec.Key) != tc.key || (rec.Key == nil) != tc.nilKey {
			t.Errorf("lineRecord(%q, %q) = key %q value %q, want key %q value %q", tc.line, tc.sep, rec.Key, rec.Value, tc.key, tc.value)
		}
	}
}
