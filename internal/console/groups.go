package console

import (
	"context"
	"net/http"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
)

// groupRow is one group of the groups list.
type groupRow struct {
	Name     string
	State    string
	Protocol string
	Members  int
	Lag      int64
	Err      string
}

// groups lists every group with its total lag, from one kadm Lag call
// over all of them (what `weir group describe` asks for one).
func (c *Console) groups(ctx context.Context, s *session, _ *http.Request) (view, error) {
	lags, err := s.adm.Lag(ctx)
	if err != nil {
		return view{}, err
	}
	rows := make([]groupRow, 0, len(lags))
	for _, l := range lags {
		row := groupRow{Name: l.Group, State: l.State, Protocol: l.ProtocolType, Members: len(l.Members), Lag: totalLag(l.Lag)}
		if err := l.Error(); err != nil {
			row.Err = err.Error()
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	return view{name: "groups", title: "Consumer groups", data: rows}, nil
}

// totalLag adds the partitions' lag as `weir group describe` does:
// partitions whose lag is unknown (-1) count nothing.
func totalLag(l kadm.GroupLag) int64 {
	var total int64
	for _, ps := range l {
		for _, p := range ps {
			if p.Lag >= 0 {
				total += p.Lag
			}
		}
	}
	return total
}

// groupPage is one group: its members, assignment and lag per partition.
type groupPage struct {
	Name     string
	State    string
	Protocol string
	Members  []memberRow
	Lag      []lagRow
	Total    int64
	Topics   []string // topics the group has committed to or is assigned
	CanReset bool     // no members: offsets may be reset, as in Kafka
	Notice   string
}

type memberRow struct {
	ID, Instance, ClientID, Host, Assigned string
}

// lagRow is one partition's line of `weir group describe`.
type lagRow struct {
	Topic     string
	Partition int32
	Committed int64
	HW        int64
	Lag       int64
	Member    string
	Err       string
}

func (c *Console) group(ctx context.Context, s *session, r *http.Request) (view, error) {
	name := r.URL.Query().Get("name")
	if name == "" {
		return view{}, badRequestf("which group? (?name=)")
	}
	lags, err := s.adm.Lag(ctx, name)
	if err != nil {
		return view{}, err
	}
	l, ok := lags[name]
	switch {
	case !ok:
		return view{}, badRequestf("group %q is not in the response", name)
	case l.Error() != nil:
		return view{}, l.Error()
	case l.State == "Dead":
		return view{}, badRequestf("no such group: %q", name)
	}
	p := groupPage{Name: name, State: l.State, Protocol: l.ProtocolType, CanReset: len(l.Members) == 0}
	if l.Protocol != "" {
		p.Protocol += "/" + l.Protocol
	}
	if r.URL.Query().Get("reset") == "done" {
		p.Notice = "Offsets reset."
	}
	for _, m := range l.Members {
		row := memberRow{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost, Assigned: assigned(m)}
		if m.InstanceID != nil {
			row.Instance = *m.InstanceID
		}
		p.Members = append(p.Members, row)
	}
	topics := map[string]bool{}
	for _, pl := range l.Lag.Sorted() {
		row := lagRow{Topic: pl.Topic, Partition: pl.Partition, Committed: pl.Commit.At, HW: -1, Lag: pl.Lag}
		if pl.End.Err == nil {
			row.HW = pl.End.Offset
		}
		if pl.Member != nil {
			row.Member = pl.Member.MemberID
		}
		if pl.Err != nil {
			row.Err = pl.Err.Error()
		}
		if pl.Lag >= 0 {
			p.Total += pl.Lag
		}
		topics[pl.Topic] = true
		p.Lag = append(p.Lag, row)
	}
	for t := range topics {
		p.Topics = append(p.Topics, t)
	}
	sort.Strings(p.Topics)
	return view{name: "group", title: "Group " + name, data: p}, nil
}

// assigned lists a consumer member's partitions as topic:p,p.
func assigned(m kadm.DescribedGroupMember) string {
	a, ok := m.Assigned.AsConsumer()
	if !ok || len(a.Topics) == 0 {
		return ""
	}
	var parts []string
	for _, t := range a.Topics {
		ps := append([]int32(nil), t.Partitions...)
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		parts = append(parts, t.Topic+":"+joinIDs(ps))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
