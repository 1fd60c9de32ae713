#!/bin/sh
# Tracing cost and the trace library's speed, in one invocation: the
# compute workload is recorded at $IVL intervals; one interval is replayed
# without and with `--trace` (full instruction and memory tracing), then the
# records of the trace it wrote are written again and scanned by
# bench/trace-bench, against memcpy and lz4 over the writer's raw bytes.
# The target compares the interval alone; the command's time adds QEMU's
# start and the RAM load, which short intervals make a large part.
# Without KVM the recording is made in scripts/nested-kvm.sh (20-30 s), or
# REC=DIR takes one made elsewhere.
# usage: bench/trace.sh [BUILD_DIR]
#   env: REC=DIR (use this recording), IVL=10ms (the recording's interval),
#   SCALE=2, INTERVAL=K (the one
#   traced; default: the one with the most instructions),
#   MAX_RECORDS=30000000 (for the library part), RUNS=3 (each replay)
set -eu
B=${1:-build}
IVL=${IVL:-10ms} SCALE=${SCALE:-2} MAX_RECORDS=${MAX_RECORDS:-30000000} RUNS=${RUNS:-3} REC=${REC:-}
S="$B/cli/simuboost" G="$B/guests"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if [ -n "$REC" ]; then
	ln -s "$(cd "$REC" && pwd)" "$TMP/rec"
	echo "recording: $REC"
elif [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	"$S" record --quiet --interval "$IVL" -o "$TMP/rec" --set "cmdline=workload=compute scale=$SCALE" \
		--set console_out="$TMP/rec.out" "$G/compute.cfg" >/dev/null
	echo "recording: compute, scale $SCALE, $IVL intervals"
else
	# no KVM here: recorded in a nested VM, where the guest runs far slower,
	# so at 1 s intervals for a busy one
	abs_b=$(cd "$B" && pwd)
	BUILD=$abs_b "$(dirname "$0")/../scripts/nested-kvm.sh" -o "$TMP/nested" -- sh -c \
		"'$abs_b/cli/simuboost' record --quiet --interval 1s -o \$NESTED_OUT/rec \
		--set 'cmdline=workload=compute scale=$SCALE' --set console_out=none \
		'$abs_b/guests/compute.cfg'" >"$TMP/nested.log" 2>&1 ||
		{ cat "$TMP/nested.log" >&2; exit 1; }
	mv "$TMP/nested/rec" "$TMP/rec"
	echo "recording: compute, scale $SCALE, 1 s intervals, made in a nested VM (no /dev/kvm here)"
fi
mkdir "$TMP/traces"
# the busiest exact interval, unless one is given: intervals of a short recording
# vary from idle to full
if [ -z "${INTERVAL:-}" ]; then
	"$S" replay "$TMP/rec" --all --json >"$TMP/all.json" || true # exit 1 if one is not exact
	INTERVAL=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["intervals"]; print(max(d, key=lambda i: (i["verdict"] == "exact", i["instructions"]))["interval"])' "$TMP/all.json")
fi
# RUNS times each, alternating: a run's time varies by up to 2x on these
# machines; the medians go in the table
for run in $(seq "$RUNS"); do
	t0=$(date +%s.%N)
	"$S" replay "$TMP/rec" --interval "$INTERVAL" --json >"$TMP/plain.$run.json"
	t1=$(date +%s.%N)
	rm -rf "$TMP/traces"
	mkdir "$TMP/traces"
	"$S" replay "$TMP/rec" --interval "$INTERVAL" --json --trace "$TMP/traces" \
		>"$TMP/traced.$run.json"
	t2=$(date +%s.%N)
	echo "$t0 $t1 $t2" >"$TMP/times.$run"
done
python3 - "$TMP" "$RUNS" <<'PY'
import json, os, statistics, sys
tmp, runs = sys.argv[1], int(sys.argv[2])
load = lambda name: json.load(open(f"{tmp}/{name}"))["intervals"][0]
plain = [load(f"plain.{r}.json") for r in range(1, runs + 1)]
traced = [load(f"traced.{r}.json") for r in range(1, runs + 1)]
times = [list(map(float, open(f"{tmp}/times.{r}").read().split())) for r in range(1, runs + 1)]
size = sum(os.path.getsize(os.path.join(tmp, "traces", f)) for f in os.listdir(tmp + "/traces"))
print("interval %d: %d instructions, %s / %s; %d runs of each, medians" % (
      plain[0]["interval"], plain[0]["instructions"], plain[0]["verdict"], traced[0]["verdict"],
      runs))
# whole command (QEMU start and RAM load included) and the interval alone
# (the replay's own wall_s, from its first instruction to its stop)
med = statistics.median
a, b = med(p["wall_s"] for p in plain), med(t["wall_s"] for t in traced)
ca, cb = med(t[1] - t[0] for t in times), med(t[2] - t[1] for t in times)
each = lambda xs: " ".join("%.2f" % x["wall_s"] for x in xs)
print("%-34s %10s %10s %12s %10s   interval s of each run" % ("", "command s", "ratio",
      "interval s", "ratio"))
print("%-34s %10.2f %10.2f %12.2f %10.2f   %s" % ("replay", ca, 1.0, a, 1.0, each(plain)))
print("%-34s %10.2f %10.2f %12.2f %10.2f   %s" % ("replay --trace (full tracing)", cb, cb / ca,
      b, b / a, each(traced)))
print("target 3x: %s; %.0f MiB of trace" % ("met" if b <= 3 * a else "NOT met", size / 2**20))
PY
echo
# its temporary copy of the trace goes under $TMP too (removed on exit)
TMPDIR="$TMP" "$B/bench/trace-bench" "$TMP/traces/$(printf %06d "$INTERVAL").trace" "$MAX_RECORDS"
