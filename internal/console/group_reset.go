package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// resetPage is the confirmation of an offset reset: every partition's
// committed offset before and after.
type resetPage struct {
	Group, Topic, To, At string
	Rows                 []resetRow
}

type resetRow struct {
	Partition int32
	Old, New  int64
}

// groupReset sets a group's committed offsets for one topic to the log
// start, the high watermark or the first offset at or after a time, as
// kafka-consumer-groups --reset-offsets --to-earliest, --to-latest and
// --to-datetime do. The first POST shows the plan; only a POST with
// confirm=yes commits it, and only while the group has no members.
func (c *Console) groupReset(ctx context.Context, s *session, r *http.Request) (view, error) {
	if err := r.ParseForm(); err != nil {
		return view{}, badRequestf("%v", err)
	}
	group, topic, to, at := r.PostForm.Get("name"), r.PostForm.Get("topic"), r.PostForm.Get("to"), r.PostForm.Get("at")
	if group == "" || topic == "" {
		return view{}, badRequestf("a group and a topic are required")
	}
	// The broker checks the commit too, but for the console's own
	// connection; this checks it for the browser's host.
	if err := c.allowed(s, r, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, group); err != nil {
		return view{}, fmt.Errorf("%s may not reset the offsets of group %q: it needs Read on the Group: %w", s.principal(), group, err)
	}
	if err := requireEmpty(ctx, s.adm, group); err != nil {
		return view{}, err
	}
	rows, err := planReset(ctx, s.adm, group, topic, to, at)
	if err != nil {
		return view{}, err
	}
	if r.PostForm.Get("confirm") != "yes" {
		return view{name: "reset", title: "Reset offsets of " + group, data: resetPage{Group: group, Topic: topic, To: to, At: at, Rows: rows}}, nil
	}
	offsets := kadm.Offsets{}
	for _, row := range rows {
		offsets.Add(kadm.Offset{Topic: topic, Partition: row.Partition, At: row.New, LeaderEpoch: -1})
	}
	// The commit goes with generation -1 and no member id: the group
	// coordinator refuses it if a member joined since the check above.
	committed, err := s.adm.CommitOffsets(ctx, group, offsets)
	if err != nil {
		return view{}, err
	}
	if err := committed.Error(); err != nil {
		return view{}, err
	}
	return view{redirect: "/group?name=" + url.QueryEscape(group) + "&reset=done"}, nil
}

// requireEmpty refuses a reset of a group with members, as Kafka does.
func requireEmpty(ctx context.Context, adm *kadm.Client, group string) error {
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return err
	}
	g, ok := described[group]
	switch {
	case !ok:
		return badRequestf("group %q is not in the response", group)
	case g.Err != nil:
		return g.Err
	case g.State != "Empty" && g.State != "Dead":
		return badRequestf("group %q is %s with %d members: offsets can be reset only while it has none (stop its consumers first)", group, g.State, len(g.Members))
	}
	return nil
}

// planReset computes the new offset of every partition of topic.
func planReset(ctx context.Context, adm *kadm.Client, group, topic, to, at string) ([]resetRow, error) {
	var listed kadm.ListedOffsets
	var err error
	switch to {
	case "start":
		listed, err = adm.ListStartOffsets(ctx, topic)
	case "end":
		listed, err = adm.ListEndOffsets(ctx, topic)
	case "timestamp":
		ms, perr := parseTime(at)
		if perr != nil {
			return nil, perr
		}
		listed, err = adm.ListOffsetsAfterMilli(ctx, ms, topic)
	default:
		return nil, badRequestf("reset to what? start, end or timestamp, not %q", to)
	}
	if err != nil {
		return nil, err
	}
	ps, ok := listed[topic]
	if _, missing := ps[-1]; !ok || missing {
		return nil, kerr.UnknownTopicOrPartition
	}
	old, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		return nil, err
	}
	rows := make([]resetRow, 0, len(ps))
	for p, o := range ps {
		if o.Err != nil {
			return nil, o.Err
		}
		row := resetRow{Partition: p, Old: -1, New: o.Offset}
		if c, ok := old.Lookup(topic, p); ok && c.Err == nil {
			row.Old = c.At
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Partition < rows[j].Partition })
	return rows, nil
}

// parseTime reads Unix milliseconds or a UTC time, at or after 1970. A
// ListOffsets timestamp below zero is not a time but a query (-1 the log
// end, -2 the log start, KIP-734's -3 the largest timestamp), so a time
// before 1970 would reset the group to one of those instead of failing.
func parseTime(s string) (int64, error) {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		parsed := false
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05"} {
			if t, terr := time.Parse(layout, s); terr == nil {
				ms, parsed = t.UnixMilli(), true
				break
			}
		}
		if !parsed {
			return 0, badRequestf("timestamp %q is neither Unix milliseconds nor a UTC time like 2006-01-02T15:04:05", s)
		}
	}
	if ms < 0 {
		return 0, badRequestf("timestamp %q is before 1970 (%d ms): no record has a time before 1970; reset to the start instead", s, ms)
	}
	return ms, nil
}
