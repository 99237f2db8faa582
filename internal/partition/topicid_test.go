package partition

import (
	"testing"

	"github.com/weir-broker/weir/internal/log/logtest"
)

// The topic id a partition directory records survives a power loss right
// after it is recorded, and recording the same id again writes nothing.
func TestTopicIDIsRecordedDurably(t *testing.T) {
	fs := logtest.NewMemFS()
	if err := fs.MkdirAll("/t", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := RecordTopicID(fs, "/t", "topic_id: a\n"); err != nil {
		t.Fatal(err)
	}
	crashed := fs.Crash(nil)
	if id, ok, err := TopicID(crashed, "/t"); err != nil || !ok || id != "topic_id: a\n" {
		t.Fatalf("after a power loss: %q %v %v", id, ok, err)
	}
	renames := fs.Ops(logtest.OpRename)
	if err := RecordTopicID(fs, "/t", "topic_id: a\n"); err != nil {
		t.Fatal(err)
	}
	if fs.Ops(logtest.OpRename) != renames {
		t.Fatal("recording the same id again rewrote the file")
	}
	if _, ok, err := TopicID(fs, "/none"); ok || err != nil {
		t.Fatalf("a directory without an id: %v %v", ok, err)
	}
}
