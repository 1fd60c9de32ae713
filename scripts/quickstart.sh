#!/bin/sh
# From a fresh Debian 12 machine to a finished run: installs dependencies,
# builds simuboost and the bundled test guest, runs every workload of the
# test guest under the vnode (KVM) and prints each checksum and a summary,
# records one, and simulates every interval of a recording on two nodes
# with analyses attached. On a machine without a usable /dev/kvm the vnode
# runs in a nested VM (scripts/nested-kvm.sh: kvm-amd in our QEMU's TCG),
# where the guest is far slower: the workloads run smaller there.
#   quickstart.sh --vnode-only DIR SCALE INTERVAL SIM_INTERVAL: the vnode's
#   part alone, as the nested VM runs it (vnode_part below).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
S="$BUILD/cli/simuboost"

# vnode_part DIR SCALE INTERVAL SIM_INTERVAL: every workload run, compute
# recorded at INTERVAL and resumed, and a memwrite recording at
# SIM_INTERVAL left in DIR/rec to simulate. SCALE (empty: each workload's
# own) sets the amount of work.
vnode_part() {
	dir=$1 scale=$2 ivl=$3 sim_ivl=$4
	"$S" cpuid --check
	echo "== simuboost run: the bundled test guest under the vnode =="
	for w in compute memwrite syscall devread; do
		out=$(mktemp)
		cmdline="workload=$w${scale:+ scale=$scale}"
		"$S" run --json --set console_out="$out" --set "cmdline=$cmdline" \
			"$BUILD/guests/$w.cfg" >"$out.json"
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
	compute="workload=compute${scale:+ scale=$scale}"
	echo "== full summary of one run (compute) =="
	"$S" run --set console_out=none --set "cmdline=$compute" "$BUILD/guests/compute.cfg"

	echo "== simuboost record: checkpoints every $ivl and the input log =="
	rec=$(mktemp -d)/compute.rec
	"$S" record --interval "$ivl" -o "$rec" --set console_out=none --set "cmdline=$compute" \
		"$BUILD/guests/compute.cfg"
	"$S" ckpt ls "$rec" | tail -4
	"$S" ckpt verify "$rec"
	mid=$(( $("$S" ckpt ls --json "$rec" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["checkpoints"]))') / 2 ))
	echo "== resuming the recorded guest live from checkpoint $mid =="
	"$S" run --from "$rec" --checkpoint "$mid" 2>/dev/null | grep '^checksum'
	rm -rf "$(dirname "$rec")"

	"$S" record --quiet --interval "$sim_ivl" -o "$dir/rec" \
		--set "cmdline=workload=memwrite scale=${scale:-2}" \
		--set console_out=none "$BUILD/guests/memwrite.cfg" >/dev/null
}

if [ "${1:-}" = --vnode-only ]; then
	vnode_part "$2" "$3" "$4" "$5"
	exit 0
fi

"$(pwd)/scripts/install-deps.sh" --if-missing
# The simnode's patched QEMU (cached outside the tree; ~4 minutes the first time).
"$(pwd)/simnode/qemu/build.sh" >/dev/null
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" -Dbuildtype=release -Dtests=disabled
ninja -C "$BUILD"

SIM=$(mktemp -d)
if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	vnode_part "$SIM" "" 100ms 20ms
else
	echo "simuboost: this machine has no usable /dev/kvm: the vnode runs in a nested VM" >&2
	echo "(scripts/nested-kvm.sh: kvm-amd in our QEMU's TCG), slowly, so at scale 2" >&2
	# Debian's python3 and its library go along (the VM has busybox alone)
	stdlib=$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
	BUILD=$BUILD scripts/nested-kvm.sh -o "$SIM" -s /usr/bin/python3 -s "$stdlib" -- \
		sh -c "BUILD='$BUILD' sh scripts/quickstart.sh --vnode-only \$NESTED_OUT 2 1s 100ms" 2>&1
fi

echo "== simuboost simulate: every interval replayed in QEMU on 2 nodes, with analyses =="
"$S" simulate "$SIM/rec" --nodes 2 -o "$SIM/out" \
	--analysis "$BUILD/analysis-plugins/insn-count.so,top=5" \
	--analysis "$BUILD/analysis-plugins/working-set.so,top=5"
echo "-- insn-count --"
cat "$SIM/out/insn-count.txt"
echo "-- working-set --"
cat "$SIM/out/working-set.txt"
"$S" ckpt plot "$SIM/rec" -o "$SIM/checkpoints.png"
echo "chart of the recording's checkpoints (downtime, dirty rate): $SIM/checkpoints.png"
