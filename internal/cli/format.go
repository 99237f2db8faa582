package cli

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// recordEncoder writes records to out in one of the output formats, one
// record per line.
type recordEncoder struct {
	out    *bufio.Writer
	format outputFormat
	json   *json.Encoder
}

func newRecordEncoder(out *bufio.Writer, format outputFormat) *recordEncoder {
	e := &recordEncoder{out: out, format: format}
	if format == formatJSON {
		e.json = json.NewEncoder(out)
		// Values are data, not HTML: print '<' as '<'.
		e.json.SetEscapeHTML(false)
	}
	return e
}

func (e *recordEncoder) encode(r *kgo.Record) error {
	switch e.format {
	case formatKV:
		e.out.Write(r.Key)
		e.out.WriteByte('\t')
		e.out.Write(r.Value)
		return e.out.WriteByte('\n')
	case formatJSON:
		return e.json.Encode(newJSONRecord(r))
	}
	e.out.Write(r.Value)
	return e.out.WriteByte('\n')
}

// jsonRecord is the --format json form of a record. Keys and values are
// JSON strings when they are valid UTF-8; otherwise they are base64 and the
// matching *_encoding field says so, so no byte is lost. A null key or
// value is JSON null.
type jsonRecord struct {
	Topic         string       `json:"topic"`
	Partition     int32        `json:"partition"`
	Offset        int64        `json:"offset"`
	Timestamp     int64        `json:"timestamp"` // Unix milliseconds
	Key           *string      `json:"key"`
	KeyEncoding   string       `json:"key_encoding,omitempty"`
	Value         *string      `json:"value"`
	ValueEncoding string       `json:"value_encoding,omitempty"`
	Headers       []jsonHeader `json:"headers"`
}

// jsonHeader is one record header; headers are a list, not an object,
// because a key may repeat and their order matters.
type jsonHeader struct {
	Key           string  `json:"key"`
	Value         *string `json:"value"`
	ValueEncoding string  `json:"value_encoding,omitempty"`
}

func newJSONRecord(r *kgo.Record) jsonRecord {
	j := jsonRecord{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Timestamp: r.Timestamp.UnixMilli(),
		Headers:   make([]jsonHeader, len(r.Headers)),
	}
	j.Key, j.KeyEncoding = jsonBytes(r.Key)
	j.Value, j.ValueEncoding = jsonBytes(r.Value)
	for i, h := range r.Headers {
		j.Headers[i].Key = h.Key
		j.Headers[i].Value, j.Headers[i].ValueEncoding = jsonBytes(h.Value)
	}
	return j
}

// jsonBytes returns b as a string to put in JSON and its encoding: "" for
// text, "base64" for bytes that are not valid UTF-8. A nil b is null.
func jsonBytes(b []byte) (*string, string) {
	if b == nil {
		return nil, ""
	}
	if utf8.Valid(b) {
		s := string(b)
		return &s, ""
	}
	s := base64.StdEncoding.EncodeToString(b)
	return &s, "base64"
}
