#!/bin/sh
# Four hosts on one machine: network namespaces joined by veth to a bridge
# in a fifth, with private addresses and no route out, so no traffic can
# leave them. One host is the vnode (it records, coordinates, and serves
# the recording's pages); three are simulation nodes that join it over tcp
# and fault their guests' pages in from it and from each other. The nodes
# do not see the vnode's files (each mounts a private tmpfs over the test's
# directory): they copy the manifests, logs and analysis plugins from the
# coordinator and send back their analysis states and traces. One node is killed mid-run:
# the run still completes, every interval exact and once, the analyses
# equal a serial replay's, and every interval's trace is back. Then the
# vnode's disk is full: intervals whose traces cannot be kept end in
# errors that say so, and the run ends.
# Everything is created here and removed at exit. Skipped (77) where
# network namespaces cannot be made (not root).
# usage: multihost.sh SIMUBOOST GUEST_DIR   (env SIMUBOOST_ANALYSES)
set -eu
SIMUBOOST=$1 GUEST_DIR=$2
A="$SIMUBOOST_ANALYSES"
TMP=$(mktemp -d)
STAGE=$(mktemp -d) # outside TMP, which the nodes' machines do not see
P="sbh$$"
BR="${P}br" HOSTS="v n1 n2 n3"
cleanup() {
	umount "$TMP/full" 2>/dev/null || true
	for h in $HOSTS; do
		ip netns pids "$P$h" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
		ip netns del "$P$h" 2>/dev/null || true
	done
	ip netns del "$BR" 2>/dev/null || true
	rm -rf "$TMP" "$STAGE"
}
trap cleanup EXIT
. "$(dirname "$0")/lib.sh"

if ! ip netns add "$BR" 2>"$TMP/ns.err"; then
	echo "SKIP: no network namespaces: $(cat "$TMP/ns.err")"
	exit 77
fi
ip -n "$BR" link add br0 type bridge
ip -n "$BR" link set br0 up
i=1
for h in $HOSTS; do
	ip netns add "$P$h"
	ip link add "${P}$h" netns "$P$h" type veth peer name "p$h" netns "$BR"
	ip -n "$BR" link set "p$h" master br0 up
	ip -n "$P$h" link set "${P}$h" name eth0
	ip -n "$P$h" addr add "10.79.0.$i/24" dev eth0
	ip -n "$P$h" link set eth0 up
	ip -n "$P$h" link set lo up
	i=$((i + 1))
done
# nothing reaches beyond 10.79.0.0/24 from any host
for h in $HOSTS; do
	! ip -n "$P$h" route get 1.1.1.1 >/dev/null 2>&1 || fail "$h has a route out"
done
on() { h=$1; shift; ip netns exec "$P$h" "$@"; }
# a refused connection is an answer: n3 reaches v
on n3 timeout 5 bash -c 'echo >/dev/tcp/10.79.0.1/9' 2>&1 | grep -q refused ||
	fail "the hosts cannot reach each other"

rec="$TMP/memwrite.rec"
# the recording (it needs no network, so it is made outside the hosts)
recording "$rec" --interval 20ms --set "cmdline=workload=memwrite scale=2" \
	--set console_out="$TMP/console" "$GUEST_DIR/memwrite.cfg"
n=$(($(ls "$rec"/*.manifest | wc -l) - 1))
# a run of several intervals, or a node killed mid-run proves little
[ "$n" -ge 8 ] || fail "only $n intervals recorded"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/secret"

# the plugins too are where only the vnode sees them
mkdir "$TMP/plugins"
cp "$A/insn-count.so" "$A/working-set.so" "$TMP/plugins/"
on v "$SIMUBOOST" simulate "$rec" --nodes 0 --listen tcp://10.79.0.1:7460 \
	--secret-file "$TMP/secret" --json -o "$TMP/out" --analysis "$TMP/plugins/insn-count.so" \
	--analysis "$TMP/plugins/working-set.so,top=3" --trace "$TMP/traces" \
	>"$TMP/sim.json" 2>"$TMP/sim.err" &
sim=$!
# n3's machine has another recording at the same path, of the same config
# (the same recording.meta) but not the same: it must not take it for the
# vnode's
other="$STAGE/other.rec"
mkdir -p "$other"
cp "$rec/recording.meta" "$other/"
cp "$rec/000002.manifest" "$other/000001.manifest"
# node HOST ID PORT [RECORDING]: a node on HOST's machine, whose $TMP is its
# own, empty but for RECORDING (placed at the vnode's recording's path);
# its outputs travel in parts of 4 KiB, so that traces take several
node() {
	SIMUBOOST_SECRET=$(cat "$TMP/secret") SIMUBOOST_OUTPUT_CHUNK=4096 on "$1" unshare -m sh -c \
		'mount -t tmpfs none "$1" && { [ -z "$2" ] || cp -r "$2" "$3"; } && shift 3 &&
		exec "$@"' - "$TMP" "${4:-}" "$rec" \
		"$SIMUBOOST" simnode --join "tcp://10.79.0.1:$3" --id "$2" --work-dir "$TMP/work" \
		2>>"$TMP/$1.err" &
}
node n1 1 7460
node n2 2 7460
node n3 3 7460 "$other"
# n2 goes down once results are coming in
wait_results "$TMP/out" 1 || { cat "$TMP/sim.err"; fail "no result came"; }
# n2 dies: every process of its namespace, the node and its QEMU
ip netns pids "${P}n2" | xargs -r kill -9 2>/dev/null || true
rc=0
wait "$sim" || rc=$?
[ "$rc" -eq 0 ] || { cat "$TMP/sim.err" "$TMP"/n*.err; fail "simulate across hosts: rc $rc"; }
python3 - "$TMP/sim.json" "$n" <<'PY' || fail "results across hosts"
import json, sys
d = json.load(open(sys.argv[1]))
iv = d["intervals"]
assert [i["interval"] for i in iv] == list(range(int(sys.argv[2]))), [i["interval"] for i in iv]
assert all(i["verdict"] == "exact" for i in iv), iv
# n3 too: its recording at the same path has the same metadata, not the
# same first manifest
assert all(i["recording"] == "fetched" for i in iv), [(i["node"], i["recording"]) for i in iv]
assert 3 in {i["node"] for i in iv}, "n3 ran nothing"
nodes = {i["node"] for i in iv}
assert nodes <= {1, 2, 3} and len(nodes) >= 2, nodes
peers = set().union(*(i["pages"]["bytes_from"] for i in iv))
assert "0" in peers, "nothing came from the vnode: %s" % peers
assert d["vnode"]["sent_pages"] > 0
print("multihost: %d intervals exact across namespaces, nodes %s, a node killed; pages from %s"
      % (len(iv), sorted(nodes), sorted(peers)))
PY
# working-set traces memory: the nodes read the starting pages' contents
# (shadows for the page-table A/D events) by hash, having no packs
same_as_serial "$rec" "$TMP/out" "the nodes' states, sent back," "$A/insn-count.so" \
	"$A/working-set.so,top=3"
echo "multihost: the nodes copied the manifests and logs; their analyses equal a serial replay's"
# the nodes' traces came back, whole, one per interval
"$SIMUBOOST" trace ls --json "$TMP/traces" >"$TMP/traces.json" || fail "trace ls of the nodes' traces"
python3 - "$TMP/sim.json" "$TMP/traces.json" "$TMP/traces" <<'PY' || fail "the nodes' traces"
import json, os, sys
sim = {i["interval"]: i["instructions"] for i in json.load(open(sys.argv[1]))["intervals"]}
traced = {t["interval"]: t["instructions"] for t in json.load(open(sys.argv[2]))}
assert traced == sim, (traced, sim)
assert not [f for f in os.listdir(sys.argv[3]) if f.endswith(".tmp")], os.listdir(sys.argv[3])
big = max(t["file_bytes"] for t in json.load(open(sys.argv[2])))
print("multihost: %d traces sent back by the nodes (the largest %d bytes, in 4 KiB parts)"
      % (len(traced), big))
PY

# the vnode's disk full: outputs that cannot be kept fail their interval,
# which runs again and, after its last attempt, is an error that says why;
# nothing crashes and the run ends
mkdir "$TMP/full"
mount -t tmpfs -o size=64k none "$TMP/full"
rc=0
on v "$SIMUBOOST" simulate "$rec" --nodes 0 --listen tcp://10.79.0.1:7461 \
	--secret-file "$TMP/secret" --json --trace "$TMP/full/traces" >"$TMP/full.json" \
	2>"$TMP/full.err" &
sim=$!
node n1 1 7461
wait "$sim" || rc=$?
[ "$rc" -eq 1 ] || { cat "$TMP/full.err" "$TMP/n1.err"; fail "simulate onto a full disk: rc $rc"; }
python3 - "$TMP/full.json" "$n" <<'PY' || { cat "$TMP/full.err"; fail "results onto a full disk"; }
import json, sys
iv = json.load(open(sys.argv[1]))["intervals"]
assert [i["interval"] for i in iv] == list(range(int(sys.argv[2]))), [i["interval"] for i in iv]
lost = [i for i in iv if i["verdict"] == "error"]
assert lost and all("could not be kept" in i["detail"] and "No space left on device" in i["detail"]
                    for i in lost), lost
assert all(i["verdict"] in ("exact", "error") for i in iv), iv
print("multihost: onto a full disk, %d intervals exact, %d errors that say why" %
      (len(iv) - len(lost), len(lost)))
PY
