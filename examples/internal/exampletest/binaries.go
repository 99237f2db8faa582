package exampletest

import (
	"fmt"
	"os"

	"github.com/weir-broker/weir/internal/testsvc"
)

// WithBinaries builds each package of bins (testsvc.WeirPackage for the
// broker, or a path relative to the test's package) into a temporary
// directory, sets its variable to the binary's path, calls run and
// removes the directory; it returns run's exit code, or 1 when a build
// fails. An example's TestMain passes m.Run.
func WithBinaries(example string, bins map[*string]string, run func() int) int {
	dir, err := os.MkdirTemp("", "weir-"+example+"-example")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for bin, pkg := range bins {
		if *bin, err = testsvc.Build(dir, pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return run()
}
