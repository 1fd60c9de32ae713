#!/bin/sh
# Recording where this machine has no KVM: the vnode runs in a nested VM
# (scripts/nested-kvm.sh: kvm-amd in our QEMU's TCG) and records compute
# and devread; each prints the checksum the host reference predicts, its
# checkpoints verify, and every interval replays exact here. Where KVM is
# usable, record.sh covers this and the test skips.
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
set -- compute "scale=2" 1s devread "scale=10" 100ms
job=
while [ $# -gt 0 ]; do
	job="$job '$s' record --quiet --interval $3 -o \$NESTED_OUT/$1.rec \
		--set 'cmdline=workload=$1 $2' --set console_out=\$NESTED_OUT/$1.console \
		'$g/$1.cfg' >/dev/null &&"
	shift 3
done
BUILD=$(pwd) "$root/scripts/nested-kvm.sh" -o "$TMP/n" -- sh -c "$job true" >"$TMP/log" 2>&1 ||
	{ cat "$TMP/log"; fail "record in the nested VM"; }
for w in "compute scale=2" "devread scale=10"; do
	name=${w%% *}
	want=$("$GUEST_CHECKSUM" "workload=$w")
	got=$(grep '^checksum ' "$TMP/n/$name.console" || true)
	[ "$got" = "$want" ] || fail "$name: the guest printed '$got', the reference says '$want'"
	"$SIMUBOOST" ckpt verify "$TMP/n/$name.rec" >/dev/null || fail "$name: ckpt verify"
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
