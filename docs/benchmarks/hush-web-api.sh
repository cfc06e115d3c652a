#!/usr/bin/env bash
# hush web's local API with one conversation of N messages (default 10,000):
# the latency of a request that needs no client job (GET /api/me), of one
# that does (GET /api/contacts, the baseline), and of the first page and the
# conversation list, each the median and p90 of 20 sequential requests; then
# the process's RSS. Needs curl and python3.
set -euo pipefail
# Run from anywhere; the binaries come from this repository's debug build
# (`cargo build -p hush-server -p hush-cli`) unless HUSH_BIN_DIR names another.
cd "$(dirname "$0")/../.."
B=${HUSH_BIN_DIR:-target/debug}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$B/hush-server --data-dir $D/srv --listen 127.0.0.1:$PORT --rate-limit-ip 0 --rate-limit-account 0 > $D/srv.log 2>&1 &
SRV=$!
trap 'kill $SRV ${WEB:-} 2>/dev/null || true; rm -rf "$D"' EXIT
sleep 1
export HUSH_PASSPHRASE=pw
$B/hush --data-dir $D/a register --server http://127.0.0.1:$PORT alice >/dev/null
$B/hush --data-dir $D/b register --server http://127.0.0.1:$PORT bob >/dev/null
$B/hush --data-dir $D/a send bob first >/dev/null
$B/hush --data-dir $D/a web --json --listen 127.0.0.1:0 > $D/web.out 2>$D/web.err &
WEB=$!
for i in $(seq 50); do [ -s $D/web.out ] && break; sleep 0.2; done
URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' $D/web.out)
BASE=${URL%%/login*}
COOKIE=$(curl -s -o /dev/null -D - "$URL" | sed -n 's/^set-cookie: \([^;]*\).*/\1/ip')
echo "base $BASE"
CONV=$(curl -s -H "Cookie: $COOKIE" $BASE/api/conversations | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
N=${N:-10000}
start=$(date +%s.%N)
seq $N | xargs -P 64 -I{} curl -s -o /dev/null -w '%{http_code}\n' -H "Cookie: $COOKIE" -H 'Content-Type: application/json' \
  -d "{\"conversation\": $CONV, \"text\": \"message {} with some text in it to look like a chat\"}" $BASE/api/messages | sort | uniq -c
end=$(date +%s.%N)
echo "sent $N in $(echo "$end - $start" | bc) s"
measure() { # name path
  for i in $(seq 20); do curl -s -o /dev/null -w '%{time_total}\n' -H "Cookie: $COOKIE" "$BASE$2"; sleep 0.05; done |
    sort -n | awk -v n="$1" '{a[NR]=$1} END {printf "%-28s median %.1f ms  p90 %.1f ms\n", n, a[int(NR/2)+1]*1000, a[int(NR*0.9)]*1000}'
}
measure "GET /api/me (no client job)" /api/me
measure "GET /api/contacts" /api/contacts
measure "GET messages?limit=50" "/api/conversations/$CONV/messages?limit=50"
measure "GET /api/conversations" /api/conversations
echo "hush web RSS: $(ps -o rss= -p $WEB) KiB"
