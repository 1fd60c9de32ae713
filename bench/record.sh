#!/bin/sh
# Checkpoint downtime and guest slowdown of `record`: copy-on-write against
# stop-and-copy, and against a run with no checkpoints at all, on the
# write-heavy workload (1 GiB guest, 256 MiB working set, 1 s intervals);
# then the store's bytes against the raw dirty bytes for every workload.
# All numbers come from this one invocation.
# usage: bench/record.sh [BUILD_DIR]   (env SCALE=25 for memwrite by default)
set -eu
B=${1:-build}
SCALE=${SCALE:-25}
S="$B/cli/simuboost" G="$B/guests"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
MW="workload=memwrite ws=256 scale=$SCALE"

"$S" run --json --set memory=1G --set console_out=none --set "cmdline=$MW" \
	"$G/memwrite.cfg" >"$TMP/plain.json"
for mode in cow stop-copy; do
	"$S" record --json --checkpoint-mode=$mode --interval 1s -o "$TMP/$mode.rec" \
		--set memory=1G --set console_out=none --set "cmdline=$MW" "$G/memwrite.cfg" \
		>"$TMP/$mode.json"
	rm -rf "$TMP/$mode.rec"
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

python3 - "$TMP" "$SCALE" <<'PY'
import json, sys
tmp, scale = sys.argv[1], sys.argv[2]
load = lambda name: json.load(open(f"{tmp}/{name}.json"))
plain, cow, sc = load("plain"), load("cow"), load("stop-copy")
print(f"memwrite: 1 GiB guest, 256 MiB working set, scale={scale}, 1 s intervals")
print(f"{'mode':<12} {'ckpts':>5} {'median ms':>10} {'p99 ms':>9} {'max ms':>9} "
      f"{'wall s':>8} {'slowdown':>9} {'wp faults':>10}")
print(f"{'no ckpts':<12} {'-':>5} {'-':>10} {'-':>9} {'-':>9} {plain['wall_seconds']:8.2f} "
      f"{'(base)':>9} {'-':>10}")
for name, r in (("cow", cow), ("stop-copy", sc)):
    slow = r["wall_seconds"] / plain["wall_seconds"] - 1
    print(f"{name:<12} {r['checkpoints']:>5} {r['downtime_median_ns']/1e6:10.3f} "
          f"{r['downtime_p99_ns']/1e6:9.3f} {max(r['downtime_ns'])/1e6:9.3f} "
          f"{r['wall_seconds']:8.2f} {slow*100:8.1f}% {r['wp_faults']:>10}")
ratio = sc["downtime_median_ns"] / max(cow["downtime_median_ns"], 1)
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
