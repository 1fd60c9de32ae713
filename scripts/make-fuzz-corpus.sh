#!/bin/sh
# Regenerates the fuzzers' seed corpora (tests/fuzz/corpus/{log,manifest,
# archive}) from a real recording, and corpus/trace through the trace
# writer, after a change of the on-disk formats (CKPT_FORMAT_VERSION,
# TRACE_FORMAT_VERSION): seeds of an older version stop at the version
# check and exercise nothing behind it.
# usage: scripts/make-fuzz-corpus.sh [BUILD_DIR]   (default: build)
#
# Seeds, as each target's mode byte wants them (see tests/fuzz/fuzz_*.c):
#   log/interval-N          0x01 + a whole log file
#   log/interval-N-payload  0x00 + event count byte + the payload
#   manifest/checkpointK    0x01 + a whole manifest
#   manifest/checkpoint1-payload  0x00 + the payload (envelope stripped)
#   archive/recording.tar[.gz]    `ckpt export` of the recording
#   trace/*.trace           tests/fuzz/trace-seed.c
set -eu
cd "$(dirname "$0")/.."
B=${1:-build}
C=tests/fuzz/corpus
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# devread: port reads and timer interrupts; a small guest keeps the
# manifests and archives small
"$B/cli/simuboost" record --quiet --interval 10ms -o "$TMP/rec" \
	--set memory=16M --set "cmdline=workload=devread scale=20" \
	--set "console_out=$TMP/out" \
	"$B/guests/devread.cfg" >/dev/null
python3 - "$TMP/rec" "$C" <<'PY'
import os, struct, sys
rec, out = sys.argv[1], sys.argv[2]
def seed(path, data):
    with open(os.path.join(out, path), "wb") as f:
        f.write(data)
for d in ("log", "manifest"):
    for name in os.listdir(os.path.join(out, d)):
        os.unlink(os.path.join(out, d, name))
logs = sorted(n for n in os.listdir(rec) if n.endswith(".log"))
def count(n):
    return struct.unpack_from("<Q", open(os.path.join(rec, n), "rb").read(), 16)[0]
# the first log, and the largest one whose event count fits the count byte
rich = max((n for n in logs if count(n) < 256), key=lambda n: os.path.getsize(os.path.join(rec, n)))
for n in {logs[0], rich}:
    data = open(os.path.join(rec, n), "rb").read()
    count, plen = struct.unpack_from("<QQ", data, 16)
    name = "interval-%d" % int(n[:6])
    seed("log/" + name, b"\x01" + data)
    if count < 256:
        seed("log/" + name + "-payload", bytes([0, count]) + data[32:32 + plen])
ENV = 32  # CKPT_ENV_SIZE
for k in (0, 1):
    data = open(os.path.join(rec, "%06d.manifest" % k), "rb").read()
    seed("manifest/checkpoint%d" % k, b"\x01" + data)
    if k == 1:
        seed("manifest/checkpoint1-payload", b"\x00" + data[ENV:])
PY
"$B/cli/simuboost" ckpt export "$TMP/rec" "$C/archive/recording.tar" >/dev/null
"$B/cli/simuboost" ckpt export "$TMP/rec" "$C/archive/recording.tar.gz" >/dev/null
ninja -C "$B" tests/trace-seed >/dev/null
rm -f "$C"/trace/*.trace
"$B/tests/trace-seed" "$C/trace"
ls -l "$C/log" "$C/manifest" "$C/archive" "$C/trace"
