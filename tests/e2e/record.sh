#!/bin/sh
# record: each test-guest workload is recorded with 100 ms intervals (at
# least 30 of them), the recording verifies, and the guest resumed live from
# the first, a middle and the last resumable checkpoint finishes with the
# reference checksum.
# usage: record.sh SIMUBOOST GUEST_DIR GUEST_CHECKSUM [WORKLOAD...]
set -eu
SIMUBOOST=$1 GUEST_DIR=$2 GUEST_CHECKSUM=$3
shift 3
. "$(dirname "$0")/lib.sh"
need_kvm "record"
WORKLOADS=${*:-compute memwrite syscall devread}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

for w in $WORKLOADS; do
	# Enough work for well over 30 intervals of 100 ms. memwrite gets a
	# 4 MiB working set: under this host's PVM KVM the first write to each
	# page after a checkpoint costs several microseconds (see README), and
	# 64 MiB rewritten every 100 ms would make the test take minutes.
	case $w in
	devread) params="workload=$w scale=600" ;;
	memwrite) params="workload=$w ws=4 scale=2000" ;;
	*) params="workload=$w scale=150" ;;
	esac
	want=$("$GUEST_CHECKSUM" $params)
	rec="$TMP/$w.rec"
	rc=0
	"$SIMUBOOST" record --json --interval 100ms -o "$rec" --set "cmdline=$params" \
		--set console_out="$TMP/$w.console" "$GUEST_DIR/$w.cfg" >"$TMP/$w.json" \
		2>"$TMP/$w.err" || rc=$?
	[ "$rc" -eq 0 ] || { cat "$TMP/$w.err"; fail "$w: record exited $rc"; }
	got=$(grep '^checksum ' "$TMP/$w.console" || true)
	[ "$got" = "$want" ] || fail "$w: recorded guest printed '$got', reference '$want'"
	n=$(json_field "$TMP/$w.json" committed)
	irqs=$(json_field "$TMP/$w.json" interrupts_logged)
	[ "$n" -ge 31 ] || fail "$w: only $n checkpoints (want >= 30 intervals)"
	"$SIMUBOOST" ckpt verify "$rec" >"$TMP/$w.verify" ||
		{ cat "$TMP/$w.verify"; fail "$w: ckpt verify"; }
	# The last checkpoint is the guest's exit; the one before is the last
	# one a guest can resume from.
	last=$((n - 2))
	resume() { # K: runs the guest from checkpoint K, prints the checksum line
		rc=0
		"$SIMUBOOST" run --json --from "$rec" --checkpoint "$1" \
			--set console_out="$TMP/$w.$1.console" >"$TMP/$w.$1.json" 2>"$TMP/$w.$1.err" || rc=$?
		[ "$rc" -eq 0 ] || { cat "$TMP/$w.$1.err"; fail "$w: run --from checkpoint $1 exited $rc"; }
		grep '^checksum ' "$TMP/$w.$1.console" || true
	}
	for k in 0 $((last / 2)); do
		got=$(resume $k)
		[ "$got" = "$want" ] || fail "$w: resumed from checkpoint $k, printed '$got', want '$want'"
	done
	# The last boundaries can fall after the guest printed its checksum and
	# before it exited (its last lines are slow port writes): a guest resumed
	# there must print exactly the rest of the recorded output (exit status
	# 0 was checked), and the latest checkpoint before the checksum must
	# print it.
	got=$(resume $last) skipped=0
	while [ "$got" != "$want" ]; do
		# (the tick count differs: the resumed guest runs on new time)
		python3 -c 'import sys, re
a, b = (re.sub(rb"ticks \d+", b"ticks", open(f, "rb").read()) for f in sys.argv[1:])
sys.exit(not b.endswith(a))' "$TMP/$w.$last.console" "$TMP/$w.console" && [ "$skipped" -lt 5 ] ||
			fail "$w: resumed from checkpoint $last, printed '$got', want '$want'"
		last=$((last - 1)) skipped=$((skipped + 1))
		got=$(resume $last)
	done
	if "$SIMUBOOST" run --from "$rec" --checkpoint $((n - 1)) >/dev/null 2>"$TMP/$w.final.err"; then
		fail "$w: resuming the final checkpoint should be refused"
	fi
	grep -q "guest exited" "$TMP/$w.final.err" || fail "$w: unclear final-checkpoint error: $(cat "$TMP/$w.final.err")"
	"$SIMUBOOST" log show "$rec" --interval 1 >"$TMP/$w.log1" || fail "$w: log show"
	grep -q "stop" "$TMP/$w.log1" || fail "$w: interval 1 has no stop landmark"
	echo "ok $w: $want, $n checkpoints, $irqs interrupts logged, resumed from 0, $((last / 2)), $last"
done
