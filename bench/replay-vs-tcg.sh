#!/bin/sh
# Replay speed against plain QEMU TCG, in one invocation: the compute
# workload is recorded at 100 ms intervals, then
#   - the patched QEMU runs the same guest and workload from boot to exit
#     with no plugin at all (a PC machine with its own timer),
#   - `replay --serial` replays every interval in one QEMU (no QEMU start-up
#     or RAM loading between intervals),
#   - `replay --all -J 1` replays each interval in its own QEMU, one at a time.
# Guest instructions are the replay's count; the plain run executes the same
# user-mode work (the checksum is compared) and a few more timer interrupts,
# so its rate uses the same count.
# usage: bench/replay-vs-tcg.sh [BUILD_DIR]   (env SCALE=40 by default)
set -eu
B=${1:-build}
SCALE=${SCALE:-40}
S="$B/cli/simuboost" G="$B/guests"
Q=$(simnode/qemu/build.sh --print)/bin/qemu-system-x86_64
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
W="workload=compute scale=$SCALE"

"$S" record --quiet --interval 100ms -o "$TMP/rec" --set "cmdline=$W" \
	--set console_out="$TMP/rec.out" "$G/compute.cfg" >/dev/null
t0=$(date +%s.%N)
# our QEMU build carries no firmware: SeaBIOS and the PVH option ROM come
# from Debian's packages (seabios, qemu-system-data)
"$Q" -L /usr/share/seabios -L /usr/share/qemu -nodefaults -accel tcg,thread=multi \
	-cpu "$("$S" cpuid --qemu-cpu)" -m 256M -display none -no-reboot -monitor none \
	-serial "file:$TMP/tcg.out" \
	-kernel "$G/simuboost-guest.elf" -append "$W" \
	-device isa-debug-exit,iobase=0xf4,iosize=4 >/dev/null 2>&1 || true
t1=$(date +%s.%N)
"$S" replay "$TMP/rec" --serial --json >"$TMP/serial.json" || true
t2=$(date +%s.%N)
"$S" replay "$TMP/rec" --all -J 1 --json >"$TMP/all.json" || true
t3=$(date +%s.%N)

python3 - "$TMP" "$t0" "$t1" "$t2" "$t3" "$SCALE" <<'PY'
import json, re, sys
tmp = sys.argv[1]
t = [float(x) for x in sys.argv[2:6]]
scale = int(sys.argv[6])
def checksum(p):
    m = re.search(r"checksum \S+ (0x[0-9a-f]+)", open(p, errors="replace").read())
    return m.group(1) if m else "none"
serial, every = (json.load(open(f"{tmp}/{n}.json")) for n in ("serial", "all"))
insns = sum(i.get("instructions", 0) for i in serial["intervals"])
n = serial["intervals_total"]
rows = [
    ("plain TCG, no plugin", t[1] - t[0], f"checksum {checksum(tmp + '/tcg.out')}"),
    ("replay --serial", t[2] - t[1], f"{serial['exact']}/{n} exact"),
    ("replay --all -J 1", t[3] - t[2], f"{every['exact']}/{every['intervals_total']} exact"),
]
print(f"compute workload, scale={scale}, {n} intervals of 100 ms, "
      f"{insns/1e9:.2f}e9 guest instructions (recording: checksum {checksum(tmp + '/rec.out')})")
print(f"{'run':<22} {'wall s':>8} {'insns/s':>10} {'x plain TCG':>12}  result")
for name, wall, note in rows:
    print(f"{name:<22} {wall:8.2f} {insns/wall:10.3g} {wall/rows[0][1]:12.2f}  {note}")
print("target: replay with no tracing at most 1.5x plain TCG")
PY
