#!/bin/sh
# Exactness at scale: each test-guest workload is recorded for at least 50
# intervals of 100 ms and every interval is replayed (`replay --all`). The
# table gives the verdicts, where the timer interrupts landed (user mode,
# kernel mode, or in hlt), and the replay's cost. Not a speed benchmark:
# it lives here because it takes minutes (about 15 on 2 cores).
# usage: bench/replay-workloads.sh [BUILD_DIR] [WORKLOAD...]
set -eu
B=${1:-build}
[ $# -gt 0 ] && shift
S="$B/cli/simuboost" G="$B/guests"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# scales that give 50 to 100 intervals of 100 ms on our machines
scale_of() {
	case $1 in
	compute) echo 240 ;; memwrite) echo 150 ;; syscall) echo 250 ;; devread) echo 800 ;;
	esac
}
for w in ${*:-compute memwrite syscall devread}; do
	"$S" record --quiet --interval 100ms -o "$TMP/$w.rec" \
		--set "cmdline=workload=$w scale=$(scale_of "$w")" --set console_out=none \
		"$G/$w.cfg" >/dev/null
	n=$(ls "$TMP/$w.rec"/*.manifest | wc -l)
	k=0
	while [ "$k" -lt $((n - 1)) ]; do
		"$S" log show "$TMP/$w.rec" --interval "$k"
		k=$((k + 1))
	done >"$TMP/$w.log"
	start=$(date +%s.%N)
	"$S" replay "$TMP/$w.rec" --all --json >"$TMP/$w.json" || true
	end=$(date +%s.%N)
	python3 -c "print($end - $start)" >"$TMP/$w.wall"
done

python3 - "$TMP" ${*:-compute memwrite syscall devread} <<'PY'
import collections, json, re, sys
tmp, workloads = sys.argv[1], sys.argv[2:]
print(f"{'workload':<9} {'intervals':>9} {'exact':>6} {'%':>6} {'irq user':>9} {'irq kernel':>10} "
      f"{'irq hlt':>7} {'insns':>8} {'wall s':>7}  divergences")
total = exact = 0
for w in workloads:
    doc = json.load(open(f"{tmp}/{w}.json"))
    user = kernel = hlt = 0
    for line in open(f"{tmp}/{w}.log"):
        if " irq " not in line:
            continue
        if "halted" in line:
            hlt += 1
        elif int(re.search(r" rip (0x[0-9a-f]+)", line).group(1), 16) < 0x400000:  # USER_BASE
            kernel += 1
        else:
            user += 1
    kinds = collections.Counter(i.get("divergence", {}).get("kind", i["verdict"])
                                for i in doc["intervals"] if i["verdict"] != "exact")
    insns = sum(i.get("instructions", 0) for i in doc["intervals"])
    n = doc["intervals_total"]
    total += n
    exact += doc["exact"]
    print(f"{w:<9} {n:9} {doc['exact']:6} {100 * doc['exact'] / n:6.1f} {user:9} {kernel:10} "
          f"{hlt:7} {insns / 1e9:7.2f}G {float(open(f'{tmp}/{w}.wall').read()):7.1f}  "
          + (", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"))
print(f"all       {total:9} {exact:6} {100 * exact / total:6.1f}   (target: at least 99% exact)")
PY
