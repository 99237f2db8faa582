package logtest

import (
	"errors"
	"strings"
	"sync"
)

// Op names a file-system operation a Fault can fail.
type Op string

// Operations of MemFS.
const (
	OpOpen     Op = "open"
	OpRead     Op = "read"
	OpWrite    Op = "write"
	OpSync     Op = "sync"
	OpSyncDir  Op = "syncdir"
	OpTruncate Op = "truncate"
	OpRemove   Op = "remove"
	OpRename   Op = "rename"
	OpMkdir    Op = "mkdir"
	OpReadDir  Op = "readdir"
)

// ErrInjected is the error injected faults return unless told otherwise.
var ErrInjected = errors.New("logtest: injected fault")

// Fault decides whether an operation on a path fails, and with what.
type Fault func(op Op, path string) error

// FailNth fails the nth (from 1) operation op on a path ending with suffix
// ("" matches every path) counted from when the fault is installed, once.
func FailNth(op Op, suffix string, n int, err error) Fault {
	var mu sync.Mutex
	seen := 0
	return func(o Op, path string) error {
		if o != op || !strings.HasSuffix(path, suffix) {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		seen++
		if seen == n {
			return orInjected(err)
		}
		return nil
	}
}

// FailAlways fails every operation op on a path ending with suffix.
func FailAlways(op Op, suffix string, err error) Fault {
	return func(o Op, path string) error {
		if o == op && strings.HasSuffix(path, suffix) {
			return orInjected(err)
		}
		return nil
	}
}

// Any fails an operation if any of the faults does.
func Any(faults ...Fault) Fault {
	return func(op Op, path string) error {
		for _, f := range faults {
			if err := f(op, path); err != nil {
				return err
			}
		}
		return nil
	}
}

func orInjected(err error) error {
	if err == nil {
		return ErrInjected
	}
	return err
}
