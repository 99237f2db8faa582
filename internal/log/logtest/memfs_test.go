package logtest_test

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/weir-broker/weir/internal/log/logtest"
)

func write(t *testing.T, fs *logtest.MemFS, name string, data string, sync bool) {
	t.Helper()
	f, err := fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

func content(fs *logtest.MemFS, name string) string {
	b, err := fs.ReadFile(name)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func TestCrashKeepsSyncedDataAndDurableNamesOnly(t *testing.T) {
	fs := logtest.NewMemFS()
	if err := fs.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, fs, "/d/a", "synced", true)
	write(t, fs, "/d/a", "+unsynced", false)
	if err := fs.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	write(t, fs, "/d/b", "never in a synced directory", true)

	c := fs.Crash(nil)
	if got := content(c, "/d/a"); got != "synced" {
		t.Fatalf("a after crash: %q", got)
	}
	if _, err := c.Stat("/d/b"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("b survived without a directory sync: %v", err)
	}
	c = fs.Crash(func(path string, n int) int { return 3 })
	if got := content(c, "/d/a"); got != "synced+un" {
		t.Fatalf("a with a torn tail: %q", got)
	}
	if got := content(fs.Clone(), "/d/b"); got != "never in a synced directory" {
		t.Fatalf("clone lost written data: %q", got)
	}
}

func TestRenameIsDurableOnlyAfterDirectorySync(t *testing.T) {
	fs := logtest.NewMemFS()
	fs.MkdirAll("/d", 0o755)
	fs.WriteFile("/d/x", []byte("old"))
	write(t, fs, "/d/x.tmp", "new", true)
	if err := fs.Rename("/d/x.tmp", "/d/x"); err != nil {
		t.Fatal(err)
	}
	if got := content(fs.Crash(nil), "/d/x"); got != "old" {
		t.Fatalf("rename durable before directory sync: %q", got)
	}
	fs.SyncDir("/d")
	if got := content(fs.Crash(nil), "/d/x"); got != "new" {
		t.Fatalf("after directory sync: %q", got)
	}
}

func TestRemovedFileStaysReadableThroughOpenHandles(t *testing.T) {
	fs := logtest.NewMemFS()
	fs.MkdirAll("/d", 0o755)
	write(t, fs, "/d/a", "data", false)
	f, _ := fs.OpenFile("/d/a", os.O_RDONLY, 0)
	defer f.Close()
	if err := fs.Remove("/d/a"); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := f.ReadAt(b, 0); err != nil || !bytes.Equal(b, []byte("data")) {
		t.Fatalf("read after remove: %q %v", b, err)
	}
}

func TestFaultsFailTheChosenOperation(t *testing.T) {
	fs := logtest.NewMemFS()
	fs.MkdirAll("/d", 0o755)
	fs.SetFault(logtest.FailNth(logtest.OpWrite, ".log", 2, nil))
	f, _ := fs.OpenFile("/d/a.log", os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if _, err := f.Write([]byte("1")); err != nil {
		t.Fatal(err)
	}
	fs.SetTornWrites(true)
	if n, err := f.Write([]byte("2222")); !errors.Is(err, logtest.ErrInjected) || n != 2 {
		t.Fatalf("second write: %d, %v", n, err)
	}
	if _, err := f.Write([]byte("3")); err != nil {
		t.Fatal(err)
	}
	if got := content(fs, "/d/a.log"); got != "1223" {
		t.Fatalf("content %q", got)
	}
	if fs.Ops(logtest.OpWrite) != 3 {
		t.Fatalf("%d writes counted", fs.Ops(logtest.OpWrite))
	}
}
