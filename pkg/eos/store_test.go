package eos

import (
	"path/filepath"
	"testing"
)

// A group or store name becomes exactly one path element under the state
// directory, whatever it holds, and distinct names stay distinct.
func TestPathNameStaysOneElementInsideTheStateDirectory(t *testing.T) {
	seen := map[string]string{}
	for _, name := range []string{"inventory-aggregator", "a/b", "a%2Fb", "..", ".", "...", "a..b", `c:\d`, "x y", "ü"} {
		got := pathName(name)
		if dir, file := filepath.Split(got); dir != "" || file != got || got == "." || got == ".." || got == "" {
			t.Errorf("pathName(%q) = %q: not one element of a path", name, got)
		}
		if filepath.Dir(filepath.Join("/state", got)) != "/state" {
			t.Errorf("pathName(%q) = %q leaves the state directory", name, got)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("pathName(%q) = pathName(%q) = %q", name, other, got)
		}
		seen[got] = name
	}
	if got := pathName("inventory-aggregator"); got != "inventory-aggregator" {
		t.Errorf("an ordinary name is escaped: %q", got)
	}
}
