#!/bin/sh
# Runs the whole simuboost test suite: installs what is missing, builds with
# ASan+UBSan and -Werror, runs every unit and end-to-end test, then builds
# the tree with clang in a second directory with the libFuzzer targets and
# runs each for 20 s (tests/fuzz), and ends with a line "N passed, N
# failed, N skipped" over both. FUZZ=0 skips the fuzz part. On a machine
# without a usable /dev/kvm the tests that run the vnode are skipped, and
# those that need a recording replay the bundled one (tests/e2e/lib.sh);
# the summary then says so.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-test}
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}

"$(pwd)/scripts/install-deps.sh" --if-missing
# The simnode's patched QEMU (cached outside the tree; ~4 minutes the first time).
"$(pwd)/simnode/qemu/build.sh" >/dev/null

if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" -Db_sanitize=address,undefined -Db_lundef=false \
		-Dbuildtype=debugoptimized -Dtests=enabled
fi
ninja -C "$BUILD"

# Our own log names: a `meson test` someone else runs in the same build
# directory meanwhile writes testlog.*, not these.
LOG="$BUILD/meson-logs/testsh.json"
rm -f "$LOG"
rc=0
meson test -C "$BUILD" --logbase testsh --print-errorlogs --num-processes 1 "$@" || rc=$?

# The fuzz build: clang, the same sanitizers, coverage instrumentation
# everywhere; a build failure counts as one failed test.
FUZZ_LOG="$FUZZ_BUILD/meson-logs/testsh.json"
fuzz_broken=0
if [ "${FUZZ:-1}" != 0 ]; then
	rm -f "$FUZZ_LOG"
	if [ ! -f "$FUZZ_BUILD/build.ninja" ]; then
		CC=clang meson setup "$FUZZ_BUILD" -Dfuzz=true -Dtests=disabled \
			-Db_sanitize=address,undefined -Db_lundef=false \
			-Dbuildtype=debugoptimized || fuzz_broken=1
	fi
	if [ "$fuzz_broken" -eq 0 ] && ninja -C "$FUZZ_BUILD"; then
		meson test -C "$FUZZ_BUILD" --logbase testsh --suite fuzz --print-errorlogs ||
			rc=$?
		grep -h ' executions in ' "$FUZZ_BUILD/meson-logs/testsh.txt" || true
	else
		echo "the fuzz build ($FUZZ_BUILD, clang) failed"
		fuzz_broken=1
		rc=1
	fi
fi

passed=0 failed=$fuzz_broken skipped=0
for log in "$LOG" "$FUZZ_LOG"; do
	[ -f "$log" ] || continue
	passed=$((passed + $(grep -c '"result": "OK"' "$log" || true)))
	skipped=$((skipped + $(grep -c '"result": "SKIP"' "$log" || true)))
	failed=$((failed + $(grep -c -E '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" || true)))
done
if [ ! -w /dev/kvm ]; then
	echo "no usable /dev/kvm here: what runs the vnode was skipped, and the bundled recording replayed"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
