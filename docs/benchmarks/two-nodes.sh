#!/usr/bin/env bash
# relay through 1 SQLite node, 1 PostgreSQL node, and 2 PostgreSQL+NATS nodes
# (without and with --early-across-nodes), in one sitting, each with the raw
# relay baseline of its own run. With two servers hush-bench puts half the pairs
# across nodes.
set -u
# Run from anywhere; the binaries come from this repository's release build
# (`cargo build --release -p hush-server -p hush-bench`) unless named.
cd "$(dirname "$0")/../.."
B=${HUSH_BENCH:-target/release/hush-bench}
S=${HUSH_SERVER:-target/release/hush-server}
PG=postgres://postgres@127.0.0.1:5432/test
schema=bench2node_$$
psql "$PG" -qc "CREATE SCHEMA $schema" >/dev/null
url="$PG?options[search_path]=$schema"
d=$(mktemp -d)
start() { # port extra...
  local port=$1; shift
  "$S" --data-dir "$d/n$port" --listen 127.0.0.1:$port --rate-limit-ip 0 --rate-limit-account 0 \
    --max-account-connections 0 --max-queue-bytes 0 --max-send-bytes 0 "$@" >"$d/n$port.log" 2>&1 &
  echo $!
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.1; done
}
run() { echo "== $1"; shift; "$B" relay --json --no-pin --messages ${MSGS:-50000} "$@" ; echo; }
run "one node, SQLite (started by hush-bench)"
p1=$(start 7801 --database "$url")
run "one node, PostgreSQL" --server http://127.0.0.1:7801
kill $p1; wait $p1 2>/dev/null
p1=$(start 7801 --database "$url" --nats nats://127.0.0.1:4222)
p2=$(start 7802 --database "$url" --nats nats://127.0.0.1:4222)
run "two nodes, PostgreSQL + NATS" --server http://127.0.0.1:7801 --server http://127.0.0.1:7802
run "one of the two nodes (same cluster)" --server http://127.0.0.1:7801
kill $p1 $p2; wait 2>/dev/null
p1=$(start 7801 --database "$url" --nats nats://127.0.0.1:4222 --early-across-nodes)
p2=$(start 7802 --database "$url" --nats nats://127.0.0.1:4222 --early-across-nodes)
run "two nodes, PostgreSQL + NATS, --early-across-nodes" --server http://127.0.0.1:7801 --server http://127.0.0.1:7802
run "one of the two nodes (same cluster, --early-across-nodes)" --server http://127.0.0.1:7801
kill $p1 $p2; wait 2>/dev/null
psql "$PG" -qc "DROP SCHEMA $schema CASCADE" >/dev/null
rm -rf "$d"
