package lab

import (
	"os"
	"testing"

	"github.com/weir-broker/weir/internal/testsvc"
)

// weirBin is the weir binary built once for the tests that run `weir lab`
// (which itself runs `weir serve` and `weir lab worker` children).
var weirBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weir-lab-bin")
	if err != nil {
		panic(err)
	}
	if weirBin, err = testsvc.Build(dir, testsvc.WeirPackage); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
