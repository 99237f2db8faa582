package console

import (
	"net/http"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/security"
)

// validLogin reports whether r carries the name and password of a SCRAM
// user, by a mechanism the console logs in with. It is checked here, in
// the process, before any page is made: a wrong password must get 401
// whatever the page asks the cluster for, not a page whose requests
// failed one by one.
func (c *Console) validLogin(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok || user == "" || pass == "" {
		return false
	}
	lookup := func(user, mechanism string) (metadata.ScramCredential, bool) {
		if !slices.Contains(c.cfg.Login, mechanism) {
			return metadata.ScramCredential{}, false
		}
		return c.cfg.Node.ScramCredential(user, mechanism)
	}
	return security.CheckPassword(lookup, user, pass)
}

// RequireLogin guards an admin endpoint that is not a console page (the
// profiler, /metrics): where security is on it asks for a SCRAM login
// by HTTP basic authentication, as the console does (Prometheus's
// basic_auth gives one), and the principal (the user, or User:ANONYMOUS
// without a login) must be allowed Describe on the Cluster when an
// authorizer is configured: these endpoints name every topic and group,
// as ListGroups does for Describe on the Cluster.
func (c *Console) RequireLogin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := &session{}
		if len(c.cfg.Login) > 0 {
			if !c.validLogin(r) {
				askLogin(w)
				return
			}
			s.user, _, _ = r.BasicAuth()
		}
		if err := c.allowed(s, r, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeCluster, "kafka-cluster"); err != nil {
			http.Error(w, s.principal()+" may not read this: it needs Describe on the Cluster", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// SameHost guards an endpoint a browser may be led to as the console's
// pages are: a request whose Host is not the console's is refused
// (origin.go), so a rebound name cannot read it.
func (c *Console) SameHost(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.hostAllowed(r.Host) {
			misdirected(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
