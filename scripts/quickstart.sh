#!/bin/sh
# From a fresh Debian 12 machine to a finished run: installs dependencies,
# builds simuboost and the bundled test guest, runs every workload of the
# test guest under the vnode (KVM) and prints each checksum and a summary,
# records one, and simulates every interval of a recording on two nodes
# with analyses attached. On a machine without a usable /dev/kvm nothing
# can run under the vnode: it says so, simulates the recording bundled in
# tests/data instead, and exits 1.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}

"$(pwd)/scripts/install-deps.sh" --if-missing
# The simnode's patched QEMU (cached outside the tree; ~4 minutes the first time).
"$(pwd)/simnode/qemu/build.sh" >/dev/null
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" -Dbuildtype=release -Dtests=disabled
ninja -C "$BUILD"

S="$BUILD/cli/simuboost"

# simulate REC DIR: every interval of REC on 2 nodes, two analyses' reports
simulate() {
	"$S" simulate "$1" --nodes 2 -o "$2/out" \
		--analysis "$BUILD/analysis-plugins/insn-count.so,top=5" \
		--analysis "$BUILD/analysis-plugins/working-set.so,top=5"
	echo "-- insn-count --"
	cat "$2/out/insn-count.txt"
	echo "-- working-set --"
	cat "$2/out/working-set.txt"
	"$S" ckpt plot "$1" -o "$2/checkpoints.png"
	echo "chart of the recording's checkpoints (downtime, dirty rate): $2/checkpoints.png"
}

if ! [ -c /dev/kvm ] || ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	echo "simuboost: this machine has no usable /dev/kvm, so nothing can run or be" >&2
	echo "recorded under the vnode here. Simulating the bundled recording instead." >&2
	SIM=$(mktemp -d)
	"$S" ckpt import tests/data/devread-10ms.tar "$SIM/rec"
	echo "== simuboost simulate: the bundled recording's intervals in QEMU on 2 nodes =="
	simulate "$SIM/rec" "$SIM"
	echo "simuboost: run and record were skipped: they need KVM (/dev/kvm)" >&2
	exit 1
fi
"$S" cpuid --check
echo "== simuboost run: the bundled test guest under the vnode =="
for w in compute memwrite syscall devread; do
	out=$(mktemp)
	"$S" run --json --set console_out="$out" "$BUILD/guests/$w.cfg" >"$out.json"
	python3 - "$w" "$out" "$out.json" <<'PY'
import json, sys
w, console, summary = sys.argv[1:]
s = json.load(open(summary))
checksum = next((l.strip() for l in open(console) if l.startswith("checksum ")), "no checksum!")
print(f"{w:9s} {checksum}   exit {s['guest_status']}  {s['wall_seconds']:.2f}s  "
      f"{s['exits_total']} exits  {s['interrupts_injected']} interrupts injected")
PY
	rm -f "$out" "$out.json"
done
echo "== full summary of one run (compute) =="
"$S" run --set console_out=none "$BUILD/guests/compute.cfg"

echo "== simuboost record: checkpoints every 100 ms and the input log =="
REC=$(mktemp -d)/compute.rec
"$S" record --interval 100ms -o "$REC" --set console_out=none "$BUILD/guests/compute.cfg"
"$S" ckpt ls "$REC" | tail -4
"$S" ckpt verify "$REC"
mid=$(( $("$S" ckpt ls --json "$REC" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["checkpoints"]))') / 2 ))
echo "== resuming the recorded guest live from checkpoint $mid =="
"$S" run --from "$REC" --checkpoint "$mid" 2>/dev/null | grep '^checksum'
rm -rf "$(dirname "$REC")"

echo "== simuboost simulate: every interval replayed in QEMU on 2 nodes, with analyses =="
SIM=$(mktemp -d)
"$S" record --quiet --interval 20ms -o "$SIM/rec" --set "cmdline=workload=memwrite scale=2" \
	--set console_out=none "$BUILD/guests/memwrite.cfg" >/dev/null
simulate "$SIM/rec" "$SIM"
