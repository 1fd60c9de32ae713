#!/bin/sh
# Bad vm.cfg inputs give a one-line error naming the problem, exit status 1
# (not a crash, not a signal) and never start the VM.
# usage: bad-config.sh SIMUBOOST GUEST_ELF
set -eu
SIMUBOOST=$1 GUEST_ELF=$(realpath "$2")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0

# check NAME EXPECTED-SUBSTRING CFG-TEXT  (CFG-TEXT "" means: no file at all)
check() {
	name=$1 expect=$2
	cfg="$TMP/$name.cfg"
	[ -n "$3" ] && printf '%s\n' "$3" >"$cfg"
	rc=0
	"$SIMUBOOST" run "$cfg" >"$TMP/out" 2>"$TMP/err" || rc=$?
	lines=$(wc -l <"$TMP/err")
	if [ "$rc" -ne 1 ]; then
		echo "FAIL $name: exit status $rc, expected 1"; cat "$TMP/err"; fail=1
	elif [ "$lines" -ne 1 ]; then
		echo "FAIL $name: $lines lines of error output, expected 1"; cat "$TMP/err"; fail=1
	elif ! grep -qF -- "$expect" "$TMP/err"; then
		echo "FAIL $name: error does not mention '$expect':"; cat "$TMP/err"; fail=1
	elif [ -s "$TMP/out" ]; then
		echo "FAIL $name: the guest printed something, so the VM started"; fail=1
	else
		echo "ok $name: $(cat "$TMP/err")"
	fi
}

check missing-file "cannot open config: No such file or directory" ""
check unknown-key "unknown-key.cfg:2: cpus: unknown key" "kernel = \"$GUEST_ELF\";
cpus = \"4\";"
check bad-size "bad-size.cfg:1: memory: '256X' is not a size" "memory = \"256X\";
kernel = \"$GUEST_ELF\";"
check missing-kernel-key "missing-kernel-key.cfg: kernel: missing" "memory = \"64M\";"
check missing-kernel-file "kernel: '$TMP/nope.elf': No such file or directory" "kernel = \"nope.elf\";"
check memory-too-large "memory: 100T exceeds this host's RAM" "kernel = \"$GUEST_ELF\";
memory = \"100T\";"
check syntax-error "syntax-error.cfg:2: syntax error" "kernel = \"$GUEST_ELF\";
memory = ;"
check not-a-kernel "not-a-kernel" "kernel = \"$TMP/not-a-kernel.cfg\";"
exit $fail
