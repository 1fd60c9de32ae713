#!/bin/sh
# CPUID identity. The test guest prints every CPUID leaf it sees, from kernel
# mode and from a user-mode task:
#  1. under QEMU TCG with the -cpu string derived from the vnode's table, both
#     blocks must equal the table byte for byte (the derivation is right);
#  2. under the vnode, both blocks must be byte-identical to QEMU's.
# A KVM that overrides KVM_SET_CPUID2 (the PVM-style KVM of our build
# machines replaces leaf 1's feature words with the host's and runs guest
# user-mode CPUID natively) makes (2) impossible for those leaves: the test
# then names each divergence, checks that every other leaf is identical, and
# passes only if the divergences are exactly the ones `simuboost cpuid
# --effective` attributes to the host KVM.
#  3. Where this machine's KVM is missing or overrides leaves, the vnode also
#     runs under one that honours KVM_SET_CPUID2: kvm-amd in a Linux VM that
#     our QEMU emulates (scripts/nested-kvm.sh). There both blocks must be
#     byte-identical to QEMU's.
# usage: cpuid-identity.sh SIMUBOOST GUEST_DIR QEMU_SYSTEM_X86_64
set -eu
S=$1 GUEST_DIR=$2 QEMU=$3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"

# QEMU's side needs no KVM; the vnode's is checked where KVM is usable.
: >"$TMP/vnode.out"
if kvm_usable; then
	"$S" run -q --set console_out="$TMP/vnode.out" "$GUEST_DIR/cpuid.cfg"
fi
rc=0
timeout 300 "$QEMU" -accel tcg -cpu "$("$S" cpuid --qemu-cpu)" -m 256M -display none \
	-nographic -no-reboot -monitor none -serial "file:$TMP/qemu.out" \
	-kernel "$GUEST_DIR/simuboost-guest.elf" -append "workload=cpuid" \
	-device isa-debug-exit,iobase=0xf4,iosize=4 >"$TMP/qemu.log" 2>&1 || rc=$?
# isa-debug-exit turns the guest's status 0 into QEMU's exit status 1.
if [ "$rc" -ne 1 ]; then
	echo "FAIL: qemu exited $rc"; cat "$TMP/qemu.log"; exit 1
fi
if [ -s "$TMP/qemu.log" ]; then
	echo "FAIL: QEMU complained about the derived -cpu:"; cat "$TMP/qemu.log"; exit 1
fi
leaves() { sed -n "/$1-begin\r\{0,1\}\$/,/^$1-end\r\{0,1\}\$/p" "$2" | tr -d '\r' | sed '1d;$d'; }
"$S" cpuid >"$TMP/table"
: >"$TMP/overrides"
! kvm_usable || "$S" cpuid --effective 2>"$TMP/overrides" >/dev/null
fail=0
for b in cpuid cpuid-user; do
	leaves "$b" "$TMP/qemu.out" >"$TMP/qemu.$b"
	leaves "$b" "$TMP/vnode.out" >"$TMP/vnode.$b"
	if cmp -s "$TMP/qemu.$b" "$TMP/table"; then
		echo "ok qemu $b: $(wc -l <"$TMP/table") leaves equal the vnode table"
	else
		echo "FAIL qemu $b: QEMU TCG does not present the table:"
		diff "$TMP/table" "$TMP/qemu.$b" || true; fail=1
	fi
	if ! kvm_usable; then
		echo "SKIP vnode $b: no usable /dev/kvm on this machine"
		continue
	fi
	if cmp -s "$TMP/vnode.$b" "$TMP/qemu.$b"; then
		echo "ok vnode $b: byte-identical to QEMU TCG"
		continue
	fi
	if [ ! -s "$TMP/overrides" ]; then
		echo "FAIL vnode $b: differs from QEMU TCG:"; diff "$TMP/vnode.$b" "$TMP/qemu.$b" || true
		fail=1; continue
	fi
	if [ "$b" = cpuid ]; then
		# Only the leaves the host KVM overrides may differ.
		overridden=$(sed -n 's/^cpuid \([0-9a-f]*\): table.*/\1/p' "$TMP/overrides")
		pat=$(printf '^cpuid \\(%s\\):' "$(echo $overridden | sed 's/ /\\|/g')")
		if diff "$TMP/vnode.$b" "$TMP/qemu.$b" | grep "^[<>]" | cut -c3- |
			grep -qv "$pat"; then
			echo "FAIL vnode $b: leaves the host KVM does not override differ:"
			diff "$TMP/vnode.$b" "$TMP/qemu.$b" || true; fail=1; continue
		fi
		echo "ok vnode $b: identical to QEMU TCG except what this host's KVM overrides:"
		sed 's/^/    /' "$TMP/overrides"
	else
		echo "KNOWN DIVERGENCE vnode $b: this host's KVM runs guest user-mode CPUID" \
			"natively (max basic leaf $(head -1 "$TMP/vnode.$b" | cut -d' ' -f3))"
	fi
done

if ! kvm_usable || [ -s "$TMP/overrides" ]; then
	root=$(cd "$(dirname "$0")/../.." && pwd)
	abs_s=$(cd "$(dirname "$S")" && pwd)/$(basename "$S")
	abs_g=$(cd "$GUEST_DIR" && pwd)
	# (the VM's output directory is $NESTED_OUT there)
	if BUILD=$(pwd) "$root/scripts/nested-kvm.sh" -o "$TMP/nested" -- sh -c \
		"'$abs_s' run -q --set console_out=\$NESTED_OUT/vnode.out '$abs_g/cpuid.cfg'" \
		>"$TMP/nested.log" 2>&1
	then
		for b in cpuid cpuid-user; do
			leaves "$b" "$TMP/nested/vnode.out" >"$TMP/nested.$b"
			if [ -s "$TMP/nested.$b" ] && cmp -s "$TMP/nested.$b" "$TMP/qemu.$b"; then
				echo "ok vnode $b under nested kvm-amd: byte-identical to QEMU TCG"
			else
				echo "FAIL vnode $b under nested kvm-amd: differs from QEMU TCG:"
				diff "$TMP/nested.$b" "$TMP/qemu.$b" || true; fail=1
			fi
		done
	else
		echo "FAIL: the vnode did not run in the nested VM:"; cat "$TMP/nested.log"; fail=1
	fi
fi
exit $fail
