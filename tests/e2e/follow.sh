#!/bin/sh
# Simulation concurrent with recording: `record --simulate 2` replays each
# interval once its closing checkpoint is committed, and ends with the
# recording; every interval is exact and the merged analyses equal a
# serial replay's. Then `simulate --follow`, started before `record`
# creates the recording, simulates it as it grows. Without KVM the first
# part is skipped, and the recording that grows is the bundled one, laid
# down checkpoint by checkpoint in the order record commits them.
# usage: follow.sh SIMUBOOST GUEST_DIR   (env SIMUBOOST_ANALYSES)
set -eu
SIMUBOOST=$1 GUEST_DIR=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"
A="$SIMUBOOST_ANALYSES"
CFG="$GUEST_DIR/memwrite.cfg"

if ! kvm_usable; then
	echo "SKIP record --simulate: no usable /dev/kvm on this machine"
else
	"$SIMUBOOST" record --quiet --interval 20ms -o "$TMP/rec" --simulate 2 \
		--analysis "$A/insn-count.so" --analysis "$A/working-set.so" \
		--qemu-plugin "$SIMUBOOST_COUNT_PLUGIN,label=plain" --trace "$TMP/traces" \
		--set "cmdline=workload=memwrite scale=2" --set console_out="$TMP/console" "$CFG" \
		>/dev/null 2>"$TMP/err" || { cat "$TMP/err"; fail "record --simulate 2"; }
	grep -q "every interval exact" "$TMP/err" || { cat "$TMP/err"; fail "record's word on the simulation"; }
	n=$(($(ls "$TMP/rec"/*.manifest | wc -l) - 1))
	# a run of several intervals, or a node killed mid-run proves little
	[ "$n" -ge 8 ] || fail "only $n intervals recorded"
	python3 - "$TMP/rec.sim/simulate.json" "$n" <<'PY' || fail "record --simulate results"
import json, sys
d = json.load(open(sys.argv[1]))
iv = d["intervals"]
assert [i["interval"] for i in iv] == list(range(int(sys.argv[2]))), [i["interval"] for i in iv]
assert all(i["verdict"] == "exact" for i in iv), iv
print("record --simulate 2: %d intervals exact" % len(iv))
PY
	same_as_serial "$TMP/rec" "$TMP/rec.sim" "record --simulate" "$A/insn-count.so" \
		"$A/working-set.so"
	echo "record --simulate 2: analyses equal the serial replay's"
	# what record passed on: a plain QEMU plugin's output and a full trace
	# of every interval, which counts what the replay counted
	k=0
	while [ "$k" -lt "$n" ]; do
		grep -q "^plain: instructions [0-9]" "$TMP/rec.sim/qemu-plugins/$(printf %06d "$k").log" ||
			fail "record --simulate --qemu-plugin: interval $k"
		k=$((k + 1))
	done
	"$SIMUBOOST" trace ls --json "$TMP/traces" >"$TMP/traces.json" ||
		fail "record --simulate --trace: trace ls"
	python3 - "$TMP/rec.sim/simulate.json" "$TMP/traces.json" <<'PY' ||
import json, sys
sim = {i["interval"]: i["instructions"] for i in json.load(open(sys.argv[1]))["intervals"]}
traced = {t["interval"]: t["instructions"] for t in json.load(open(sys.argv[2]))}
assert traced == sim, (traced, sim)
PY
		fail "record --simulate --trace: the traces' instructions differ from the replay's"
	echo "record --simulate 2: plain QEMU plugin output and a trace for each of $n intervals"
fi

# --follow before the recording exists
"$SIMUBOOST" simulate --follow "$TMP/rec2" --nodes 2 --json -o "$TMP/sim2" \
	>"$TMP/sim2.json" 2>"$TMP/err2" &
sim=$!
sleep 1
if kvm_usable; then
	"$SIMUBOOST" record --quiet --interval 20ms -o "$TMP/rec2" \
		--set "cmdline=workload=memwrite scale=2" --set console_out="$TMP/console2" "$CFG" \
		>/dev/null 2>"$TMP/err" || { cat "$TMP/err"; fail "record"; }
else
	recording "$TMP/bundled"
	grow_recording "$TMP/bundled" "$TMP/rec2"
fi
rc=0
wait "$sim" || rc=$?
[ "$rc" -eq 0 ] || { cat "$TMP/err2" "$TMP/sim2.json"; fail "simulate --follow: rc $rc"; }
n=$(($(ls "$TMP/rec2"/*.manifest | wc -l) - 1))
# a run of several intervals, or a node killed mid-run proves little
[ "$n" -ge 8 ] || fail "only $n intervals recorded"
python3 - "$TMP/sim2.json" "$n" <<'PY' || fail "simulate --follow results"
import json, sys
iv = json.load(open(sys.argv[1]))["intervals"]
assert [i["interval"] for i in iv] == list(range(int(sys.argv[2]))), [i["interval"] for i in iv]
assert all(i["verdict"] == "exact" for i in iv), iv
print("simulate --follow: %d intervals exact, each once, as the recording grew" % len(iv))
PY
