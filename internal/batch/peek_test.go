package batch

import (
	"errors"
	"testing"
)

func TestPeekHeaderNeedsOnlyTheFixedHeader(t *testing.T) {
	b := sample()
	full, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	h, err := PeekHeader(b[:HeaderSize])
	if err != nil {
		t.Fatal(err)
	}
	if h != full {
		t.Fatalf("peek %+v, parse %+v", h, full)
	}
	if _, err := PeekHeader(b[:HeaderSize-1]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short header: %v", err)
	}
	bad := append([]byte(nil), b...)
	bad[offMagic] = 1
	if _, err := PeekHeader(bad); !errors.Is(err, ErrUnsupportedMagic) {
		t.Fatalf("magic 1: %v", err)
	}
}
