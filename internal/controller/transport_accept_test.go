//go:build linux

package controller

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// lockedBuffer is a log sink safe for the transport's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A node out of file descriptors (each Kafka connection and each open
// segment holds one) cannot accept a peer's connection to its controller
// listener while it is; once some close it must accept again, as the
// Kafka listener does. Were the failed accept to end the listener, no
// peer could reach the node's quorum member again until it restarted:
// a follower would hear from no leader, and a leader from no follower.
func TestControllerListenerOutOfFileDescriptorsAcceptsAgainOnceSomeClose(t *testing.T) {
	var delivered = make(chan *pb.Message, 16)
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	addr := freeAddr(t)
	tr, err := newTransport(1, addr, nil, []uint64{1, 2}, map[uint64]string{2: freeAddr(t)},
		func(m *pb.Message) { delivered <- m }, func(peerReport) {}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()

	// Lower the descriptor limit just above what the process holds and
	// fill it, leaving one for the connection below: the transport's
	// accept of it then fails with EMFILE.
	var saved syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	lowered := saved
	lowered.Cur = uint64(len(fds) + 16)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered); err != nil {
		t.Fatal(err)
	}
	var filler []*os.File
	release := func() {
		for _, f := range filler {
			f.Close()
		}
		filler = nil
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
			t.Errorf("restore the descriptor limit: %v", err)
		}
	}
	defer release()
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		filler = append(filler, f)
	}
	filler[len(filler)-1].Close()
	filler = filler[:len(filler)-1]
	refused, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		release()
		t.Fatalf("dial with one descriptor left: %v", err)
	}
	defer refused.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "too many open files") {
		if time.Now().After(deadline) {
			release()
			t.Fatalf("the controller listener never ran out of descriptors; logs:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	release()

	// Descriptors are free again: a peer's connection is accepted and its
	// messages delivered.
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := writeFrame(c, &pb.Message{Type: pb.MsgHeartbeat.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(1))}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-delivered:
		if m.GetFrom() != 2 {
			t.Fatalf("delivered a message from %d, want 2", m.GetFrom())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("a peer's message was not delivered once descriptors were free again: the controller listener stopped accepting after it ran out of them; logs:\n%s", logs.String())
	}
}
