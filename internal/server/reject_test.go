package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

type rejectLogHarness struct {
	log *rejectLog
	out *bytes.Buffer
	now time.Time
}

func newRejectLogHarness() *rejectLogHarness {
	h := &rejectLogHarness{out: &bytes.Buffer{}, now: time.Unix(1_700_000_000, 0)}
	h.log = newRejectLog(slog.New(slog.NewTextHandler(h.out, nil)), func() time.Time { return h.now })
	return h
}

func (h *rejectLogHarness) reject(host string, rej *rejection) {
	h.log.log(&net.TCPAddr{IP: net.ParseIP(host), Port: 40000 + int(h.now.UnixNano()%1000)}, "PLAINTEXT", "c", rej)
}

func (h *rejectLogHarness) lines() []string {
	return strings.Split(strings.TrimSpace(h.out.String()), "\n")
}

func TestRejectLogWritesOneLinePerPeerAndReasonPerWindow(t *testing.T) {
	h := newRejectLogHarness()
	unsupported := reject(reasonUnsupportedAPI, 29, 0, "api key 29 is not served")
	for range 5 {
		h.reject("10.0.0.1", unsupported)
		h.now = h.now.Add(time.Second)
	}
	h.reject("10.0.0.2", unsupported)                                             // another peer
	h.reject("10.0.0.1", reject(reasonUnsupportedVersion, 3, 99, "Metadata v99")) // another reason
	if got := h.lines(); len(got) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(got), h.out)
	}
	h.now = h.now.Add(rejectLogWindow)
	h.reject("10.0.0.1", unsupported)
	last := h.lines()[3]
	for _, want := range []string{"remote=10.0.0.1:", `reason="unsupported api"`, "api_key=29", "api=DescribeACLs", "api_version=0", "not_logged_since_last=4"} {
		if !strings.Contains(last, want) {
			t.Fatalf("line after the window %q lacks %q", last, want)
		}
	}
}

func TestRejectLogKeepsAtMostMaxKeysAndForgetsThemAfterTheWindow(t *testing.T) {
	h := newRejectLogHarness()
	tooLarge := reject(reasonTooLarge, -1, -1, "frame of 1 GiB")
	for i := range maxRejectLogKeys {
		h.reject(fmt.Sprintf("10.%d.%d.1", i/256, i%256), tooLarge)
	}
	h.reject("192.168.0.1", tooLarge)
	if got := len(h.lines()); got != maxRejectLogKeys {
		t.Fatalf("%d lines with every key recent, want %d: a new peer must not grow the table", got, maxRejectLogKeys)
	}
	if strings.Contains(h.out.String(), "api_key") {
		t.Fatal("a rejection before the header was read names an API")
	}
	h.now = h.now.Add(rejectLogWindow)
	h.reject("192.168.0.1", tooLarge)
	if got := len(h.lines()); got != maxRejectLogKeys+1 || len(h.log.last) != 1 {
		t.Fatalf("after the window: %d lines, %d keys kept; want %d and 1", got, len(h.log.last), maxRejectLogKeys+1)
	}
}
