#!/usr/bin/env bash
# A sync's second run against a full resend, on a users table of ROWS rows
# (default 10M) with 1% of them changed:
#   ROWS=10000000 bench/sync.sh
# ORDER=spread writes the users in a scattered order (user i*7919 mod ROWS
# at line i) instead of by id, as a table dumped in no key order.
# Runs, each under /usr/bin/time -v, against the local receiver:
#   first   the sync's first run: every row sent, the snapshot built
#   second  1% of the rows changed: only those sent
#   resend  the same table without sync: every row sent again
# and prints wall time, CPU (user+sys), peak RSS, messages received and the
# snapshot's size on disk.
set -euo pipefail
cd "$(dirname "$0")"
ROWS=${ROWS:-10000000}
ORDER=${ORDER:-id}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"
go build -o "$WORK/receiver" ./cmd/receiver
(cd .. && go build -o "$WORK/backfill" ./cmd/backfill)

users() { # $1: the plan of every 100th user (the 1% changed)
  awk -v n="$ROWS" -v p="$1" -v spread="$([ "$ORDER" = spread ] && echo 7919 || echo 1)" 'BEGIN { print "user_id,email,plan,country"
    for (l = 0; l < n; l++) { i = (l * spread) % n
      printf "u%d,u%d@example.com,%s,%s\n", i, i, (i % 100 == 7 ? p : "free"), (i % 3 ? "DE" : "US") } }' >"$WORK/users.csv"
}

source ./receiver.sh
received() { curl -s "$URL/stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Messages"])'; }

pipeline() { # $1: name, $2: extra top-level YAML
  cat >"$WORK/$1.yaml" <<EOF
name: $1
source: {file: {path: $WORK/users.csv, csv: {header: true}}}
transforms:
  - map: {type: identify, userId: user_id, traits: {email: email, plan: plan, country: country}}
$(segment_sink)
state: $WORK/state
$2
EOF
}
pipeline users "sync: {primary_key: [userId]}"
pipeline resend ""

run() { # $1: label, $2: pipeline
  before=$(received)
  /usr/bin/time -v "$WORK/backfill" run --fresh=$3 --progress none "$WORK/$2.yaml" >/dev/null 2>"$WORK/time.txt"
  after=$(received)
  python3 - "$1" "$WORK/time.txt" "$((after - before))" "$(du -sk "$WORK/state/users/snapshot" 2>/dev/null | cut -f1)" <<'PY'
import re, sys
label, path, sent, snap = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
t = open(path).read()
def f(k): return re.search(re.escape(k) + r": (.*)", t).group(1).strip()
wall = f("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")
secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall)))
cpu = float(f("User time (seconds)")) + float(f("System time (seconds)"))
rss = int(f("Maximum resident set size (kbytes)")) / 1024
print(f"{label:8s} wall {secs:7.1f} s  cpu {cpu:7.1f} s  peak RSS {rss:6.0f} MB  sent {sent:>10,d}  snapshot {int(snap or 0)/1024:7.0f} MB")
PY
}

echo "ROWS=$ROWS ORDER=$ORDER (work in $WORK)"
users free
run first users true
users pro
run second users false
run resend resend true
