#!/bin/sh
# record under faults: kill -9 at random moments, a full disk, flipped bits
# in a page pack and a manifest, and a truncated log. Committed checkpoints
# must survive, and every corruption must be named by verify and by readers.
# usage: record-faults.sh SIMUBOOST GUEST_DIR
set -eu
SIMUBOOST=$1 GUEST_DIR=$2
. "$(dirname "$0")/lib.sh"
need_kvm "record under faults"
TMP=$(mktemp -d)
cleanup() {
	mountpoint -q "$TMP/small" 2>/dev/null && umount "$TMP/small"
	rm -rf "$TMP"
}
trap cleanup EXIT
CFG="$GUEST_DIR/memwrite.cfg"
record() { "$SIMUBOOST" record -q --interval 100ms --set console_out=none "$@"; }

# 1. kill -9 at random moments: everything committed still verifies.
for i in 1 2 3 4 5 6 7 8 9 10; do
	rec="$TMP/kill$i.rec"
	# The binary itself in the background, so that $! is simuboost.
	"$SIMUBOOST" record -q --interval 100ms --set console_out=none -o "$rec" "$CFG" \
		>/dev/null 2>&1 &
	pid=$!
	sleep "$(python3 -c 'import random; print(round(random.uniform(0.3, 3.0), 2))')"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	[ -f "$rec/recording.meta" ] || fail "kill $i: no recording.meta"
	"$SIMUBOOST" ckpt verify "$rec" >"$TMP/kill$i.out" 2>&1 ||
		{ cat "$TMP/kill$i.out"; fail "kill $i: committed checkpoints do not verify"; }
	echo "ok kill -9 #$i: $(cat "$TMP/kill$i.out")"
	rm -rf "$rec"
done

# 2. A full disk ends the recording with a clear error; what was committed
#    stays intact.
mkdir "$TMP/small"
if mount -t tmpfs -o size=6m tmpfs "$TMP/small" 2>/dev/null; then
	rc=0
	record -o "$TMP/small/full.rec" "$CFG" >/dev/null 2>"$TMP/full.err" || rc=$?
	[ "$rc" -eq 1 ] || { cat "$TMP/full.err"; fail "full disk: exit $rc, want 1"; }
	grep -q "No space left on device" "$TMP/full.err" ||
		fail "full disk: unclear error: $(cat "$TMP/full.err")"
	"$SIMUBOOST" ckpt verify "$TMP/small/full.rec" >"$TMP/full.out" ||
		{ cat "$TMP/full.out"; fail "full disk: committed checkpoints do not verify"; }
	echo "ok full disk: $(head -1 "$TMP/full.err"); $(cat "$TMP/full.out")"
	umount "$TMP/small"
else
	echo "skip full disk: cannot mount a tmpfs here (needs root)"
fi

# 3. Flipped bits and a truncated log.
rec="$TMP/good.rec"
record --timeout 1.5 -o "$rec" "$GUEST_DIR/compute.cfg" >/dev/null 2>&1 || true
"$SIMUBOOST" ckpt verify "$rec" >/dev/null || fail "reference recording does not verify"
flip() { python3 - "$1" "$2" <<'PY'
import sys
path, frac = sys.argv[1], float(sys.argv[2])
data = bytearray(open(path, 'rb').read())
data[int(len(data) * frac)] ^= 0x10
open(path, 'wb').write(data)
PY
}
cp -r "$rec" "$TMP/pack.rec"
flip "$TMP/pack.rec/000000.pack" 0.5
if "$SIMUBOOST" ckpt verify "$TMP/pack.rec" >"$TMP/pack.out" 2>&1; then fail "pack bit flip not detected"; fi
grep -q "checkpoint 0: page 0x" "$TMP/pack.out" || fail "pack bit flip: page not named: $(head -3 "$TMP/pack.out")"
if "$SIMUBOOST" run --from "$TMP/pack.rec" --checkpoint 0 >/dev/null 2>"$TMP/pack.run"; then
	fail "a reader accepted a corrupt page"
fi
grep -q "page 0x" "$TMP/pack.run" || fail "reader: page not named: $(cat "$TMP/pack.run")"
echo "ok pack bit flip: $(head -1 "$TMP/pack.out")"

cp -r "$rec" "$TMP/manifest.rec"
flip "$TMP/manifest.rec/000001.manifest" 0.3
if "$SIMUBOOST" ckpt verify "$TMP/manifest.rec" >"$TMP/man.out" 2>&1; then fail "manifest bit flip not detected"; fi
grep -q "000001.manifest" "$TMP/man.out" || fail "manifest bit flip: file not named: $(head -3 "$TMP/man.out")"
if "$SIMUBOOST" ckpt show "$TMP/manifest.rec" 1 >/dev/null 2>"$TMP/man.show"; then
	fail "a reader accepted a corrupt manifest"
fi
echo "ok manifest bit flip: $(head -1 "$TMP/man.out")"

cp -r "$rec" "$TMP/log.rec"
size=$(stat -c %s "$TMP/log.rec/000001.log")
truncate -s $((size / 2)) "$TMP/log.rec/000001.log"
if "$SIMUBOOST" log show "$TMP/log.rec" --interval 1 >/dev/null 2>"$TMP/log.err"; then
	fail "truncated log accepted"
fi
grep -qi "truncated" "$TMP/log.err" || fail "truncated log: unclear error: $(cat "$TMP/log.err")"
if "$SIMUBOOST" ckpt verify "$TMP/log.rec" >/dev/null 2>&1; then fail "verify missed the truncated log"; fi
echo "ok truncated log: $(cat "$TMP/log.err")"
