#!/usr/bin/env bash
# hush web in a real browser with one conversation of N messages (default
# 10,000): headless Chromium (through chromedriver, as the browser tests)
# opens the app, then the conversation, 10 times; for each, the time from
# the click to the frame after its newest page is drawn; the same for a
# conversation of one message (the baseline, same run); then the page's
# JavaScript heap. Needs curl, python3, chromium and chromedriver.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${HUSH_BIN_DIR:-target/debug}
D=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
$B/hush-server --data-dir $D/srv --listen 127.0.0.1:$PORT --rate-limit-ip 0 --rate-limit-account 0 > $D/srv.log 2>&1 &
SRV=$!
trap 'kill $SRV ${WEB:-} ${DRV:-} 2>/dev/null || true; rm -rf "$D"' EXIT
sleep 1
export HUSH_PASSPHRASE=pw
$B/hush --data-dir $D/a register --server http://127.0.0.1:$PORT alice >/dev/null
$B/hush --data-dir $D/b register --server http://127.0.0.1:$PORT bob >/dev/null
$B/hush --data-dir $D/c register --server http://127.0.0.1:$PORT carol >/dev/null
$B/hush --data-dir $D/a send carol hello >/dev/null
$B/hush --data-dir $D/a send bob first >/dev/null
$B/hush --data-dir $D/a web --json --listen 127.0.0.1:0 > $D/web.out 2>$D/web.err &
WEB=$!
for i in $(seq 50); do [ -s $D/web.out ] && break; sleep 0.2; done
URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' $D/web.out)
BASE=${URL%%/login*}
# A second session for sending (the secret works once; the browser gets a
# fresh hush web link below).
COOKIE=$(curl -s -o /dev/null -D - "$URL" | sed -n 's/^set-cookie: \([^;]*\).*/\1/ip')
CONV=$(curl -s -H "Cookie: $COOKIE" $BASE/api/conversations | python3 -c 'import json,sys; print([c for c in json.load(sys.stdin) if c["name"] == "bob"][0]["id"])')
N=${N:-10000}
seq $N | xargs -P 64 -I{} curl -s -o /dev/null -H "Cookie: $COOKIE" -H 'Content-Type: application/json' \
  -d "{\"conversation\": $CONV, \"text\": \"message {} with some text in it to look like a chat\"}" $BASE/api/messages
kill $WEB; wait $WEB 2>/dev/null || true
$B/hush --data-dir $D/a web --json --listen 127.0.0.1:0 > $D/web2.out 2>$D/web2.err &
WEB=$!
for i in $(seq 50); do [ -s $D/web2.out ] && break; sleep 0.2; done
URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' $D/web2.out)
DPORT=$(free_port)
chromedriver --port=$DPORT > /dev/null 2>&1 &
DRV=$!
sleep 1
python3 - "$DPORT" "$URL" "$D/profile" <<'PY'
import json, sys, time, urllib.request
port, url, profile = sys.argv[1], sys.argv[2], sys.argv[3]
def wd(method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))["value"]
caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"args": [
    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
    "--window-size=1280,800", "--enable-precise-memory-info", f"--user-data-dir={profile}"]}}}}
sid = wd("POST", "/session", caps)["sessionId"]
s = f"/session/{sid}"
wd("POST", f"{s}/url", {"url": url})
while not wd("POST", f"{s}/execute/sync", {"script": "return document.querySelectorAll('button.conv').length === 2;", "args": []}):
    time.sleep(0.1)
# Each run: back to no conversation, then a click; the time until the frame
# after the newest page (50 messages, or 1) is in the page.
script = """
const [name, want] = arguments;
const done = arguments[arguments.length - 1];
document.getElementById('back').click();
const t0 = performance.now();
document.querySelector(`button.conv[data-name="${name}"]`).click();
const check = () => {
  if (document.querySelectorAll('#messages .msg').length >= want) {
    requestAnimationFrame(() => setTimeout(() => done(performance.now() - t0), 0));
  } else setTimeout(check, 1);
};
check();
"""
def runs(name, want):
    times = []
    for i in range(10):
        times.append(wd("POST", f"{s}/execute/async", {"script": script, "args": [name, want]}))
        time.sleep(0.3)
    times.sort()
    return times
for name, want, what in [("carol", 1, "1 message (baseline)"), ("bob", 50, "the long history")]:
    t = runs(name, want)
    print(f"open the conversation of {what}: median {t[len(t)//2]:.1f} ms, max {t[-1]:.1f} ms (10 runs)")
heap = wd("POST", f"{s}/execute/sync", {"script": "return performance.memory.usedJSHeapSize;", "args": []})
print(f"JavaScript heap after: {heap / 1048576:.1f} MiB")
wd("DELETE", s)
PY
