package broker

import (
	"testing"

	"github.com/weir-broker/weir/internal/config"
)

// One cluster id on every node, however each spells the voters'
// addresses (the node itself as localhost, the others by IP; or a host
// renamed across restarts): Raft knows the voters by id.
func TestClusterIDDoesNotDependOnHowAVoterAddressIsSpelled(t *testing.T) {
	parse := func(s string) config.Quorum {
		v, err := config.ParseVoters(s)
		if err != nil {
			t.Fatal(err)
		}
		return config.Quorum{Voters: v}
	}
	a := clusterIDOf(parse("1@localhost:9093,2@10.0.0.2:9093,3@10.0.0.3:9093"))
	b := clusterIDOf(parse("1@10.0.0.1:9093,2@localhost:9093,3@10.0.0.3:9093"))
	if a != b {
		t.Fatalf("the same three voters give cluster id %q on node 1 and %q on node 2", a, b)
	}
}
