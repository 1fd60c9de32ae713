#!/bin/sh
# Tracing cost and the trace library's speed, in one invocation: the
# compute workload is recorded at $IVL intervals; one interval is replayed
# without and with `--trace` (full instruction and memory tracing), then the
# records of the trace it wrote are written again and scanned by
# bench/trace-bench, against memcpy and lz4 over the writer's raw bytes.
# The target compares the interval alone; the command's time adds QEMU's
# start and the RAM load, which short intervals make a large part.
# usage: bench/trace.sh [BUILD_DIR]
#   env: IVL=10ms (the recording's interval), SCALE=2, INTERVAL=K (the one
#   traced; default: the one with the most instructions),
#   MAX_RECORDS=30000000 (for the library part)
set -eu
B=${1:-build}
IVL=${IVL:-10ms} SCALE=${SCALE:-2} MAX_RECORDS=${MAX_RECORDS:-30000000}
S="$B/cli/simuboost" G="$B/guests"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

"$S" record --quiet --interval "$IVL" -o "$TMP/rec" --set "cmdline=workload=compute scale=$SCALE" \
	--set console_out="$TMP/rec.out" "$G/compute.cfg" >/dev/null
mkdir "$TMP/traces"
# the busiest interval, unless one is given: intervals of a short recording
# vary from idle to full
if [ -z "${INTERVAL:-}" ]; then
	"$S" replay "$TMP/rec" --all --json >"$TMP/all.json"
	INTERVAL=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["intervals"]; print(max(d, key=lambda i: i["instructions"])["interval"])' "$TMP/all.json")
fi
t0=$(date +%s.%N)
"$S" replay "$TMP/rec" --interval "$INTERVAL" --json >"$TMP/plain.json"
t1=$(date +%s.%N)
"$S" replay "$TMP/rec" --interval "$INTERVAL" --json --trace "$TMP/traces" >"$TMP/traced.json"
t2=$(date +%s.%N)
python3 - "$TMP" "$t0" "$t1" "$t2" <<'PY'
import json, os, sys
tmp, t0, t1, t2 = sys.argv[1], *map(float, sys.argv[2:])
plain = json.load(open(tmp + "/plain.json"))["intervals"][0]
traced = json.load(open(tmp + "/traced.json"))["intervals"][0]
size = sum(os.path.getsize(os.path.join(tmp, "traces", f)) for f in os.listdir(tmp + "/traces"))
print("interval %d: %d instructions, %s / %s" % (plain["interval"], plain["instructions"],
      plain["verdict"], traced["verdict"]))
# whole command (QEMU start and RAM load included) and the interval alone
# (the replay's own wall_s, from its first instruction to its stop)
a, b = plain["wall_s"], traced["wall_s"]
print("%-34s %10s %10s %12s %10s" % ("", "command s", "ratio", "interval s", "ratio"))
print("%-34s %10.2f %10.2f %12.2f %10.2f" % ("replay", t1 - t0, 1.0, a, 1.0))
print("%-34s %10.2f %10.2f %12.2f %10.2f   target 3x: %s; %.0f MiB written" % (
      "replay --trace (full tracing)", t2 - t1, (t2 - t1) / (t1 - t0), b, b / a,
      "met" if b <= 3 * a else "NOT met", size / 2**20))
PY
echo
# its temporary copy of the trace goes under $TMP too (removed on exit)
TMPDIR="$TMP" "$B/bench/trace-bench" "$TMP/traces/$(printf %06d "$INTERVAL").trace" "$MAX_RECORDS"
