#!/bin/sh
# simulate: a recording's intervals across node processes, coordinated over
# ZeroMQ. Every interval replays exact; the merged analysis equals a serial
# replay's; a node killed mid-run loses nothing (its interval runs again
# elsewhere) and duplicates nothing; a coordinator killed mid-run resumes
# from its saved schedule.
# usage: simulate.sh SIMUBOOST GUEST_DIR   (env SIMUBOOST_ANALYSES)
set -eu
SIMUBOOST=$1 GUEST_DIR=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"
A="$SIMUBOOST_ANALYSES"

rec="$TMP/memwrite.rec"
recording "$rec" --interval 20ms --set "cmdline=workload=memwrite scale=2" \
	--set console_out="$TMP/console" "$GUEST_DIR/memwrite.cfg"
n=$(($(ls "$rec"/*.manifest | wc -l) - 1))
# a run of several intervals, or a node killed mid-run proves little
[ "$n" -ge 8 ] || fail "only $n intervals recorded"

# two nodes, two analyses and a plain QEMU plugin; the same reports as one
# QEMU through every interval, and the plugin's output of every interval
"$SIMUBOOST" simulate "$rec" --nodes 2 --json -o "$TMP/sim" \
	--analysis "$A/insn-count.so" --analysis "$A/working-set.so" \
	--qemu-plugin "$SIMUBOOST_COUNT_PLUGIN,label=plain" >"$TMP/sim.json" 2>"$TMP/err" ||
	{ cat "$TMP/err" "$TMP/sim.json"; fail "simulate --nodes 2"; }
same_as_serial "$rec" "$TMP/sim" simulate "$A/insn-count.so" "$A/working-set.so"
python3 - "$TMP/sim.json" "$n" <<'PY' || fail "simulate results"
import json, sys
d = json.load(open(sys.argv[1]))
iv = d["intervals"]
assert [i["interval"] for i in iv] == list(range(int(sys.argv[2]))), iv
assert all(i["verdict"] == "exact" for i in iv), iv
assert {i["node"] for i in iv} == {1, 2}, "both nodes worked: %s" % [i["node"] for i in iv]
print("simulate: %d intervals exact on 2 nodes" % len(iv))
PY
k=0
while [ "$k" -lt "$n" ]; do
	grep -q "^plain: instructions [0-9]\+ accesses [0-9]\+$" \
		"$TMP/sim/qemu-plugins/$(printf %06d "$k").log" ||
		fail "--qemu-plugin: interval $k: $(cat "$TMP/sim/qemu-plugins/$(printf %06d "$k").log")"
	k=$((k + 1))
done
echo "simulate: a plain QEMU plugin's output for each of $n intervals"
# the nodes share this machine's disk: they read pages from the recording,
# and the vnode sends none
python3 - "$TMP/sim.json" <<'PY' || fail "demand paging from the recording"
import json, sys
d = json.load(open(sys.argv[1]))
iv = d["intervals"]
assert all(i["dsm"]["faults"] > 0 for i in iv), [i.get("dsm") for i in iv]
assert all(i["pages"]["source"] == "recording" and not i["pages"]["bytes_from"] for i in iv), \
    [i["pages"] for i in iv]
assert d["vnode"]["sent_pages"] == 0, d["vnode"]
print("simulate: demand-paged from the recording's packs; the vnode sent nothing")
PY
# demand paging from peers, as nodes on other machines do it: every
# interval faulted its pages in; nodes fetched from each other; the vnode
# sent no content twice (its upload is at most one copy of what the
# recording stores, whatever N)
"$SIMUBOOST" simulate "$rec" --nodes 2 --json --pages-over-wire >"$TMP/wire.json" 2>"$TMP/err" ||
	{ cat "$TMP/err" "$TMP/wire.json"; fail "simulate --pages-over-wire"; }
"$SIMUBOOST" ckpt ls "$rec" --json >"$TMP/ls.json"
python3 - "$TMP/wire.json" "$TMP/ls.json" <<'PY' || fail "demand paging and page distribution"
import json, sys
d = json.load(open(sys.argv[1]))
stored = sum(c["stored_pages"] for c in json.load(open(sys.argv[2]))["checkpoints"])
iv = d["intervals"]
assert all(i["verdict"] == "exact" for i in iv), iv
assert all(i["dsm"]["faults"] > 0 for i in iv), [i.get("dsm") for i in iv]
assert all(i["dsm"]["prefetch_used"] <= i["dsm"]["prefetched"] for i in iv)
assert all(i["pages"]["source"] == "peers" for i in iv), [i["pages"] for i in iv]
froms = [set(i["pages"]["bytes_from"]) for i in iv]
assert any(f - {"0"} for f in froms), "no node fetched from another: %s" % froms
sent = d["vnode"]["sent_pages"]
assert 0 < sent <= stored, "the vnode sent %d pages; the recording stores %d" % (sent, stored)
print("simulate: demand-paged over the wire; the vnode sent %d of %d stored pages; nodes "
      "fetched from each other" % (sent, stored))
PY

# a node killed once the run is under way (the schedule is saved after
# each result): every interval still comes back, exact, once; the nodes'
# page caches, filled over the wire, stay within the bound they are given
"$SIMUBOOST" simulate "$rec" --nodes 2 --json -o "$TMP/kill" --node-cache-mib 1 --pages-over-wire \
	>"$TMP/kill.json" 2>"$TMP/err" &
sim=$!
i=0
while [ ! -e "$TMP/kill/schedule" ] && [ "$i" -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
victim=$(pgrep -n -f "simnode --join ipc:///tmp/simuboost-simulate.$sim" || true)
[ -n "$victim" ] || fail "no node to kill"
kill -9 "$victim"
rc=0
wait "$sim" || rc=$?
[ "$rc" -eq 0 ] || { cat "$TMP/err" "$TMP/kill.json"; fail "simulate after a node died: rc $rc"; }
python3 - "$TMP/kill.json" "$n" <<'PY' || fail "results after a node died"
import json, sys
iv = json.load(open(sys.argv[1]))["intervals"]
assert [i["interval"] for i in iv] == list(range(int(sys.argv[2]))), iv
assert all(i["verdict"] == "exact" for i in iv), iv
assert all(0 < i["pages"]["cache"]["bytes"] <= 1 << 20 for i in iv), [i["pages"] for i in iv]
print("simulate: a node killed mid-run; %d intervals exact, each once" % len(iv))
PY

# the coordinator itself killed mid-run (its nodes go with it); --resume
# finishes the run from the schedule and results it saved
# kill_after_2 PID OUT: kill -9 the coordinator PID once OUT holds 2 results
kill_after_2() {
	wait_results "$2" 2 || true
	kill -9 "$1"
	wait "$1" || true
}
"$SIMUBOOST" simulate "$rec" --nodes 2 -o "$TMP/restart" >/dev/null 2>&1 &
kill_after_2 $! "$TMP/restart"
done_before=$(ls "$TMP/restart/results" | wc -l)
# a result lost with the machine and one damaged since: those intervals
# run again
set -- "$TMP/restart/results"/*.json
rm "$1"
printf '{"interval": ' >"$2"
"$SIMUBOOST" simulate "$rec" --nodes 2 -o "$TMP/restart" --resume --json >"$TMP/resume.json" \
	2>"$TMP/err" || { cat "$TMP/err" "$TMP/resume.json"; fail "simulate --resume"; }
[ "$(grep -c "is missing or damaged; it runs again" "$TMP/err")" -eq 2 ] ||
	{ cat "$TMP/err"; fail "simulate --resume: lost results not run again"; }
python3 - "$TMP/resume.json" "$n" "$done_before" <<'PY' || fail "results after a restart"
import json, sys
iv = json.load(open(sys.argv[1]))["intervals"]
assert [i["interval"] for i in iv] == list(range(int(sys.argv[2]))), iv
assert all(i["verdict"] == "exact" for i in iv), iv
print("simulate: coordinator killed after %s results, resumed: %d intervals exact" %
      (sys.argv[3], len(iv)))
PY

# a node from elsewhere (tcp) outlives its coordinator: the coordinator is
# killed mid-run and resumed on the same endpoint, and the node, idle and
# unheard of, says HELLO again and finishes the run
port=$((20000 + $$ % 20000))
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/secret"
set -- --nodes 0 --listen "tcp://127.0.0.1:$port" --secret-file "$TMP/secret" -o "$TMP/remote"
"$SIMUBOOST" simulate "$rec" "$@" >/dev/null 2>&1 &
sim=$!
"$SIMUBOOST" simnode --join "tcp://127.0.0.1:$port" --id 7 --secret-file "$TMP/secret" \
	2>"$TMP/node.err" &
node=$!
kill_after_2 "$sim" "$TMP/remote"
before=$(ls "$TMP/remote/results" | wc -l)
# (bounded: a node that does not come back leaves the coordinator waiting)
timeout 300 "$SIMUBOOST" simulate "$rec" "$@" --resume --json >"$TMP/remote.json" 2>"$TMP/err" ||
	{ cat "$TMP/err" "$TMP/node.err" "$TMP/remote.json"; fail "simulate --resume with a remote node"; }
rc=0
wait "$node" || rc=$?
[ "$rc" -eq 0 ] || { cat "$TMP/node.err"; fail "the remote node: rc $rc after the run"; }
python3 - "$TMP/remote.json" "$n" "$before" <<'PY' || fail "results with a node that joined again"
import json, sys
iv = json.load(open(sys.argv[1]))["intervals"]
assert [i["interval"] for i in iv] == list(range(int(sys.argv[2]))), iv
assert all(i["verdict"] == "exact" and i["node"] == 7 for i in iv), iv
print("simulate: coordinator killed after %s results and resumed; the remote node joined again: "
      "%d intervals exact" % (sys.argv[3], len(iv)))
PY
