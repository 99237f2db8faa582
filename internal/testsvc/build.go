package testsvc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// WeirPackage is the import path of the weir command.
const WeirPackage = "github.com/weir-broker/weir/cmd/weir"

// Build compiles the main package pkg (an import path, or a directory
// relative to the calling test's package) into dir and returns the
// binary's path. Tests that run Weir's processes, to kill them, build them
// once in TestMain.
func Build(dir, pkg string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building %s: %w", pkg, err)
	}
	return bin, nil
}
