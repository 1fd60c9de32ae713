#!/bin/sh
# Checkpoint downtime and guest slowdown of `record`: copy-on-write against
# stop-and-copy, and against a run with no checkpoints at all, on the
# write-heavy workload (1 GiB guest, 256 MiB working set, 1 s intervals);
# then the store's bytes against the raw dirty bytes for every workload.
# All numbers come from this one invocation. Each memwrite mode runs RUNS
# times, interleaved: wall times are the runs' median (a run's wall time
# varies by several percent here), downtimes are over every checkpoint of
# every run.
# usage: bench/record.sh [BUILD_DIR]   (env SCALE=150 RUNS=3 for memwrite)
set -eu
B=${1:-build}
SCALE=${SCALE:-150}
RUNS=${RUNS:-3}
S="$B/cli/simuboost" G="$B/guests"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
MW="workload=memwrite ws=256 scale=$SCALE"

for run in $(seq "$RUNS"); do
	"$S" run --json --set memory=1G --set console_out=none --set "cmdline=$MW" \
		"$G/memwrite.cfg" >"$TMP/plain.$run.json"
	for mode in cow stop-copy; do
		"$S" record --json --checkpoint-mode=$mode --interval 1s -o "$TMP/$mode.rec" \
			--set memory=1G --set console_out=none --set "cmdline=$MW" \
			"$G/memwrite.cfg" >"$TMP/$mode.$run.json"
		rm -rf "$TMP/$mode.rec"
	done
done
for w in compute memwrite syscall devread; do
	# memwrite's 64 MiB rewritten every 100 ms is ~40 MiB of new pages per
	# checkpoint; the tests' 4 MiB working set keeps the recording small.
	params="workload=$w"
	[ "$w" = memwrite ] && params="workload=memwrite ws=4 scale=1000"
	"$S" record --json --interval 100ms -o "$TMP/$w.rec" --set console_out=none \
		--set "cmdline=$params" "$G/$w.cfg" >"$TMP/store-$w.json"
	du -sb "$TMP/$w.rec" | cut -f1 >"$TMP/du-$w"
	rm -rf "$TMP/$w.rec"
done

python3 - "$TMP" "$SCALE" "$RUNS" <<'PY'
import json, statistics, sys
tmp, scale, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
load = lambda name: json.load(open(f"{tmp}/{name}.json"))
def mode(name):
    rs = [load(f"{name}.{i}") for i in range(1, runs + 1)]
    down = sorted(d for r in rs for d in r.get("downtime_ns", []))
    pick = lambda q: down[min(len(down) - 1, max(0, int(q * len(down) + 0.999999) - 1))] if down else 0
    return {"wall": statistics.median(r["wall_seconds"] for r in rs),
            "walls": [r["wall_seconds"] for r in rs],
            "ckpts": sum(r.get("checkpoints", 0) for r in rs),
            "median": pick(0.5), "p99": pick(0.99), "max": down[-1] if down else 0,
            "faults": sum(r.get("write_faults", 0) for r in rs),
            "waited": sum(r.get("wp_faults", 0) for r in rs)}
plain, cow, sc = mode("plain"), mode("cow"), mode("stop-copy")
print(f"memwrite: 1 GiB guest, 256 MiB working set, scale={scale}, 1 s intervals, "
      f"{runs} runs of each")
print(f"{'mode':<10} {'ckpts':>5} {'median ms':>10} {'p99 ms':>9} {'max ms':>9} "
      f"{'wall s':>8} {'slowdown':>9} {'faults':>7} {'waited':>7}   wall s of each run")
each = lambda r: " ".join(f"{w:.2f}" for w in r["walls"])
print(f"{'no ckpts':<10} {'-':>5} {'-':>10} {'-':>9} {'-':>9} {plain['wall']:8.2f} "
      f"{'(base)':>9} {'-':>7} {'-':>7}   {each(plain)}")
for name, r in (("cow", cow), ("stop-copy", sc)):
    slow = r["wall"] / plain["wall"] - 1
    print(f"{name:<10} {r['ckpts']:>5} {r['median']/1e6:10.3f} {r['p99']/1e6:9.3f} "
          f"{r['max']/1e6:9.3f} {r['wall']:8.2f} {slow*100:8.1f}% {r['faults']:>7} "
          f"{r['waited']:>7}   {each(r)}")
print("faults: first writes to a 2 MiB region after a checkpoint; waited: those that had to "
      "copy the region first")
ratio = sc["median"] / max(cow["median"], 1)
print(f"median downtime, stop-copy / cow: {ratio:.1f}x   (targets: cow median <= 2 ms, >= 20x, "
      f"slowdown <= 5%)")
print()
print("store: bytes on disk against raw dirty bytes (100 ms intervals; memwrite ws=4 scale=1000)")
print(f"{'workload':<10} {'ckpts':>5} {'raw MiB':>9} {'pages MiB':>10} {'on disk MiB':>12} "
      f"{'pages/raw':>10} {'zero':>8} {'dedup':>8} {'stored':>8}")
for w in ("compute", "memwrite", "syscall", "devread"):
    r = load(f"store-{w}")
    disk = int(open(f"{tmp}/du-{w}").read())
    print(f"{w:<10} {r['committed']:>5} {r['raw_bytes']/2**20:9.1f} {r['stored_bytes']/2**20:10.2f} "
          f"{disk/2**20:12.2f} {r['stored_bytes']/max(r['raw_bytes'],1)*100:9.2f}% "
          f"{r['zero_pages']:>8} {r['dedup_pages']:>8} {r['stored_pages']:>8}")
PY
