package outbox

import "github.com/weir-broker/weir/internal/testsvc"

// SharedPostgres is the test binary's PostgreSQL server, for the external
// tests of this package.
func SharedPostgres() *testsvc.Postgres { return pg }
