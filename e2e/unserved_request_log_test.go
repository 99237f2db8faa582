package e2e

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// A client whose request the broker does not serve sees only the
// connection end ("unexpected EOF"); the broker's log says why, once.
// CreateDelegationToken (key 38) is not served: asked twice, it is logged once,
// naming the API. Metadata v99, a frame larger than
// socket.request.max.bytes and a truncated header each get their own line.
func TestUnservedRequestLeavesOneLogLineNamingIt(t *testing.T) {
	p := startProc(t, "127.0.0.1:0", t.TempDir(), "--log-level", "info")
	createToken := rawRequest(38, 0)
	for range 2 {
		sendUnserved(t, p.addr, createToken)
	}
	sendUnserved(t, p.addr, rawRequest(3, 99))
	tooLarge := binary.BigEndian.AppendUint32(nil, 200<<20)
	tooLarge = append(tooLarge, rawRequest(0, 9)[4:]...) // a Produce v9 header follows
	sendUnserved(t, p.addr, tooLarge)
	sendUnserved(t, p.addr, []byte{0, 0, 0, 5, 0, 18, 0, 3, 0}) // ApiVersions v3, cut short
	// A clean stop waits for every connection's goroutine: the log is
	// complete once the process has exited.
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	logs := p.logs.String()
	for _, want := range [][]string{
		{`reason="unsupported api"`, "api_key=38", "api=CreateDelegationToken", "api_version=0", "remote=127.0.0.1:", "client=raw-client"},
		{`reason="unsupported version"`, "api_key=3", "api=Metadata", "api_version=99"},
		{`reason="too large"`, "api_key=0", "api=Produce", "api_version=9", "socket.request.max.bytes"},
		{"reason=malformed", "api_key=18", "api=ApiVersions", "api_version=3"},
	} {
		if n := countLines(logs, want...); n != 1 {
			t.Errorf("%d log lines with %q, want 1; the broker's log:\n%s", n, want, logs)
		}
	}
}

// rawRequest is a request frame with an empty body: size, API key,
// version, correlation id and client id (header v1).
func rawRequest(key, version int16) []byte {
	const clientID = "raw-client"
	b := make([]byte, 4, 64)
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(clientID)))
	b = append(b, clientID...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// sendUnserved writes frame on a new connection and checks that the
// broker closes the connection without an answer.
func sendUnserved(t *testing.T, addr string, frame []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := c.Read(make([]byte, 64))
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("after an unserved request: read %d bytes, %v; want the connection closed", n, err)
	}
}

// countLines counts the lines of logs that contain every one of parts.
func countLines(logs string, parts ...string) int {
	n := 0
	for line := range strings.Lines(logs) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}
