#!/usr/bin/env bash
# Runs every Weir test on a fresh machine: installs what the tests need
# when it is missing (kcat and python3-confluent-kafka for the librdkafka
# tests, Node.js and the pinned KafkaJS (e2e/testdata/kafkajs) for the
# KafkaJS tests, iproute2 for the network partitions of the cluster tests, PostgreSQL and Redis servers that tests start themselves,
# Chromium for the lab report's browser test), checks that the tree is
# tidy, vetted and lint-clean, then runs the Go tests with the race detector.
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
# The TLS tests make their certificates with openssl, as a user would.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# Network partitions in cluster tests use network namespaces (`ip netns`).
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
# Debian's package is for /usr/bin/python3, which the e2e tests use.
/usr/bin/python3 -c 'import confluent_kafka' >/dev/null 2>&1 || need_apt+=(python3-confluent-kafka)
# Debian keeps PostgreSQL's server binaries off PATH.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# KafkaJS at the version its package-lock.json pins.
npm ci --prefix e2e/testdata/kafkajs --no-audit --no-fund --loglevel=error

# The tree stays clean: go.mod as `go mod tidy` leaves it, gofmt, go vet, and
# staticcheck's default checks at a pinned version (fetched by the go
# command, so go.mod carries none of its dependencies).
go mod tidy -diff
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "not gofmt-formatted:" $unformatted >&2
  exit 1
fi
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
go test -race -count=1 -timeout 35m ./... "$@"
