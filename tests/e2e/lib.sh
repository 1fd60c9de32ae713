# Sourced by the end-to-end tests, after they set SIMUBOOST.
#
# Recording needs KVM; replaying, simulating and analysing need only a
# recording. On a machine without a usable /dev/kvm (a KVM that will not
# bind inside a nested guest, say) the tests that run the vnode are skipped
# with meson's status 77 and say why, and the others replay the recording
# bundled in tests/data instead of making one. Both are printed, so a log
# shows which way a test went.

E2E_DATA=$(cd "$(dirname "$0")/../data" && pwd)
# The devread workload recorded under KVM on 2026-11-22 (16 MiB guest, 26
# intervals of 10 ms, port reads, timer interrupts in user and kernel mode).
E2E_FIXTURE="$E2E_DATA/devread-10ms.tar"

fail() { echo "FAIL $*"; exit 1; }

# wait_results OUT N: waits until a run's OUT/results holds N results; 1
# if that takes more than 120 s.
wait_results() {
	_i=0
	while [ "$(ls "$1/results" 2>/dev/null | wc -l)" -lt "$2" ]; do
		[ "$_i" -lt 1200 ] || return 1
		sleep 0.1
		_i=$((_i + 1))
	done
}

# same_as_serial REC DIR WHAT SPEC...: the reports DIR/NAME.txt that WHAT
# wrote with the analyses SPEC (PLUGIN.so[,ARGS]) are byte for byte those
# of `replay --serial` of REC with them (one QEMU through every interval).
same_as_serial() {
	_rec=$1 _dir=$2 _what=$3
	shift 3
	_n=$#
	for _spec in "$@"; do set -- "$@" --analysis "$_spec"; done
	shift "$_n"
	_serial=$(mktemp -d "$TMP/serial.XXXXXX")
	"$SIMUBOOST" replay "$_rec" --serial -o "$_serial" "$@" >/dev/null 2>"$_serial.err" ||
		{ cat "$_serial.err"; fail "replay --serial"; }
	for _report in "$_serial"/*.txt; do
		_name=$(basename "$_report")
		cmp "$_dir/$_name" "$_report" || fail "${_name%.txt}: $_what differs from a serial replay"
	done
}

kvm_usable() { [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; }

# need_kvm WHAT: skip the test (77) where the vnode cannot run.
need_kvm() {
	kvm_usable && return 0
	echo "SKIP: $1 needs KVM, and this machine has no usable /dev/kvm"
	exit 77
}

# recording OUT RECORD-ARGS...: `simuboost record --quiet -o OUT
# RECORD-ARGS`, or where KVM is missing the bundled recording imported
# into OUT (verified on the way in). Sets RECORDED=1 for a fresh
# recording, 0 for the bundled one.
recording() {
	_out=$1
	shift
	if kvm_usable; then
		RECORDED=1
		"$SIMUBOOST" record --quiet -o "$_out" "$@" >/dev/null 2>"$_out.err" ||
			{ cat "$_out.err"; fail "record $*"; }
	else
		RECORDED=0
		echo "no usable /dev/kvm: replaying the bundled $(basename "$E2E_FIXTURE")" \
			"${1:+instead of: record $*}"
		"$SIMUBOOST" ckpt import "$E2E_FIXTURE" "$_out" >/dev/null 2>"$_out.err" ||
			{ cat "$_out.err"; fail "import $E2E_FIXTURE"; }
	fi
	rm -f "$_out.err"
}

# grow_recording SRC DST: lays SRC's files into DST in the order `record`
# commits them (the metadata, then per checkpoint the log of the interval
# before it, its pack and, last, its manifest), each through a rename, a
# little apart: a recording made while a reader follows it, without KVM.
grow_recording() {
	mkdir -p "$2"
	cp "$1/recording.meta" "$2/.meta.tmp" && mv "$2/.meta.tmp" "$2/recording.meta"
	for _m in "$1"/*.manifest; do
		_k=$(basename "$_m" .manifest)
		_prev=$(printf '%06d' $(($(expr "$_k" + 0) - 1)))
		for _f in "$_prev.log" "$_k.pack" "$_k.manifest"; do
			[ -e "$1/$_f" ] || continue
			cp "$1/$_f" "$2/.$_f.tmp" && mv "$2/.$_f.tmp" "$2/$_f"
		done
		sleep 0.05
	done
}
