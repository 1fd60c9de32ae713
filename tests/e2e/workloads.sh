#!/bin/sh
# Each test-guest workload runs under the vnode, exits 0 and prints the
# checksum that the host-side reference computation predicts; the timer
# drives preemption (thousands of injected interrupts for a multi-second run).
# usage: workloads.sh SIMUBOOST GUEST_DIR GUEST_CHECKSUM [WORKLOAD...]
set -eu
SIMUBOOST=$1 GUEST_DIR=$2 GUEST_CHECKSUM=$3
shift 3
. "$(dirname "$0")/lib.sh"
need_kvm "running the workloads under the vnode"
WORKLOADS=${*:-compute memwrite syscall devread}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
for w in $WORKLOADS; do
	rc=0
	"$SIMUBOOST" run --json --set console_out="$TMP/$w.console" "$GUEST_DIR/$w.cfg" \
		>"$TMP/$w.json" 2>"$TMP/$w.err" || rc=$?
	want=$("$GUEST_CHECKSUM" "workload=$w")
	got=$(grep '^checksum ' "$TMP/$w.console" || true)
	irqs=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["interrupts_injected"])' "$TMP/$w.json" 2>/dev/null || echo 0)
	wall=$(python3 -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))["wall_seconds"])' "$TMP/$w.json" 2>/dev/null || echo "?")
	if [ "$rc" -ne 0 ]; then
		echo "FAIL $w: simuboost run exited $rc"; cat "$TMP/$w.err"; tail -5 "$TMP/$w.console" 2>/dev/null; fail=1; continue
	fi
	if [ "$got" != "$want" ]; then
		echo "FAIL $w: guest printed '$got', reference says '$want'"; fail=1; continue
	fi
	# Preemption: a multi-second run at the guest's 1000 Hz timer injects
	# thousands of interrupts.
	if [ "$w" = compute ] && [ "$irqs" -lt 1000 ]; then
		echo "FAIL $w: only $irqs interrupts injected in ${wall}s"; fail=1; continue
	fi
	echo "ok $w: $got, $irqs interrupts injected, ${wall}s"
done
exit $fail
