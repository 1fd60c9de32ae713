#!/bin/sh
# The simuboost command behaves like a git-style CLI.
# usage: cli.sh SIMUBOOST
set -eu
S=$1
fail=0
expect() { # expect NAME STATUS PATTERN -- CMD...
	name=$1 want=$2 pat=$3; shift 4
	rc=0; out=$("$@" 2>&1) || rc=$?
	if [ "$rc" -ne "$want" ] || ! printf '%s' "$out" | grep -q -- "$pat"; then
		echo "FAIL $name: status $rc (want $want), output:"; printf '%s\n' "$out"; fail=1
	else
		echo "ok $name"
	fi
}
expect version 0 "^simuboost [0-9]" -- "$S" --version
expect help 0 "run  *boot a guest" -- "$S" help
expect help-run 0 "usage: simuboost run" -- "$S" help run
expect run-help 0 "--timeout SECS" -- "$S" run --help
expect cpuid-help 0 "usage: simuboost cpuid" -- "$S" cpuid --help
expect help-config 0 "interval" -- "$S" help config
expect no-args 2 "usage: simuboost" -- "$S"
expect unknown 2 "'frobnicate' is not a simuboost command" -- "$S" frobnicate
expect run-no-cfg 2 "expected exactly one vm.cfg" -- "$S" run
expect run-bad-timeout 2 "is not a positive number" -- "$S" run --timeout soon x.cfg
expect qemu-cpu 0 "^kvm64,vendor=GenuineIntel" -- "$S" cpuid --qemu-cpu
expect cpuid-table 0 "cpuid 00000000: 00000001" -- "$S" cpuid
expect analyze-jobs-0 2 "--jobs '0': expected a count of 1 or more" -- \
	"$S" analyze rec --trace t --analysis a.so -J 0
expect simnode-cache-0 2 "usage: simuboost simnode" -- \
	"$S" simnode --join ipc:///nowhere --id 1 --cache-mib 0
expect simulate-node-cache 2 "--node-cache-mib 'lots': expected a size in MiB" -- \
	"$S" simulate rec --node-cache-mib lots
expect simulate-qemu-plugin-no-out 2 "--qemu-plugin .* only with --out" -- \
	"$S" simulate rec --nodes 1 --qemu-plugin p.so
expect record-trace-alone 2 "--trace and --simulate-out go with --simulate" -- \
	"$S" record --trace t vm.cfg
exit $fail
