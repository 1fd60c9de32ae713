#!/bin/sh
# nested-kvm.sh [-o DIR] [-m MIB] [-s PATH]... -- COMMAND... - runs COMMAND where
# /dev/kvm exists, on a machine without one: inside a Linux VM that our
# patched QEMU emulates (TCG) with AMD SVM, whose kvm-amd then gives the
# vnode a /dev/kvm.
#
# For recordings on build machines whose kernel offers no KVM (a PVM guest
# whose kvm_pvm will not bind, say), and for a KVM that honours
# KVM_SET_CPUID2 where the host's does not (tests/e2e/cpuid-identity.sh;
# also tests/slow/linux-boot.sh and bench/trace.sh without /dev/kvm). The recording is made under emulated
# hardware: its intervals replay exact, though slower guests give fewer
# instructions per interval. The L0 must be our QEMU: stock TCG pushes RF=1
# in external interrupt frames (patch 0006), which real hardware does not,
# and the replay would see that in the guest's stack pages.
#
# The VM gets Debian's kernel (scripts/fetch-linux.sh), busybox, the
# project's build directory with the shared libraries its programs use, at
# the project's own path; COMMAND runs there under busybox sh with HOME set.
# -s PATH (repeatable) ships a host file or directory too, at its own path,
# with the shared libraries of the programs and libraries in it: python3
# and its library, the patched QEMU for replays, a GNU tool whose options
# busybox's applet lacks. In the VM PATH is /usr/bin:/bin, so a shipped
# /usr/bin program stands in for busybox's applet of that name.
# What COMMAND leaves in $NESTED_OUT (a directory in the VM) is copied to
# DIR (default: the current directory). Status: COMMAND's.
#   env: BUILD (default: build; relative to the project or absolute),
#   SIMUBOOST_CACHE_DIR (default ~/.cache/simuboost), SIMUBOOST_REAL_QEMU
#   (our QEMU; default: the one in the cache)
# A TERM or INT stops the VM.
# Example:
#   scripts/nested-kvm.sh -o /tmp/r -- sh -c 'build/cli/simuboost record \
#       --interval 1s -o $NESTED_OUT/rec build/guests/compute.cfg'
# An end-to-end test that records, then replays (the QEMU at the path the
# build was configured with):
#   scripts/nested-kvm.sh -s /usr/bin/python3 -s /usr/lib/python3.11 \
#       -s ~/.cache/simuboost/qemu/VERSION-KEY -- sh tests/e2e/record.sh \
#       "$PWD/build/cli/simuboost" "$PWD/build/guests" "$PWD/build/guests/guest-checksum"
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=. MEM=8192 SHIP=
while [ $# -gt 0 ]; do
	case $1 in
	-o) OUT=$2; shift 2 ;;
	-m) MEM=$2; shift 2 ;;
	-s) [ -e "$2" ] || { echo "nested-kvm: -s $2: no such file" >&2; exit 2; }
		SHIP="$SHIP$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
"; shift 2 ;;
	--) shift; break ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || { echo "usage: $0 [-o DIR] [-m MIB] [-s PATH]... -- COMMAND..." >&2; exit 2; }
case ${BUILD:-build} in
/*) BUILD=$(cd "$BUILD" && pwd) ;;
*) BUILD=$(cd "$ROOT/${BUILD:-build}" && pwd) ;;
esac
CACHE=${SIMUBOOST_CACHE_DIR:-$HOME/.cache/simuboost}
QEMU=${SIMUBOOST_REAL_QEMU:-$(ls -d "$CACHE"/qemu/*/bin/qemu-system-x86_64 2>/dev/null | tail -n 1)}
[ -x "$QEMU" ] || { echo "nested-kvm: no patched QEMU in $CACHE/qemu (simnode/qemu/build.sh)" >&2; exit 1; }
"$ROOT/scripts/fetch-linux.sh" "$CACHE/linux" >/dev/null
BUSYBOX=$(command -v busybox) || { echo "nested-kvm: needs busybox (apt-get install busybox-static)" >&2; exit 1; }
if ldd "$BUSYBOX" >/dev/null 2>&1; then
	echo "nested-kvm: $BUSYBOX is not static; install busybox-static" >&2
	exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/nested-kvm.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

# the initramfs: busybox, the modules, and an init that runs the job
mkdir -p "$TMP/ir/bin" "$TMP/ir/mod"
cp "$BUSYBOX" "$TMP/ir/bin/busybox"
cp "$CACHE"/linux/modules/* "$TMP/ir/mod/"
cat >"$TMP/ir/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp /root
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
for m in $(cat /mod/order); do insmod /mod/$m.ko || echo "nested-kvm: insmod $m failed"; done
tar xf /dev/vda -C / || echo "nested-kvm: the job's files did not unpack"
. /job/env
mkdir -p "$NESTED_OUT"
echo "nested-kvm: begin"
(cd "$NESTED_ROOT" && HOME=/root PATH=/usr/bin:/bin sh /job/run)
rc=$?
echo "nested-kvm: end"
echo "$rc" >"$NESTED_OUT/.status"
tar cf /dev/vdb -C "$NESTED_OUT" . || echo "nested-kvm: the output did not fit"
sync
poweroff -f
INIT
chmod +x "$TMP/ir/init"
(cd "$TMP/ir" && find . | cpio -o -H newc 2>/dev/null) | gzip -1 >"$TMP/initrd.gz"

# the job: the project's files, the build, what -s ships, the libraries their programs and
# libraries load (dereferenced: the VM has no /usr merge), the command
mkdir -p "$TMP/in/job"
{
	echo "NESTED_ROOT='$ROOT'"
	echo "NESTED_OUT=/tmp/nested-out; export NESTED_OUT"
} >"$TMP/in/job/env"
{
	printf 'exec'
	for a in "$@"; do printf " '%s'" "$(printf %s "$a" | sed "s/'/'\\\\''/g")"; done
	echo
} >"$TMP/in/job/run"
printf '%s' "$SHIP" >"$TMP/ship"
# (a Python extension module is a library that is not executable)
{ echo "$BUILD"; cat "$TMP/ship"; } | while read -r p; do
	find -L "$p" -type f \( -perm -u+x -o -name '*.so*' \) -exec ldd {} + 2>/dev/null || true
done | grep -o '/[^ :]*\.so[^ :]*' | sort -u | sed 's|^/||' >"$TMP/libs"
sed 's|^/||' "$TMP/ship" >>"$TMP/libs"
git -C "$ROOT" ls-files | sed "s|^|${ROOT#/}/|" >>"$TMP/libs"
echo "${BUILD#/}" >>"$TMP/libs"
tar chf "$TMP/in.tar" -C "$TMP/in" job -C / -T "$TMP/libs" 2>/dev/null
truncate -s "${NESTED_OUT_MIB:-4096}M" "$TMP/out.tar"

CR=$(printf '\r')
# QEMU in the background, so that a signal reaches the trap (a shell runs
# it only once the foreground command is done) and the trap can stop it
mkfifo "$TMP/console"
"$QEMU" -accel tcg,thread=multi -cpu max -smp 2 -m "$MEM" -nographic -no-reboot -nic none \
	-L /usr/share/seabios -L /usr/share/qemu \
	-kernel "$CACHE/linux/vmlinuz" -initrd "$TMP/initrd.gz" \
	-append "console=ttyS0 quiet panic=-1" \
	-drive file="$TMP/in.tar",format=raw,if=virtio,readonly=on \
	-drive file="$TMP/out.tar",format=raw,if=virtio </dev/null >"$TMP/console" &
VM=$!
trap 'kill "$VM" 2>/dev/null; exit 143' INT TERM
# Of the VM's console, the job's output, our lines and a panic go to
# stderr as they come (a shell loop: tr and mawk wait for full buffers),
# without CRs and the terminal resets the boot prints (one lands just
# before "nested-kvm: begin").
while IFS= read -r line; do
	line=${line%"$CR"}
	case $line in
	*"nested-kvm: begin") on=1 ;;
	*"nested-kvm: end") on= ;;
	*"nested-kvm: "* | *"Kernel panic"* | *Oops*) echo "nested-kvm: ${line#*nested-kvm: }" ;;
	*) [ -z "${on:-}" ] || printf '%s\n' "$line" ;;
	esac
done <"$TMP/console" >&2
wait "$VM" || true
mkdir -p "$OUT"
tar xf "$TMP/out.tar" -C "$OUT" 2>/dev/null || { echo "nested-kvm: the VM left no output" >&2; exit 1; }
status=$(cat "$OUT/.status" 2>/dev/null || true)
rm -f "$OUT/.status"
exit "${status:-1}"
