package server

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func encode(req kmsg.Request, version int16) []byte {
	req.SetVersion(version)
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz")).AppendRequest(nil, req, 7)
	return frame[4:] // without the size prefix
}

// A request encoded by franz-go decodes to the same request here, for
// flexible and non-flexible versions alike.
func TestDecodeRoundTripsClientEncoding(t *testing.T) {
	for _, v := range []int16{4, 9, 12} {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr("orders")
		req.Topics = append(req.Topics, rt)
		h, body, err := parseHeader(encode(req, v))
		if err != nil {
			t.Fatal(err)
		}
		if h.key != 3 || h.version != v || h.correlationID != 7 || h.clientID != "fuzz" {
			t.Fatalf("v%d header %+v", v, h)
		}
		got, err := decodeRequest(h, body)
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if mr := got.(*kmsg.MetadataRequest); len(mr.Topics) != 1 || *mr.Topics[0].Topic != "orders" {
			t.Fatalf("v%d decoded %+v", v, mr)
		}
	}
}

// Arbitrary bytes as a frame never panic the decoder: they decode or
// return an error.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(encode(kmsg.NewPtrMetadataRequest(), 12))
	f.Add(encode(kmsg.NewPtrApiVersionsRequest(), 3))
	f.Add(encode(kmsg.NewPtrFetchRequest(), 16))
	f.Add(encode(kmsg.NewPtrProduceRequest(), 9))
	f.Add(encode(kmsg.NewPtrCreateTopicsRequest(), 7))
	f.Fuzz(func(t *testing.T, frame []byte) {
		h, body, err := parseHeader(frame)
		if err != nil {
			return
		}
		_, _ = decodeRequest(h, body)
	})
}
