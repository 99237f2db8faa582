package config

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

// Voter is one member of the metadata quorum: a node id and the address of
// its controller listener.
type Voter struct {
	ID   int32
	Addr string // host:port
}

// Quorum is the metadata quorum a node takes part in, checked across
// settings.
type Quorum struct {
	// Voters, sorted by id; empty when the node runs alone with a local
	// metadata log.
	Voters []Voter
	// Listen is this node's controller listener (controller.listeners).
	Listen string
	// NodeID is this node's id (node.id).
	NodeID int32
	// BrokerOnly says NodeID is not among the voters: the node receives
	// the metadata log as a learner (a non-voting member) and never votes
	// nor becomes the controller.
	BrokerOnly bool
	// Protocol is the controller listener's security protocol: PLAINTEXT,
	// or SSL (mutual TLS), from listener.security.protocol.map's entry for
	// controller.listener.names.
	Protocol string
}

// Enabled reports whether a quorum is configured.
func (q Quorum) Enabled() bool { return len(q.Voters) > 0 }

// ParseVoters parses controller.quorum.voters: id@host:port entries
// separated by commas, ids positive and distinct.
func ParseVoters(s string) ([]Voter, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []Voter
	seen := make(map[int32]bool)
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		idStr, addr, ok := strings.Cut(part, "@")
		if !ok {
			return nil, fmt.Errorf("voter %q: expected id@host:port", part)
		}
		id, err := strconv.ParseInt(idStr, 10, 32)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("voter %q: the id must be a positive integer", part)
		}
		if err := checkHostPort(addr); err != nil {
			return nil, fmt.Errorf("voter %q: %w", part, err)
		}
		if seen[int32(id)] {
			return nil, fmt.Errorf("voter id %d is listed more than once", id)
		}
		seen[int32(id)] = true
		out = append(out, Voter{ID: int32(id), Addr: addr})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func checkVoters(s string) error {
	_, err := ParseVoters(s)
	return err
}

func checkHostPort(s string) error {
	if s == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("%q: port must be between 1 and 65535", s)
	}
	return nil
}

// Quorum checks the quorum settings together and returns them. With no
// voters and no controller listener the node runs alone. Every node of a
// cluster needs a controller listener: a voter's is the address listed
// for it among the voters; a node outside the voters (broker only) sends
// its own to the voters when it asks to join, so it must be an address
// they can dial.
func (b *Broker) Quorum() (Quorum, error) {
	voters, err := ParseVoters(b.Get("controller.quorum.voters"))
	if err != nil {
		return Quorum{}, fmt.Errorf("controller.quorum.voters: %w", err)
	}
	q := Quorum{Voters: voters, Listen: b.Get("controller.listeners"), NodeID: int32(b.Int("node.id")), Protocol: Plaintext}
	protocols, err := parseProtocolMap(b.Get("listener.security.protocol.map"))
	if err != nil {
		return Quorum{}, err
	}
	name := strings.ToUpper(strings.TrimSpace(b.Get("controller.listener.names")))
	if p, ok := protocols[name]; ok {
		if p != Plaintext && p != SSL {
			return Quorum{}, fmt.Errorf("controller listener %s maps to %s: the metadata quorum's listener is PLAINTEXT or SSL (mutual TLS)", name, p)
		}
		q.Protocol = p
	}
	if len(voters) == 0 {
		if q.Listen != "" {
			return Quorum{}, fmt.Errorf("controller.listeners is set but controller.quorum.voters is empty: a controller needs the list of voters")
		}
		return q, nil
	}
	var self bool
	for _, v := range voters {
		self = self || v.ID == q.NodeID
	}
	switch {
	case q.NodeID <= 0:
		return Quorum{}, fmt.Errorf("node.id %d: a member of a quorum needs a positive node id", q.NodeID)
	case !self && q.Listen == "":
		return Quorum{}, fmt.Errorf("node.id %d is not among controller.quorum.voters (%s), so it runs as a broker only, which needs controller.listeners (--controller-listen): the voters send it the metadata log there", q.NodeID, b.Get("controller.quorum.voters"))
	case !self:
		if err := checkDialable(q.Listen); err != nil {
			return Quorum{}, fmt.Errorf("controller.listeners of broker-only node %d: %w", q.NodeID, err)
		}
		q.BrokerOnly = true
	case q.Listen == "":
		return Quorum{}, fmt.Errorf("node.id %d is a voter but controller.listeners (--controller-listen) is not set", q.NodeID)
	}
	if q.Protocol == Plaintext && b.clientsAuthenticate() {
		return Quorum{}, fmt.Errorf("the Kafka listeners authenticate clients, but the metadata quorum's listener (controller.listeners) is plaintext, where anyone who reaches it could write the metadata, users and ACLs among it: map it to SSL with listener.security.protocol.map=...,%s:SSL (mutual TLS; needs ssl.keystore.location and ssl.truststore.location)", strings.ToUpper(b.Get("controller.listener.names")))
	}
	return q, nil
}

// clientsAuthenticate reports whether this node's Kafka listeners make
// clients prove who they are (SASL, or TLS requiring client
// certificates) or enforce ACLs.
func (b *Broker) clientsAuthenticate() bool {
	if b.Get("authorizer.class.name") != "" {
		return true
	}
	ls, err := b.Listeners()
	if err != nil {
		return false
	}
	for _, l := range ls {
		if l.SASL() || (l.TLS() && b.Get("ssl.client.auth") == "required") {
			return true
		}
	}
	return false
}

// checkDialable refuses a listener address other nodes could not dial:
// a broker-only node's is sent to the voters as the address to reach it.
func checkDialable(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%q: the voters dial this address to reach the node, so it must name a host they can reach, not a wildcard", addr)
	}
	return nil
}

// VoterIDs lists the voters' ids in order.
func (q Quorum) VoterIDs() []int32 {
	ids := make([]int32, len(q.Voters))
	for i, v := range q.Voters {
		ids[i] = v.ID
	}
	return ids
}
