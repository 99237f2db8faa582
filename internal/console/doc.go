// Package console is the broker's web console, served at / on the admin
// listener: the cluster, topics and their partitions, consumer groups
// with their lag (and offset resets), open transactions (and an abort for
// a hanging one) and a record browser that shows a partition as a
// read_committed and a read_uncommitted consumer see it.
//
// Pages are rendered on the server with html/template; the stylesheet is
// embedded in the binary and nothing is loaded from another host.
//
// The console reads the cluster through a Kafka client connected to this
// node's own listener, with the same kadm calls the CLI makes: a group's
// lag is kadm's Lag, exactly what `weir group describe` prints, and the
// pages see every node's partitions, groups and transactions, not only
// those this node leads. Where security is on, that client logs in as
// the console's user, so the broker checks the user's SCRAM credentials
// and ACLs for every page and action as it does for any client; without
// a login the client is User:ANONYMOUS on a PLAINTEXT listener, and the
// broker's authorizer, when one is configured, applies that principal's
// ACLs. Only what no Kafka API does runs in-process: this node's
// readiness and the coordinator's abort of an open transaction, which
// the console checks against the ACLs itself (Write on the
// TransactionalId) for the logged-in user or User:ANONYMOUS, from the
// browser's host; offset resets (Read on the Group) and partition aborts
// (ClusterAction) are checked for the browser's host too, besides the
// broker's check of the console's own connection.
package console
