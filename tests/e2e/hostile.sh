#!/bin/sh
# Hostile input to a running simulation over tcp: random bytes, truncated,
# oversized and lying frames, a wrong secret, another version, an unknown
# type, a replayed frame, a message in two parts, authentic but malformed
# payloads, a result for an interval never assigned and a request for a
# page that does not exist, sent (tests/e2e/wire-send) to the coordinator,
# to the vnode's page server and to a node's page server. Each is refused
# and counted by its verdict, neither process crashes, and the run still
# completes with every interval exact.
# usage: hostile.sh SIMUBOOST GUEST_DIR WIRE_SEND
set -eu
SIMUBOOST=$1 GUEST_DIR=$2 SEND=$3
TMP=$(mktemp -d)
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null || true; done; rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"

rec="$TMP/rec"
recording "$rec" --interval 20ms --set "cmdline=workload=memwrite scale=2" \
	--set console_out="$TMP/console" "$GUEST_DIR/memwrite.cfg"
n=$(($(ls "$rec"/*.manifest | wc -l) - 1))
# a run of several intervals, or a node killed mid-run proves little
[ "$n" -ge 8 ] || fail "only $n intervals recorded"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/secret"
# ports from this process's id, away from the usual ones
base=$((20000 + ($$ % 10000) * 4))
COORD="tcp://127.0.0.1:$base" PAGES="tcp://127.0.0.1:$((base + 1))"
NODE_PAGES="tcp://127.0.0.1:$((base + 2))"

# node 1 first: its page server takes the first barrage before any run
"$SIMUBOOST" simnode --join "$COORD" --id 1 --secret-file "$TMP/secret" \
	--serve "$NODE_PAGES" 2>"$TMP/node1.err" &
node1=$!
pids="$pids $node1"
sleep 0.5
"$SEND" "$NODE_PAGES" "$TMP/secret" >"$TMP/send-node.txt" || fail "wire-send to the node"
kill -0 "$node1" 2>/dev/null || { cat "$TMP/node1.err"; fail "the node died of hostile input"; }

"$SIMUBOOST" simulate "$rec" --nodes 0 --listen "$COORD" --pages "$PAGES" \
	--secret-file "$TMP/secret" --json -o "$TMP/out" >"$TMP/sim.json" 2>"$TMP/sim.err" &
sim=$!
pids="$pids $sim"
sleep 0.5
"$SEND" "$COORD" "$TMP/secret" >"$TMP/send-coord.txt" || fail "wire-send to the coordinator"
"$SEND" "$PAGES" "$TMP/secret" >"$TMP/send-vnode.txt" || fail "wire-send to the vnode"
kill -0 "$sim" 2>/dev/null || { cat "$TMP/sim.err"; fail "the coordinator died of hostile input"; }
"$SIMUBOOST" simnode --join "$COORD" --id 2 --secret-file "$TMP/secret" 2>"$TMP/node2.err" &
pids="$pids $!"

rc=0
wait "$sim" || rc=$?
[ "$rc" -eq 0 ] || { cat "$TMP/sim.err" "$TMP/node1.err"; fail "simulate under hostile input: rc $rc"; }
rc=0
wait "$node1" || rc=$?
[ "$rc" -eq 0 ] || { cat "$TMP/node1.err"; fail "node 1 under hostile input: rc $rc"; }
grep -q "^answers *0$" "$TMP/send-coord.txt" || fail "the coordinator answered hostile input"
grep -q "^answers *1$" "$TMP/send-vnode.txt" ||
	{ cat "$TMP/send-vnode.txt"; fail "the vnode did not answer the one well-formed request"; }
python3 - "$TMP/sim.json" "$n" <<'PY' || fail "refusals and results"
import json, sys
d = json.load(open(sys.argv[1]))
iv = d["intervals"]
assert [i["interval"] for i in iv] == list(range(int(sys.argv[2]))), [i["interval"] for i in iv]
assert all(i["verdict"] == "exact" for i in iv), iv
every = {"short", "oversized", "bad magic", "other version", "unknown type", "bad MAC", "replayed"}
def check(name, refused):
    missing = every - set(refused)
    assert not missing, "%s did not refuse %s: %s" % (name, missing, refused)
check("the coordinator", d["coordinator_refused"])
# authentic but malformed or a stranger's: HELLO, RESULT, 3 file requests
# and an output malformed, an unassigned result, a stranger's file
# request and output
assert d["coordinator_dropped"] >= 9, d["coordinator_dropped"]
check("the vnode", d["vnode"]["refused"])
assert d["vnode"]["malformed"] >= 2, d["vnode"]
node1 = [i["pages"]["served"] for i in iv if i["node"] == 1]
assert node1, "node 1 ran nothing"
check("node 1", node1[-1]["refused"])
assert node1[-1]["malformed"] >= 2, node1[-1]
print("hostile: refused by all three (%s); %d intervals exact" %
      (", ".join(sorted(every)), len(iv)))
PY
