package weir

import (
	"net/http"
	"os"
	"strings"

	"github.com/weir-broker/weir/internal/config"
)

// redactedCmdline serves the command line as net/http/pprof's cmdline
// does (its arguments separated by NUL bytes), with the value of every
// setting that holds a secret hidden: `--set sasl.jaas.config=…` carries
// the node's own password.
func redactedCmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	args := make([]string, len(os.Args))
	for i, a := range os.Args {
		args[i] = redactArg(a)
	}
	_, _ = w.Write([]byte(strings.Join(args, "\x00")))
}

// redactArg hides the value of a NAME=VALUE argument (as --set takes
// them), of --flag=NAME=VALUE, and of --flag=VALUE, when NAME or flag
// names a secret. A value containing '=' is hidden whole.
func redactArg(arg string) string {
	prefix, rest := "", arg
	if strings.HasPrefix(arg, "-") {
		flag, value, ok := strings.Cut(arg, "=")
		if !ok {
			return arg
		}
		if secretSetting(strings.TrimLeft(flag, "-")) {
			return flag + "=[hidden]"
		}
		prefix, rest = flag+"=", value
	}
	if name, _, ok := strings.Cut(rest, "="); ok && secretSetting(name) {
		return prefix + name + "=[hidden]"
	}
	return arg
}

// secretSetting reports whether a setting's value is a secret: a
// setting of the Password type, or one whose name says it holds one.
func secretSetting(name string) bool {
	name = strings.ToLower(strings.TrimSpace(name))
	if d, ok := config.Lookup(name); ok && d.Type == config.Password {
		return true
	}
	for _, word := range []string{"password", "secret", "jaas", "credential", "token"} {
		if strings.Contains(name, word) {
			return true
		}
	}
	return false
}
