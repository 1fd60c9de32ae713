#!/bin/sh
# CPUID identity: the test guest prints every CPUID leaf it sees, from kernel
# mode and from a user-mode task, once under the vnode (KVM) and once under
# QEMU TCG with the -cpu string derived from the vnode's table. The blocks
# must be byte-identical, and equal to the table itself.
# usage: cpuid-identity.sh SIMUBOOST GUEST_DIR QEMU_SYSTEM_X86_64
set -eu
S=$1 GUEST_DIR=$2 QEMU=$3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

"$S" run -q --set console_out="$TMP/vnode.out" "$GUEST_DIR/cpuid.cfg"
cpu=$("$S" cpuid --qemu-cpu)
rc=0
timeout 300 "$QEMU" -accel tcg -cpu "$cpu" -m 256M -display none -nographic -no-reboot \
	-monitor none -serial "file:$TMP/qemu.out" \
	-kernel "$GUEST_DIR/simuboost-guest.elf" -append "workload=cpuid" \
	-device isa-debug-exit,iobase=0xf4,iosize=4 >"$TMP/qemu.log" 2>&1 || rc=$?
# isa-debug-exit turns the guest's status 0 into QEMU's exit status 1.
if [ "$rc" -ne 1 ]; then
	echo "FAIL: qemu exited $rc"; cat "$TMP/qemu.log"; exit 1
fi
block() { sed -n "/^$1-begin\r\{0,1\}\$/,/^$1-end\r\{0,1\}\$/p" "$2" | tr -d '\r'; }
fail=0
for b in cpuid cpuid-user; do
	block "$b" "$TMP/vnode.out" >"$TMP/vnode.$b"
	block "$b" "$TMP/qemu.out" >"$TMP/qemu.$b"
	if [ ! -s "$TMP/vnode.$b" ]; then
		echo "FAIL: the guest printed no $b block under the vnode"; fail=1; continue
	fi
	if cmp -s "$TMP/vnode.$b" "$TMP/qemu.$b"; then
		echo "ok $b: $(($(wc -l <"$TMP/vnode.$b") - 2)) leaves byte-identical under vnode and QEMU TCG"
	else
		echo "FAIL $b: vnode and QEMU TCG differ:"; diff "$TMP/vnode.$b" "$TMP/qemu.$b" || true
		fail=1
	fi
done
"$S" cpuid >"$TMP/table"
sed '1d;$d' "$TMP/vnode.cpuid" | grep -v '^cpuid 4' >"$TMP/seen" || true
grep -v '^cpuid 4' "$TMP/table" >"$TMP/table.cmp" || true
if cmp -s "$TMP/seen" "$TMP/table.cmp"; then
	echo "ok table: the guest sees exactly the vnode's table"
else
	echo "FAIL table: the guest's leaves differ from 'simuboost cpuid':"
	diff "$TMP/seen" "$TMP/table.cmp" || true
	fail=1
fi
exit $fail
