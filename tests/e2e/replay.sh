#!/bin/sh
# replay: a recorded compute workload replays exact in the patched QEMU,
# interval by interval (--all) and in one piece (--serial), with identical
# per-interval instruction counts; devread, with kernel-mode interrupts,
# replays exact with full traces that count what the replay counts; broken
# inputs give clear errors.
# usage: replay.sh SIMUBOOST GUEST_DIR [SYSTEM_QEMU]
set -eu
SIMUBOOST=$1 GUEST_DIR=$2 SYSTEM_QEMU=${3:-}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"

rec="$TMP/compute.rec"
recording "$rec" --interval 100ms --set "cmdline=workload=compute scale=15" \
	--set console_out="$TMP/console" "$GUEST_DIR/compute.cfg"

rc=0
"$SIMUBOOST" replay "$rec" --all --json >"$TMP/all.json" 2>"$TMP/all.err" || rc=$?
cat "$TMP/all.err"
[ "$rc" -eq 0 ] || { cat "$TMP/all.json"; fail "replay --all exited $rc"; }
rc=0
"$SIMUBOOST" replay "$rec" --serial --json >"$TMP/serial.json" 2>"$TMP/serial.err" || rc=$?
[ "$rc" -eq 0 ] || { cat "$TMP/serial.err" "$TMP/serial.json"; fail "replay --serial exited $rc"; }
python3 - "$TMP/all.json" "$TMP/serial.json" <<'PY' || fail "--all and --serial disagree"
import json, sys
a, s = (json.load(open(p)) for p in sys.argv[1:3])
assert a["intervals_total"] >= 4, a["intervals_total"]
for doc in (a, s):
    bad = [i for i in doc["intervals"] if i["verdict"] != "exact"]
    assert not bad, bad
ca = [i["instructions"] for i in a["intervals"]]
cs = [i["instructions"] for i in s["intervals"]]
assert ca == cs, (ca, cs)
# an interval may run no instruction at all (the guest halted through it,
# waiting for its first ticks at boot); the run as a whole does
assert sum(ca) > 0 and sum(c > 0 for c in ca) >= len(ca) // 2, ca
print("replay: %d intervals exact, --all and --serial agree, %d instructions"
      % (len(ca), sum(ca)))
PY

# devread: port reads served from the log, and timer interrupts that land in
# kernel mode (the guest's device system calls run with interrupts on).
dev="$TMP/devread.rec"
recording "$dev" --interval 100ms --set "cmdline=workload=devread scale=60" \
	--set console_out="$TMP/devread.console" "$GUEST_DIR/devread.cfg"
n=$(ls "$dev"/*.manifest | wc -l)
k=0 kernel_irqs=0
while [ "$k" -lt $((n - 1)) ]; do
	# the kernel lies below the user region at 0x400000
	c=$("$SIMUBOOST" log show "$dev" --interval "$k" | grep -c ' irq .* rip 0x[0-3]\?[0-9a-f]\{1,5\} ' || true)
	kernel_irqs=$((kernel_irqs + c))
	k=$((k + 1))
done
[ "$kernel_irqs" -gt 0 ] || fail "devread: no timer interrupt landed in kernel mode"
# ... replayed with full traces, whose instruction counts are the replay's,
# and the example analyses running online.
A=""
for p in insn-count working-set syscalls page-redundancy; do
	[ -z "${SIMUBOOST_ANALYSES:-}" ] || A="$A --analysis $SIMUBOOST_ANALYSES/$p.so"
done
rc=0
# shellcheck disable=SC2086 # $A is a list of options
"$SIMUBOOST" replay "$dev" --all --json --trace "$TMP/traces" $A -o "$TMP/an-all" \
	>"$TMP/devread.json" 2>"$TMP/devread.err" || rc=$?
[ "$rc" -eq 0 ] || { cat "$TMP/devread.err" "$TMP/devread.json"; fail "devread replay --all exited $rc"; }
python3 - "$TMP/devread.json" "$TMP/traces" <<'PY' || fail "devread traces"
import json, os, sys
d = json.load(open(sys.argv[1]))
for iv in d["intervals"]:
    k, t = iv["interval"], iv.get("trace")
    assert iv["verdict"] == "exact", iv
    assert t and t["instructions"] == iv["instructions"], iv
    assert os.path.basename(t["path"]) == "%06d.trace" % k, t
names = sorted(f for f in os.listdir(sys.argv[2]) if f.endswith(".trace"))
assert names == ["%06d.trace" % i["interval"] for i in d["intervals"]], names
print("devread: %d intervals exact, traced, %d instructions" %
      (len(d["intervals"]), sum(i["instructions"] for i in d["intervals"])))
PY
echo "devread: $kernel_irqs interrupts in kernel mode"
# The trace file alone (no analysis wants records, so a block's records go
# to the writer in one run): the same records as with the analyses above.
rc=0
"$SIMUBOOST" replay "$dev" --all --json --trace "$TMP/traces-only" >"$TMP/only.json" \
	2>"$TMP/only.err" || rc=$?
[ "$rc" -eq 0 ] || { cat "$TMP/only.err"; fail "devread replay --all --trace alone exited $rc"; }
for d in traces traces-only; do
	"$SIMUBOOST" trace export "$TMP/$d" --format jsonl -o "$TMP/$d.jsonl" || fail "export $d"
done
cmp "$TMP/traces.jsonl" "$TMP/traces-only.jsonl" ||
	fail "--trace alone writes other records than --trace with analyses"
rm -rf "$TMP/traces-only" "$TMP/traces.jsonl" "$TMP/traces-only.jsonl"
echo "devread: --trace alone writes the same records as with analyses attached"

# Charts: the intervals (from the traces, replay.json and the recording)
# and the checkpoints, as PNG and SVG; another extension is refused.
"$SIMUBOOST" trace plot "$TMP/traces" --rec "$dev" -o "$TMP/run.png" || fail "trace plot png"
"$SIMUBOOST" trace plot "$TMP/traces" -o "$TMP/run.svg" 2>"$TMP/plot.err" || fail "trace plot svg"
"$SIMUBOOST" ckpt plot "$dev" -o "$TMP/ckpt.svg" || fail "ckpt plot"
python3 - "$TMP/run.png" "$TMP/run.svg" "$TMP/ckpt.svg" <<'PY' || fail "plots"
import sys, xml.dom.minidom
assert open(sys.argv[1], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
for svg in sys.argv[2:]:
    assert xml.dom.minidom.parse(svg).documentElement.tagName == "svg"
PY
! grep -q "no replay time" "$TMP/plot.err" || fail "trace plot: replay.json missing"
# replay.json as a bare array, with an interval that has no trace (diverged)
mkdir "$TMP/few"
ln -s "$TMP/traces/000000.trace" "$TMP/few/000000.trace"
python3 - "$TMP/traces/replay.json" "$TMP/few/replay.json" <<'PY' || fail "replay.json copy"
import json, sys
ivs = json.load(open(sys.argv[1]))["intervals"][:2]
ivs[1]["verdict"] = "diverged"
json.dump(ivs, open(sys.argv[2], "w"))
PY
"$SIMUBOOST" trace plot "$TMP/few" -o "$TMP/few.svg" 2>"$TMP/plot.err" ||
	{ cat "$TMP/plot.err"; fail "trace plot, replay.json an array"; }
! grep -q "no replay time" "$TMP/plot.err" || fail "trace plot: $(cat "$TMP/plot.err")"
python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])' "$TMP/few.svg" ||
	fail "trace plot, replay.json an array: svg"
# another extension is bad usage, refused before any trace is read
for sub in "ckpt plot $dev" "trace plot $TMP/traces"; do
	rc=0
	# shellcheck disable=SC2086
	"$SIMUBOOST" $sub -o "$TMP/plot.jpg" 2>"$TMP/plot.err" || rc=$?
	[ "$rc" -eq 2 ] && grep -q "written as .png or .svg" "$TMP/plot.err" &&
		[ ! -e "$TMP/plot.jpg" ] || fail "$sub -o .jpg: rc $rc, $(cat "$TMP/plot.err")"
done

# Analyses: each interval's state online, merged in order (above), one state
# through every interval in one QEMU (--serial), and offline over the traces
# (merged, and --serial) all report the same, byte for byte. A plain QEMU
# plugin attached to the serial replay prints its counts to its log.
if [ -n "$A" ]; then
	# shellcheck disable=SC2086
	"$SIMUBOOST" replay "$dev" --serial $A -o "$TMP/an-serial" \
		--qemu-plugin "$SIMUBOOST_COUNT_PLUGIN,label=plain" >/dev/null 2>"$TMP/an.err" ||
		{ cat "$TMP/an.err"; fail "replay --serial --analysis"; }
	# shellcheck disable=SC2086
	"$SIMUBOOST" analyze "$dev" --trace "$TMP/traces" $A -o "$TMP/an-off" 2>"$TMP/an.err" ||
		{ cat "$TMP/an.err"; fail "analyze"; }
	# shellcheck disable=SC2086
	"$SIMUBOOST" analyze "$dev" --trace "$TMP/traces" --serial $A -o "$TMP/an-off-serial" \
		2>"$TMP/an.err" || { cat "$TMP/an.err"; fail "analyze --serial"; }
	for p in insn-count working-set syscalls page-redundancy; do
		for d in an-serial an-off an-off-serial; do
			cmp "$TMP/an-all/$p.txt" "$TMP/$d/$p.txt" ||
				fail "analysis $p: $d differs from replay --all"
		done
	done
	insns=$(python3 -c 'import json,sys; print(sum(i["instructions"] for i in json.load(open(sys.argv[1]))["intervals"]))' "$TMP/devread.json")
	grep -qx "instructions $insns" "$TMP/an-all/insn-count.txt" ||
		fail "insn-count: $(head -1 "$TMP/an-all/insn-count.txt"), the replay counted $insns"
	rows=$(grep -c '^ *[0-9]\+ \+[0-9]\+ \+[0-9]\+ \+[0-9]\+ \+[0-9]\+$' "$TMP/an-all/working-set.txt")
	[ "$rows" -eq $((n - 1)) ] || fail "working-set: $rows interval rows for $((n - 1)) intervals"
	grep -q "^plain: instructions [0-9]\+ accesses [0-9]\+$" "$TMP/an-serial/qemu-plugins/000000.log" ||
		fail "--qemu-plugin: $(cat "$TMP/an-serial/qemu-plugins/000000.log")"
	# a plugin that is not one is refused before anything runs
	rc=0
	"$SIMUBOOST" analyze "$dev" --trace "$TMP/traces" --analysis "$SIMUBOOST_COUNT_PLUGIN" \
		2>"$TMP/an.err" >/dev/null || rc=$?
	[ "$rc" -eq 1 ] && grep -q "a QEMU TCG plugin, not a simuboost analysis plugin" "$TMP/an.err" ||
		fail "analyze with a QEMU plugin: rc $rc, $(cat "$TMP/an.err")"
	echo "analyses: online, serial and offline reports identical; $insns instructions"
	# A plugin that crashes offline (in interval 2) is named; the others'
	# reports are made all the same, merged and serial, and exit status is 1.
	for mode in "" --serial; do
		rc=0
		# shellcheck disable=SC2086
		"$SIMUBOOST" analyze "$dev" --trace "$TMP/traces" $mode $A \
			--analysis "$SIMUBOOST_CRASH_ANALYSIS,crash=2" -o "$TMP/an-crash" \
			2>"$TMP/an.err" || rc=$?
		[ "$rc" -eq 1 ] && grep -q "interval 2: analysis crash crashed" "$TMP/an.err" &&
			[ ! -e "$TMP/an-crash/crash.txt" ] ||
			fail "analyze $mode, a plugin crashing: rc $rc, $(cat "$TMP/an.err")"
		for p in insn-count working-set syscalls page-redundancy; do
			cmp "$TMP/an-all/$p.txt" "$TMP/an-crash/$p.txt" ||
				fail "analysis $p, beside a crashing plugin $mode: differs"
		done
		rm -rf "$TMP/an-crash"
	done
	echo "analyses: a plugin crashing offline is named, the others report the same"
fi

# The traces through `simuboost trace`: the whole run counts what the
# replay counted, show seeks by instruction, and a damaged chunk is named.
total=$(python3 -c 'import json,sys; print(sum(i["instructions"] for i in json.load(open(sys.argv[1]))["intervals"]))' "$TMP/devread.json")
"$SIMUBOOST" trace ls "$TMP/traces" >"$TMP/tls.txt" || fail "trace ls"
[ "$(grep -c '^ *[0-9]' "$TMP/tls.txt")" -eq "$(ls "$TMP/traces"/*.trace | wc -l)" ] ||
	fail "trace ls: $(cat "$TMP/tls.txt")"
"$SIMUBOOST" trace stats --json "$TMP/traces" >"$TMP/tstats.json" || fail "trace stats"
python3 - "$TMP/tstats.json" "$total" <<'PY' || fail "trace stats: $(cat "$TMP/tstats.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["instructions"] == int(sys.argv[2]), s
assert s["events"]["interrupt"] > 0 and s["events"]["pio-read"] > 0, s
assert s["loads"] > 0 and s["stores"] > 0 and s["compression_ratio"] > 1, s
assert s["missing"] == [], s
PY
# A gap (an interval whose replay was not exact leaves no trace): stats
# counts the traces there are and names the interval without one.
mkdir "$TMP/gap"
cp "$TMP/traces"/*.trace "$TMP/gap/"
rm "$TMP/gap/000001.trace"
"$SIMUBOOST" trace stats --json "$TMP/gap" >"$TMP/gstats.json" || fail "trace stats with a gap"
python3 - "$TMP/gstats.json" "$TMP/devread.json" <<'PY' || fail "trace stats with a gap: $(cat "$TMP/gstats.json")"
import json, sys
s, d = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))["intervals"]
assert s["missing"] == [1] and s["traces"] == len(d) - 1, s
assert s["instructions"] == sum(i["instructions"] for i in d if i["interval"] != 1), s
PY
"$SIMUBOOST" trace stats "$TMP/gap" | grep -q '^traces .*(none for interval 1)$' ||
	fail "trace stats with a gap: $("$SIMUBOOST" trace stats "$TMP/gap")"
rm -rf "$TMP/gap"
# The stores of interval K's trace, then its ad-bits events (the accessed
# and dirty bits the MMU sets in page tables, which no instruction writes),
# applied to checkpoint K's RAM, give checkpoint K+1's exactly.
for k in 0 1 2; do
	"$SIMUBOOST" ckpt materialize "$dev" "$k" -o "$TMP/ram.$k" >/dev/null &&
		"$SIMUBOOST" ckpt materialize "$dev" $((k + 1)) -o "$TMP/ram.next" >/dev/null &&
		"$SIMUBOOST" trace show --json --interval "$k" "$TMP/traces" >"$TMP/t.jsonl" ||
		fail "materialize or trace show of interval $k"
	python3 "$(dirname "$0")/stores-reproduce.py" "$TMP/ram.$k" "$TMP/ram.next" "$TMP/t.jsonl" \
		"interval $k" || fail "stores of interval $k"
	rm -f "$TMP/ram.$k"
done
"$SIMUBOOST" trace show "$TMP/traces" --interval 1 --from 500 -n 1 >"$TMP/tshow.txt" ||
	fail "trace show"
grep -q '^ *500 insn  pc 0x' "$TMP/tshow.txt" || fail "trace show --from 500: $(cat "$TMP/tshow.txt")"
# grep finds what stats counted; export writes every record, and the
# timeline has one slice per interval.
irqs=$("$SIMUBOOST" trace grep "$TMP/traces" --kind interrupt | wc -l)
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["events"]["interrupt"] == int(sys.argv[2]), s' \
	"$TMP/tstats.json" "$irqs" || fail "trace grep --kind interrupt: $irqs"
"$SIMUBOOST" trace export "$TMP/traces" --format csv -o "$TMP/t.csv" || fail "trace export csv"
records=$("$SIMUBOOST" trace ls --json "$TMP/traces" | python3 -c 'import json,sys; print(sum(t["records"] for t in json.load(sys.stdin)))')
[ "$(wc -l <"$TMP/t.csv")" -eq $((records + 1)) ] || fail "csv: $(wc -l <"$TMP/t.csv") lines, $records records"
"$SIMUBOOST" trace export "$TMP/traces" --format perfetto -o "$TMP/t.perfetto.json" ||
	fail "trace export perfetto"
python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["traceEvents"]; assert sum(x["ph"] == "X" for x in e) == int(sys.argv[2]), e[:3]' \
	"$TMP/t.perfetto.json" "$(ls "$TMP/traces"/*.trace | wc -l)" || fail "perfetto timeline"
first=$(cd "$TMP/traces" && ls -- *.trace | head -1)
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[100]^=1; open(p,"wb").write(b)' \
	"$TMP/traces/$first"
rc=0
"$SIMUBOOST" trace stats "$TMP/traces" >/dev/null 2>"$TMP/tbad.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "$first: chunk 0 .*checksum mismatch" "$TMP/tbad.err" ||
	fail "damaged trace: rc $rc, $(cat "$TMP/tbad.err")"

# One interval, in the human format.
"$SIMUBOOST" replay "$rec" --interval 1 >"$TMP/one.txt" || { cat "$TMP/one.txt"; fail "interval 1"; }
grep -q "1 of 1 intervals exact" "$TMP/one.txt" || fail "interval 1 summary: $(cat "$TMP/one.txt")"

# An interval out of range names the range.
n=$(ls "$rec"/*.manifest | wc -l)
rc=0
"$SIMUBOOST" replay "$rec" --interval "$n" 2>"$TMP/range.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "interval $n is out of range" "$TMP/range.err" ||
	fail "out of range: rc $rc, $(cat "$TMP/range.err")"

# A QEMU without our patches is refused before anything runs.
if [ -n "$SYSTEM_QEMU" ]; then
	rc=0
	"$SIMUBOOST" replay "$rec" --interval 0 --qemu "$SYSTEM_QEMU" 2>"$TMP/unpatched.err" || rc=$?
	[ "$rc" -eq 1 ] && grep -q "lacks the simuboost patches" "$TMP/unpatched.err" ||
		fail "unpatched QEMU: rc $rc, $(cat "$TMP/unpatched.err")"
fi

# A budget far too small: diverged, kind budget, not a hang.
budget=$(python3 -c 'import json,sys; print(min(100000, json.load(open(sys.argv[1]))["intervals"][1]["instructions"] // 2))' "$TMP/all.json")
rc=0
"$SIMUBOOST" replay "$rec" --interval 1 --budget "$budget" --json >"$TMP/budget.json" || rc=$?
[ "$rc" -eq 1 ] || fail "budget: rc $rc"
python3 -c 'import json,sys; i=json.load(open(sys.argv[1]))["intervals"][0]; assert i["verdict"]=="diverged" and i["divergence"]["kind"]=="budget", i' "$TMP/budget.json" ||
	fail "budget verdict"

# Divergences and a crash made on purpose (a test plugin loaded next to
# the replay plugin), and what --bisect finds for the divergences.
if [ -n "${SIMUBOOST_REAL_QEMU:-}" ] && [ -n "${SIMUBOOST_PERTURB_PLUGIN:-}" ]; then
	cat >"$TMP/perturbing-qemu" <<SH
#!/bin/sh
for a; do [ "\$a" = -version ] && exec "\$SIMUBOOST_REAL_QEMU" -version; done
exec "\$SIMUBOOST_REAL_QEMU" "\$@" -plugin "\$SIMUBOOST_PERTURB_PLUGIN,\$PERTURB"
SH
	chmod +x "$TMP/perturbing-qemu"
	# the RIP of the third user-mode interrupt (the user region starts at
	# 0x400000) of the first interval past boot that has three: a hot loop
	user_irqs() {
		"$SIMUBOOST" log show "$rec" --interval "$1" |
			sed -n 's/.* irq .* rip \(0x[0-9a-f]*\) .*/\1/p' |
			while read -r r; do [ $((r)) -lt $((0x400000)) ] || echo "$r"; done
	}
	pk=1
	while [ "$(user_irqs "$pk" | wc -l)" -lt 3 ]; do
		pk=$((pk + 1))
		[ "$pk" -lt "$n" ] || fail "no interval with three user-mode interrupts"
	done
	rip=$(user_irqs "$pk" | sed -n 3p)
	# QEMU crashing mid-interval: an error naming the interval
	rc=0
	PERTURB="pc=$rip,hit=1,crash=1" "$SIMUBOOST" replay "$rec" --interval "$pk" \
		--qemu "$TMP/perturbing-qemu" >"$TMP/crash.txt" 2>&1 || rc=$?
	[ "$rc" -eq 1 ] && grep -q "interval $pk: QEMU crashed" "$TMP/crash.txt" ||
		fail "crash: rc $rc, $(cat "$TMP/crash.txt")"
	# A flipped bit in a page nothing touches (1 MiB below the top of RAM):
	# the pages differ, and no store of the replay wrote that word.
	word=$("$SIMUBOOST" ckpt ls --json "$rec" | python3 -c 'import json,sys; print(hex(json.load(sys.stdin)["memory_bytes"] - (1 << 20)))')
	rc=0
	PERTURB="pc=$rip,hit=1,word=$word" "$SIMUBOOST" replay "$rec" --interval "$pk" --bisect \
		--json --qemu "$TMP/perturbing-qemu" >"$TMP/word.json" || rc=$?
	[ "$rc" -eq 1 ] || fail "perturbed word: rc $rc"
	python3 - "$TMP/word.json" "$word" <<'PY' || fail "perturbed word: verdict or bisect"
import json, sys
word = int(sys.argv[2], 16)
i = json.load(open(sys.argv[1]))["intervals"][0]
d = i["divergence"]
assert i["verdict"] == "diverged" and d["kind"] == "pages", d
assert int(d["pages"]["first"][0]["gpn"], 16) == word >> 12, d
assert d["pages"]["first"][0]["offset"] == 0, d
w = i["bisect"]["words"][0]
assert int(w["address"], 16) == word and w["stores"] == 0 and not w["recorded_value_seen"], w
PY
	# A register off by one from the third pass over that RIP: the next
	# landmark is missed, and --bisect lists the landmark RIP's later
	# visits, none with the recorded registers. The register is one the
	# guest leaves alone until then: RSP in compute's loop; devread's makes
	# system calls, which use the stack, so R15 there.
	reg=4
	[ "$RECORDED" -eq 1 ] || reg=15
	rc=0
	PERTURB="pc=$rip,hit=3,reg=$reg" "$SIMUBOOST" replay "$rec" --interval "$pk" --bisect \
		--qemu "$TMP/perturbing-qemu" >"$TMP/rsp.txt" || rc=$?
	[ "$rc" -eq 1 ] && grep -q "landmark-missed at event" "$TMP/rsp.txt" &&
		grep -q "^bisect: .*the divergence showed at instruction" "$TMP/rsp.txt" &&
		grep -q "^  landmark rip 0x[0-9a-f]* after [0-9]* accesses: " "$TMP/rsp.txt" ||
		fail "perturbed rsp: rc $rc, $(cat "$TMP/rsp.txt")"
fi

# A corrupt log: an error naming the file, no verdict.
log=$(ls "$rec"/000001.log)
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[len(b)//2]^=1; open(p,"wb").write(b)' "$log"
rc=0
"$SIMUBOOST" replay "$rec" --interval 1 >"$TMP/corrupt.txt" 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -q "000001.log" "$TMP/corrupt.txt" && ! grep -q " exact " "$TMP/corrupt.txt" ||
	fail "corrupt log: rc $rc, $(cat "$TMP/corrupt.txt")"
echo "PASS replay"
