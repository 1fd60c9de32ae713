#!/bin/sh
# Guest user-mode instructions per second and exits per second: the vnode
# (KVM) against the same test guest under QEMU TCG, measured in one run.
#
# The guest's compute workload is pure CPL3 work. Its instruction count per
# unit of `scale` is measured by running the same workload code on the host
# under callgrind (guest-checksum computes the reference result with it), so
# "user insns/s" = scale * insns_per_unit / guest seconds, where the guest's
# seconds come from its own timer ticks (1000 Hz).
# usage: bench/vnode-vs-tcg.sh [BUILD_DIR]   (env SCALE=20 by default)
set -eu
B=${1:-build}
SCALE=${SCALE:-20}
S="$B/cli/simuboost" G="$B/guests"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

valgrind --tool=callgrind --callgrind-out-file="$TMP/cg" "$G/guest-checksum" \
	"workload=compute tasks=4 scale=1" >/dev/null 2>"$TMP/cg.log"
per_unit=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$TMP/cg.log")

"$S" run --json --set console_out="$TMP/vnode.out" \
	--set cmdline="workload=compute tasks=4 scale=$SCALE" "$G/compute.cfg" >"$TMP/vnode.json"
start=$(date +%s.%N)
timeout 1800 qemu-system-x86_64 -accel tcg -cpu "$("$S" cpuid --qemu-cpu)" -m 256M \
	-display none -nographic -no-reboot -monitor none -serial "file:$TMP/qemu.out" \
	-kernel "$G/simuboost-guest.elf" -append "workload=compute tasks=4 scale=$SCALE" \
	-device isa-debug-exit,iobase=0xf4,iosize=4 >/dev/null 2>&1 || true
end=$(date +%s.%N)

python3 - "$SCALE" "$per_unit" "$TMP" "$start" "$end" <<'PY'
import json, sys, re
scale, per_unit, tmp, start, end = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
def ticks(path):
    m = re.search(r"^ticks (\d+)", open(path, errors="replace").read(), re.M)
    return int(m.group(1)) if m else None
def checksum(path):
    m = re.search(r"checksum \S+ (0x[0-9a-f]+)", open(path, errors="replace").read())
    return m.group(1) if m else "none"
v = json.load(open(f"{tmp}/vnode.json"))
insns = scale * per_unit
rows = []
for name, t, wall, exits, cs in (
        ("vnode (KVM)", ticks(f"{tmp}/vnode.out"), v["wall_seconds"], v["exits_total"], checksum(f"{tmp}/vnode.out")),
        ("QEMU TCG", ticks(f"{tmp}/qemu.out"), end - start, None, checksum(f"{tmp}/qemu.out"))):
    gs = t / 1000 if t else float("nan")
    rows.append((name, gs, wall, insns / gs, exits / wall if exits is not None else None, cs))
print(f"compute workload, scale={scale}, ~{insns/1e9:.2f}e9 user instructions "
      f"({per_unit} per unit, callgrind on the host build)")
print(f"{'system':<13} {'guest s':>8} {'wall s':>8} {'user insns/s':>14} {'exits/s':>9} {'vs TCG':>7}  checksum")
tcg = rows[1][3]
for name, gs, wall, ips, eps, cs in rows:
    print(f"{name:<13} {gs:8.2f} {wall:8.2f} {ips:14.3e} {('%.0f' % eps) if eps is not None else 'n/a':>9} {ips / tcg:6.1f}x  {cs}")
PY
