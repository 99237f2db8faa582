package config

// Listeners in Kafka's URL form (KIP-103): `listeners` names each socket
// the broker accepts connections on as NAME://host:port, and
// `listener.security.protocol.map` says which security protocol each name
// speaks. `advertised.listeners` gives, per name, the address clients are
// told to use; a name it leaves out advertises its listener's own address.
// `inter.broker.listener.name` is the listener the nodes of a cluster use
// to reach each other. A bare host:port is a listener named PLAINTEXT, so
// a configuration written before names existed keeps its meaning.

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Security protocols, as Kafka names them.
const (
	Plaintext     = "PLAINTEXT"
	SSL           = "SSL"
	SASLPlaintext = "SASL_PLAINTEXT"
	SASLSSL       = "SASL_SSL"
)

// Listener is one entry of listeners or advertised.listeners.
type Listener struct {
	// Name is the listener's name (PLAINTEXT, SSL, CLIENT, …), upper case.
	Name string
	// Protocol is its security protocol, from
	// listener.security.protocol.map.
	Protocol string
	Host     string
	// Port may be 0 in listeners (a free port is picked), never in
	// advertised.listeners.
	Port int32
}

// Addr is host:port.
func (l Listener) Addr() string {
	return net.JoinHostPort(l.Host, strconv.Itoa(int(l.Port)))
}

// TLS reports whether the listener's connections are TLS.
func (l Listener) TLS() bool { return l.Protocol == SSL || l.Protocol == SASLSSL }

// SASL reports whether the listener's clients authenticate with SASL.
func (l Listener) SASL() bool { return l.Protocol == SASLPlaintext || l.Protocol == SASLSSL }

const defaultProtocolMap = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"

// parseProtocolMap reads listener.security.protocol.map.
func parseProtocolMap(s string) (map[string]string, error) {
	m := make(map[string]string)
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		name, proto, ok := strings.Cut(e, ":")
		name, proto = strings.ToUpper(strings.TrimSpace(name)), strings.ToUpper(strings.TrimSpace(proto))
		if !ok || name == "" {
			return nil, fmt.Errorf("listener.security.protocol.map entry %q: expected NAME:PROTOCOL", e)
		}
		switch proto {
		case Plaintext, SSL, SASLPlaintext, SASLSSL:
		default:
			return nil, fmt.Errorf("listener.security.protocol.map entry %q: unknown security protocol %q (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)", e, proto)
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("listener.security.protocol.map names %s twice", name)
		}
		m[name] = proto
	}
	return m, nil
}

// parseListeners reads a listeners-style list. advertised refuses port 0
// and wildcard hosts, which no client could dial.
func parseListeners(setting, value string, protocols map[string]string, advertised bool) ([]Listener, error) {
	var ls []Listener
	seen := make(map[string]bool)
	for _, e := range strings.Split(value, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		name, hostport := Plaintext, e
		if n, hp, ok := strings.Cut(e, "://"); ok {
			name, hostport = strings.ToUpper(n), hp
		}
		proto, ok := protocols[name]
		if !ok {
			return nil, fmt.Errorf("%s entry %q: listener name %s is not in listener.security.protocol.map", setting, e, name)
		}
		host, portStr, err := net.SplitHostPort(hostport)
		if err != nil {
			return nil, fmt.Errorf("%s entry %q: %v", setting, e, err)
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("%s entry %q: port %q is not a number from 0 to 65535", setting, e, portStr)
		}
		if advertised && (port == 0 || host == "" || net.ParseIP(host).IsUnspecified()) {
			return nil, fmt.Errorf("%s entry %q: an advertised address needs a host and port clients can dial", setting, e)
		}
		if seen[name] {
			return nil, fmt.Errorf("%s names listener %s twice", setting, name)
		}
		seen[name] = true
		ls = append(ls, Listener{Name: name, Protocol: proto, Host: host, Port: int32(port)})
	}
	if len(ls) == 0 && !advertised {
		return nil, fmt.Errorf("%s is empty: the broker needs at least one listener", setting)
	}
	return ls, nil
}

// Listeners are the broker's listeners, checked: each name is in the
// protocol map and appears once, and advertised.listeners and
// inter.broker.listener.name name only listeners that exist.
func (b *Broker) Listeners() ([]Listener, error) {
	protocols, err := parseProtocolMap(b.Get("listener.security.protocol.map"))
	if err != nil {
		return nil, err
	}
	ls, err := parseListeners("listeners", b.Get("listeners"), protocols, false)
	if err != nil {
		return nil, err
	}
	adv, err := parseListeners("advertised.listeners", b.Get("advertised.listeners"), protocols, true)
	if err != nil {
		return nil, err
	}
	for _, a := range adv {
		if indexOf(ls, a.Name) < 0 {
			return nil, fmt.Errorf("advertised.listeners names %s, which is not in listeners (%s)", a.Name, b.Get("listeners"))
		}
	}
	if ib := b.Get("inter.broker.listener.name"); ib != "" && indexOf(ls, strings.ToUpper(ib)) < 0 {
		return nil, fmt.Errorf("inter.broker.listener.name %s is not in listeners (%s)", ib, b.Get("listeners"))
	}
	return ls, nil
}

// Advertised returns the address clients are told for each listener: its
// advertised.listeners entry, or the listener's bound address (bound
// gives the port a listener on port 0 got).
func (b *Broker) Advertised(bound []Listener) ([]Listener, error) {
	protocols, err := parseProtocolMap(b.Get("listener.security.protocol.map"))
	if err != nil {
		return nil, err
	}
	adv, err := parseListeners("advertised.listeners", b.Get("advertised.listeners"), protocols, true)
	if err != nil {
		return nil, err
	}
	out := make([]Listener, 0, len(bound))
	for _, l := range bound {
		if i := indexOf(adv, l.Name); i >= 0 {
			l.Host, l.Port = adv[i].Host, adv[i].Port
		}
		out = append(out, l)
	}
	return out, nil
}

// InterBrokerListener is the name of the listener nodes reach each other
// on: inter.broker.listener.name, else the listener named PLAINTEXT, else
// the first listener.
func (b *Broker) InterBrokerListener(ls []Listener) string {
	if ib := b.Get("inter.broker.listener.name"); ib != "" {
		return strings.ToUpper(ib)
	}
	if indexOf(ls, Plaintext) >= 0 || len(ls) == 0 {
		return Plaintext
	}
	return ls[0].Name
}

func indexOf(ls []Listener, name string) int {
	for i, l := range ls {
		if l.Name == name {
			return i
		}
	}
	return -1
}
