package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// weirBin is the weir binary built once for the tests that run `weir lab`
// (which itself runs `weir serve` and `weir lab worker` children).
var weirBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weir-lab-bin")
	if err != nil {
		panic(err)
	}
	weirBin = filepath.Join(dir, "weir")
	build := exec.Command("go", "build", "-o", weirBin, "../../cmd/weir")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		panic("building weir: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
