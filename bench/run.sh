#!/usr/bin/env bash
# Compares backfill's segment sink with analytics-go v3.3.0 on the same
# Parquet file and the same local receiver (a separate process, so the
# client's CPU and peak RSS are its own). Repetitions are interleaved; compare
# ratios within one run.
#   ROWS=1000000 REPS=3 bench/run.sh
# BASELINE=/path/to/client (a cmd/client built from another tree) adds its
# backfill gzip/plain runs to the same interleaving, and BASELINE_CLI=/path/to/backfill
# (the CLI built from that tree) its `backfill run` runs, for before/after
# ratios, printed last.
set -euo pipefail
cd "$(dirname "$0")"
ROWS=${ROWS:-1000000}
REPS=${REPS:-3}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"
go build -o "$WORK/receiver" ./cmd/receiver
go build -o "$WORK/client" ./cmd/client
go build -o "$WORK/gen" ./cmd/gen
(cd .. && go build -o "$WORK/backfill" ./cmd/backfill)
DATA=${DATA:-$WORK/events-$ROWS.parquet}
[ -f "$DATA" ] || "$WORK/gen" -rows "$ROWS" -out "$DATA"

source ./receiver.sh
# The real CLI on the same file: the file source, the runner (acks,
# checkpoints, dead letters) and the sink, as a user runs it. The file's
# columns are already named by message path, so it needs no transforms.
cat >"$WORK/bench.yaml" <<EOF
name: bench
source:
  file: {path: $DATA}
$(segment_sink)
state: $WORK/state
EOF
# The same without gzip: analytics-go sends plain JSON, so this is the
# like-for-like row.
sed -e 's/write_key: bench/write_key: bench\n    gzip: false/' "$WORK/bench.yaml" >"$WORK/bench-plain.yaml"
# The same with a delivery ledger: its cost is the difference.
{ cat "$WORK/bench-plain.yaml"; echo "ledger: $WORK/ledger"; } >"$WORK/bench-ledger.yaml"

configs=(
  "read|-mode read"
  "backfill gzip|-mode backfill -gzip=true"
  "backfill plain|-mode backfill -gzip=false"
  "backfill run (CLI) gzip|!"
  "backfill run (CLI) plain|!-plain"
  "backfill run (CLI) plain+ledger|!-ledger"
  "analytics-go batch=100|-mode analytics -batch 100"
  "analytics-go batch=500|-mode analytics -batch 500"
)
if [ -n "${ONLY:-}" ]; then
  # ONLY='CLI' keeps the configurations whose name matches the regexp.
  kept=()
  for c in "${configs[@]}"; do [[ ${c%%|*} =~ $ONLY ]] && kept+=("$c"); done
  configs=("${kept[@]}")
fi
if [ -n "${BASELINE:-}" ]; then
  configs+=("baseline gzip|@-mode backfill -gzip=true" "baseline plain|@-mode backfill -gzip=false")
fi
if [ -n "${BASELINE_CLI:-}" ]; then
  configs+=("baseline run (CLI) gzip|!" "baseline run (CLI) plain|!-plain")
fi
# The receiver's CPU (utime+stime of its process, in clock ticks) around
# each run: with both on one machine it is the other half of the cost.
received() { curl -s "$URL/stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Messages"])'; }
recv_ticks() { awk '{print $14 + $15}' "/proc/$RECV/stat"; }
TICK=$(getconf CLK_TCK)
: >"$WORK/results.tsv"
printf '%-24s %4s %10s %10s %12s %10s %10s %12s\n' path rep events/s wall_s cpu_us/event rss_MB received recv_us/event
for rep in $(seq "$REPS"); do
  for c in "${configs[@]}"; do
    name=${c%%|*}; args=${c#*|}; bin=$WORK/client
    if [ "${args:0:1}" = "@" ]; then bin=$BASELINE; args=${args:1}; fi
    r0=$(recv_ticks)
    if [ "${args:0:1}" = "!" ]; then
      cli=$WORK/backfill
      case "$name" in baseline*) cli=$BASELINE_CLI ;; esac
      m0=$(received)
      /usr/bin/time -v "$cli" run --fresh --progress none "$WORK/bench${args:1}.yaml" >/dev/null 2>"$WORK/time.txt" \
        || echo "  !! backfill run failed: $(grep -v "^\s" "$WORK/time.txt" | tail -3)"
      m1=$(received)
      # wall clock from time -v ("h:mm:ss" or "m:ss.ss")
      wall=$(awk -F': ' '/Elapsed/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$WORK/time.txt")
      printf '{"mode":"cli","rows":%d,"received":%d,"failed":0,"seconds":%s,"events_per_s":%s}\n' \
        "$ROWS" $((m1 - m0)) "$wall" "$(awk -v r="$ROWS" -v w="$wall" 'BEGIN {print r / w}')" >"$WORK/out.json"
    else
      # shellcheck disable=SC2086
      /usr/bin/time -v "$bin" -file "$DATA" -url "$URL" $args >"$WORK/out.json" 2>"$WORK/time.txt"
    fi
    recv=$(( $(recv_ticks) - r0 ))
    user=$(awk -F': ' '/User time/ {print $2}' "$WORK/time.txt")
    sys=$(awk -F': ' '/System time/ {print $2}' "$WORK/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
    python3 - "$WORK/out.json" "$user" "$sys" "$rss" "$name" "$rep" "$recv" "$TICK" "$WORK/results.tsv" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
user, sys_, rss = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
recv_s = int(sys.argv[7]) / int(sys.argv[8])
rows = r["rows"] or 1
recv = "%12.2f" % (recv_s / rows * 1e6) if r["mode"] != "read" else "%12s" % "-"
cpu = (user + sys_) / rows * 1e6
print("%-24s %4s %10.0f %10.2f %12.2f %10.0f %10d %s" % (sys.argv[5], sys.argv[6], r["events_per_s"], r["seconds"],
      cpu, rss / 1024, r["received"], recv))
with open(sys.argv[9], "a") as f:
    f.write("%s\t%s\t%f\t%f\n" % (sys.argv[5], sys.argv[6], r["events_per_s"], cpu))
if r["mode"] != "read" and (r["received"] != rows or r["failed"]):
    print("  !! %d rows, receiver got %d, %d failed" % (rows, r["received"], r["failed"]))
PY
  done
done

# Ratios to analytics-go within each repetition (the machine's speed drifts
# between repetitions), as min-max over the repetitions.
python3 - "$WORK/results.tsv" <<'PY'
import collections, sys
runs = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    name, rep, eps, cpu = line.rstrip("\n").split("\t")
    runs[rep][name] = (float(eps), float(cpu))
def span(xs):
    return "%.1f-%.1fx" % (min(xs), max(xs)) if xs else "-"
print()
print("%-24s %-22s %-22s %s" % ("vs analytics-go", "events/s vs batch=100", "events/s vs batch=500", "client CPU vs batch=100"))
for name in ["backfill run (CLI) plain", "backfill run (CLI) gzip", "backfill plain", "backfill gzip", "baseline plain", "baseline gzip"]:
    if not any(name in r for r in runs.values()):
        continue
    e100, e500, c100 = [], [], []
    for r in runs.values():
        if name not in r or r[name][0] == 0 or r[name][1] == 0:
            continue
        if r.get("analytics-go batch=100", (0, 0))[0] > 0:
            e100.append(r[name][0] / r["analytics-go batch=100"][0])
            c100.append(r["analytics-go batch=100"][1] / r[name][1])
        if r.get("analytics-go batch=500", (0, 0))[0] > 0:
            e500.append(r[name][0] / r["analytics-go batch=500"][0])
    print("%-24s %-22s %-22s %s" % (name, span(e100), span(e500), span(c100)))
PY

# Before/after: this tree against the baseline's, within each repetition.
python3 - "$WORK/results.tsv" <<'PY'
import collections, sys
runs = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    name, rep, eps, cpu = line.rstrip("\n").split("\t")
    runs[rep][name] = (float(eps), float(cpu))
pairs = [("backfill plain", "baseline plain"), ("backfill gzip", "baseline gzip"),
         ("backfill run (CLI) plain", "baseline run (CLI) plain"), ("backfill run (CLI) gzip", "baseline run (CLI) gzip"),
         ("backfill run (CLI) plain+ledger", "backfill run (CLI) plain")]
rows = []
for new, old in pairs:
    eps, cpu = [], []
    for r in runs.values():
        if new in r and old in r and r[old][0] > 0 and r[new][1] > 0:
            eps.append(r[new][0] / r[old][0])
            cpu.append(r[new][1] / r[old][1])
    if eps:
        rows.append((new, eps, cpu))
if rows:
    print()
    print("%-24s %-26s %s" % ("after / before (ledger: with / without)", "events/s (median, range)", "CPU per event (median, range)"))
    med = lambda xs: sorted(xs)[len(xs) // 2]
    for name, eps, cpu in rows:
        print("%-24s %.3f (%.3f-%.3f)%8s %.3f (%.3f-%.3f)" % (name, med(eps), min(eps), max(eps), "", med(cpu), min(cpu), max(cpu)))
PY
