package console

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Two checks keep another site from using the console through a browser
// that can reach it.
//
// Cross-site forms: a POST must carry an Origin header, or, from a
// browser that sent none, a Referer, naming the very host and port the
// request was sent to. A form posted by another site names that site; a
// POST with neither header is refused too, since a browser always sends
// one of them with a form it posts and the console has no use for posts
// from elsewhere.
//
// DNS rebinding: a site can make its own name resolve to the console's
// address, and its page's requests then carry that name in both Host and
// Origin, which match. So the Host header of every console request must
// name the console: an IP address (no other site's page can have an IP
// address of the console as its origin), localhost, or one of the names
// the node is configured with (Config.Hosts).

// hostAllowed reports whether hostport, a request's Host header, names
// this console.
func (c *Console) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if host == "" {
		return false
	}
	if net.ParseIP(host) != nil || strings.EqualFold(host, "localhost") {
		return true
	}
	for _, h := range c.cfg.Hosts {
		if strings.EqualFold(host, h) {
			return true
		}
	}
	return false
}

// sameOrigin reports whether r, a POST, comes from a page of this
// console: its Origin, or its Referer when it has no Origin, is
// http://HOST with HOST the request's Host.
func sameOrigin(r *http.Request) bool {
	from := r.Header.Get("Origin")
	if from == "" {
		from = r.Header.Get("Referer")
	}
	if from == "" || from == "null" {
		return false
	}
	u, err := url.Parse(from)
	return err == nil && u.Scheme == "http" && u.User == nil && strings.EqualFold(u.Host, r.Host)
}

// misdirected answers a request for a host name that is not the
// console's.
func misdirected(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "the console does not answer to the host name "+strconv.Quote(r.Host)+": use its IP address, localhost, or a name in advertised.listeners", http.StatusMisdirectedRequest)
}
