#!/bin/sh
# Recording where this machine has no KVM: the vnode runs in a nested VM
# (scripts/nested-kvm.sh: kvm-amd in our QEMU's TCG) and records compute
# and devread; each prints the checksum the host reference predicts, its
# checkpoints verify, and every interval replays exact here. Where KVM is
# usable, record.sh covers this and the test skips.
# Also memwrite with an address space per task (spaces=1: every task
# writes the same virtual pages, each to physical pages of its own): the
# stores of its traced intervals, at their physical addresses, give the
# next checkpoint.
# usage: nested.sh SIMUBOOST GUEST_DIR GUEST_CHECKSUM
set -eu
SIMUBOOST=$1 GUEST_DIR=$2 GUEST_CHECKSUM=$3
. "$(dirname "$0")/lib.sh"
if kvm_usable; then
	echo "SKIP: this machine records under its own KVM (record.sh)"
	exit 77
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
root=$(cd "$(dirname "$0")/../.." && pwd)
s=$(cd "$(dirname "$SIMUBOOST")" && pwd)/$(basename "$SIMUBOOST")
g=$(cd "$GUEST_DIR" && pwd)
# The guest runs far slower nested: small scales, long intervals.
set -- compute "scale=2" 1s devread "scale=10" 100ms \
	memwrite "scale=1 tasks=2 ws=4 spaces=1" 10ms
job=
while [ $# -gt 0 ]; do
	job="$job '$s' record --quiet --interval $3 -o \$NESTED_OUT/$1.rec \
		--set 'cmdline=workload=$1 $2' --set console_out=\$NESTED_OUT/$1.console \
		'$g/$1.cfg' >/dev/null &&"
	shift 3
done
BUILD=$(pwd) "$root/scripts/nested-kvm.sh" -o "$TMP/n" -- sh -c "$job true" >"$TMP/log" 2>&1 ||
	{ cat "$TMP/log"; fail "record in the nested VM"; }
for w in "compute scale=2" "devread scale=10" "memwrite scale=1 tasks=2 ws=4 spaces=1"; do
	name=${w%% *}
	want=$("$GUEST_CHECKSUM" "workload=$w")
	got=$(grep '^checksum ' "$TMP/n/$name.console" || true)
	[ "$got" = "$want" ] || fail "$name: the guest printed '$got', the reference says '$want'"
	"$SIMUBOOST" ckpt verify "$TMP/n/$name.rec" >/dev/null || fail "$name: ckpt verify"
	[ "$name" != memwrite ] || continue # its replay below
	"$SIMUBOOST" replay "$TMP/n/$name.rec" --all --json >"$TMP/$name.json" ||
		fail "$name: not every interval replays exact: $(cat "$TMP/$name.json")"
	python3 - "$TMP/$name.json" "$name" <<'PY' || fail "$name: replay result"
import json, sys
d = json.load(open(sys.argv[1]))["intervals"]
assert len(d) >= 2 and all(i["verdict"] == "exact" for i in d), d
print("ok %s: recorded nested, %d intervals exact, %d instructions" %
      (sys.argv[2], len(d), sum(i["instructions"] for i in d)))
PY
done

# memwrite, spaces=1: the traced intervals that load CR3 (a switch between
# tasks), the two with the most instructions.
# Not every interval replays exact: the boot page tables, which the idle
# loop runs on between tasks, get accessed bits under TCG that KVM left
# clear (a pt-ad divergence, no trace).
mw="$TMP/n/memwrite.rec"
"$SIMUBOOST" replay "$mw" --all --json --trace "$TMP/mwt" >"$TMP/mw.json" || true
ks=$(python3 - "$TMP/mw.json" <<'PY'
import json, sys
d = [i for i in json.load(open(sys.argv[1]))["intervals"] if i["verdict"] == "exact"]
print(" ".join(str(i["interval"]) for i in sorted(d, key=lambda i: -i["instructions"])))
PY
)
checked=0
for k in $ks; do
	[ "$("$SIMUBOOST" trace grep --kind cr3 --interval "$k" "$TMP/mwt" | wc -l)" -gt 0 ] || continue
	"$SIMUBOOST" ckpt materialize "$mw" "$k" -o "$TMP/ram.k" >/dev/null &&
		"$SIMUBOOST" ckpt materialize "$mw" $((k + 1)) -o "$TMP/ram.next" >/dev/null &&
		{ "$SIMUBOOST" trace grep --kind store --json --interval "$k" "$TMP/mwt" &&
			"$SIMUBOOST" trace grep --kind ad-bits --json --interval "$k" "$TMP/mwt"; } \
			>"$TMP/t.jsonl" || fail "memwrite: materialize or trace grep of interval $k"
	python3 "$(dirname "$0")/stores-reproduce.py" "$TMP/ram.k" "$TMP/ram.next" "$TMP/t.jsonl" \
		"memwrite spaces=1, interval $k" || fail "memwrite spaces=1: stores of interval $k"
	checked=$((checked + 1))
	[ "$checked" -lt 2 ] || break
done
[ "$checked" -eq 2 ] || fail "memwrite spaces=1: $checked traced intervals with a CR3 load, not 2"
