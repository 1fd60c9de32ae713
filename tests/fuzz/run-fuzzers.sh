#!/bin/sh
# Runs the libFuzzer targets of a build configured with -Dfuzz=true (see
# tests/fuzz/meson.build), each from its seed corpus for a fixed time, and
# prints one line per target: executions, rate, corpus size.
#
#   tests/fuzz/run-fuzzers.sh BUILD [SECONDS]     every target, one after another
#   tests/fuzz/run-fuzzers.sh --one EXE SEEDS WORK
#                                                 one target (what `meson test` runs)
#
# Inputs grow up to libFuzzer's default bound (4096 bytes, or the largest
# seed); each target ignores inputs beyond its own FUZZ_MAX_INPUT.
#
# SECONDS (or $FUZZ_SECONDS) defaults to 20. A target's work directory keeps
# the corpus it grew (reused by the next run) and, after a failure, the
# input that caused it under artifacts/. Exits non-zero if any target found
# a crash, a sanitizer report, a leak or a timeout.
set -eu

SECONDS_EACH=${FUZZ_SECONDS:-20}
SRC=$(cd "$(dirname "$0")" && pwd)

run_one() {
	exe=$1 seeds=$2 work=$3
	name=$(basename "$exe")
	mkdir -p "$work/corpus" "$work/artifacts"
	rm -f "$work/artifacts/"* "$work/log"
	# Scratch space for targets that write files (archive, config): in
	# memory when possible, and removed even when a crash skipped the
	# target's own cleanup.
	shm=/dev/shm
	[ -d "$shm" ] && [ -w "$shm" ] || shm=${TMPDIR:-/tmp}
	scratch=$(mktemp -d "$shm/simuboost-fuzz.XXXXXX")
	# UBSan reports must stop the run (libFuzzer then saves the input).
	rc=0
	FUZZ_TMPDIR=$scratch \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
	LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$SRC/lsan.supp:print_suppressions=0} \
		"$exe" -max_total_time="$SECONDS_EACH" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
		"$work/corpus" "$seeds" >"$work/log" 2>&1 || rc=$?
	rm -rf "$scratch"
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)
	corpus=$(ls "$work/corpus" | wc -l)
	if [ "$rc" -ne 0 ]; then
		echo "$name: FAILED (exit $rc) after ${execs:-?} executions; libFuzzer's report:"
		grep -v '^#[0-9]' "$work/log" | tail -60
		for a in "$work/artifacts/"*; do
			[ -e "$a" ] && echo "$name: reproduce with: LSAN_OPTIONS=suppressions=$SRC/lsan.supp $exe $a"
		done
		return 1
	fi
	echo "$name: ${execs:-?} executions in ${SECONDS_EACH} s (${rate:-?}/s), corpus $corpus inputs, no failures"
}

if [ "${1:-}" = "--one" ]; then
	[ $# -eq 4 ] || { echo "usage: $0 --one EXE SEEDS WORK" >&2; exit 2; }
	run_one "$2" "$3" "$4"
	exit
fi

[ $# -ge 1 ] || { echo "usage: $0 BUILD [SECONDS] | --one EXE SEEDS WORK" >&2; exit 2; }
BUILD=$1
[ $# -ge 2 ] && SECONDS_EACH=$2
failed=0
found=0
for name in loader config manifest log archive; do
	exe=$BUILD/tests/fuzz/fuzz_$name
	if [ ! -x "$exe" ]; then
		echo "fuzz_$name: not built (configure $BUILD with CC=clang -Dfuzz=true)"
		failed=1
		continue
	fi
	found=$((found + 1))
	run_one "$exe" "$SRC/corpus/$name" "$BUILD/tests/fuzz/$name.work" || failed=1
done
[ "$found" -gt 0 ] && [ "$failed" -eq 0 ]
