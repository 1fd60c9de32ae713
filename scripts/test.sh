#!/bin/sh
# Runs the whole simuboost test suite: installs what is missing, builds with
# ASan+UBSan and -Werror, runs every unit and end-to-end test, and ends with
# a line "N passed, N failed".
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-test}

"$(pwd)/scripts/install-deps.sh" --if-missing

if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" -Db_sanitize=address,undefined -Db_lundef=false \
		-Dbuildtype=debugoptimized -Dtests=enabled
fi
ninja -C "$BUILD"

LOG="$BUILD/meson-logs/testlog.json"
rc=0
meson test -C "$BUILD" --print-errorlogs --num-processes 1 "$@" || rc=$?

passed=0 failed=0
if [ -f "$LOG" ]; then
	passed=$(grep -c '"result": "OK"' "$LOG" || true)
	failed=$(grep -c -E '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$LOG" || true)
fi
echo "$passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
