package metadata

import (
	"net"
	"strconv"
	"strings"
)

// Endpoint is where clients of the named listener reach the broker. A
// broker without that listener has no endpoint there (Kafka leaves it out
// of the answers given on that listener); one registered before listeners
// had names is reached at Host and Port on every listener.
func (br Broker) Endpoint(listener string) (host string, port int32, ok bool) {
	if br.Listeners == "" {
		return br.Host, br.Port, true
	}
	rest := br.Listeners
	for rest != "" {
		var e string
		e, rest, _ = strings.Cut(rest, ",")
		name, hostport, found := strings.Cut(e, "://")
		if !found || name != listener {
			continue
		}
		h, p, err := net.SplitHostPort(hostport)
		if err != nil {
			return "", 0, false
		}
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil {
			return "", 0, false
		}
		return h, int32(n), true
	}
	return "", 0, false
}
