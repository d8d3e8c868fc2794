#!/usr/bin/env bash
# run-fuzzers.sh: run every libFuzzer target of a --enable-fuzzing build for a while.
#
#   tests/fuzz/run-fuzzers.sh BUILD_DIR [SECONDS]     SECONDS per target, default 30
#
# BUILD_DIR is a build configured with CC=clang --enable-fuzzing and built (make), so that
# BUILD_DIR/tests/fuzz/fuzz_NAME exist. Each target runs for SECONDS (-max_total_time) with
# its max_len and dictionary, -rss_limit_mb=2048, -detect_leaks=1, starting from the
# committed corpus tests/fuzz/corpus/NAME/ and writing the new inputs it finds to a scratch
# corpus, OUT/NAME/corpus. It prints per target the executions, exec/s and the coverage
# (libFuzzer's cov: and ft:) reached, and exits 1 if any target crashed, leaked, timed out,
# ran out of memory or is missing; the failing input is kept as OUT/NAME/crash-* (or leak-,
# timeout-, oom-) and named in the output, with the full log in OUT/NAME/fuzz.log.
#
# Environment:
#   FUZZ_TARGETS="frame qmp"  run only these (default: every directory of tests/fuzz/corpus/)
#   FUZZ_OUT=DIR              scratch directory (default BUILD_DIR/tests/fuzz/out)
#   FUZZ_JOBS=N               run N targets at once (default 1)
#   FUZZ_MERGE=1              afterwards merge (-merge=1) the new inputs of each clean target
#                             into the committed corpus tests/fuzz/corpus/NAME/
set -u

here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 BUILD_DIR [SECONDS]" >&2
	exit 2
fi
build=$(cd "$1" && pwd) || exit 2
secs=${2:-30}
case $secs in '' | *[!0-9]*)
	echo "$0: SECONDS must be a number, not '$secs'" >&2
	exit 2
	;;
esac
out=${FUZZ_OUT:-$build/tests/fuzz/out}
jobs=${FUZZ_JOBS:-1}
targets=${FUZZ_TARGETS:-$(cd "$here/corpus" && for d in */; do printf '%s ' "${d%/}"; done)}

say() { printf 'fuzz: %s\n' "$*"; }

# Longest input per target: a line parser needs far less room than a frame stream.
max_len() {
	case $1 in
	handshake | endpoint) echo 512 ;;
	*) echo 65536 ;;
	esac
}

dict() {
	case $1 in
	request | response_event | qmp) echo "$here/json.dict" ;;
	handshake) echo "$here/handshake.dict" ;;
	endpoint) echo "$here/endpoint.dict" ;;
	esac
}

# Run one target; its summary line goes to OUT/NAME/result, "ok" or "failed" to OUT/NAME/rc.
run_one() {
	local t=$1 bin="$build/tests/fuzz/fuzz_$1" dir="$out/$1" log rc before after d
	local execs eps cov ft line bad what
	log="$dir/fuzz.log"
	mkdir -p "$dir/corpus"
	if [ ! -x "$bin" ]; then
		echo "$t: $bin is missing (configure with CC=clang --enable-fuzzing, then make)" \
			>"$dir/result"
		echo failed >"$dir/rc"
		return
	fi
	before=$(find "$dir/corpus" -type f | wc -l)
	set -- -max_total_time="$secs" -max_len="$(max_len "$t")" -rss_limit_mb=2048 \
		-malloc_limit_mb=2048 -timeout=25 -detect_leaks=1 -print_final_stats=1 \
		-artifact_prefix="$dir/"
	d=$(dict "$t")
	[ -n "$d" ] && set -- "$@" -dict="$d"
	"$bin" "$@" "$dir/corpus" "$here/corpus/$t" >"$log" 2>&1
	rc=$?
	after=$(find "$dir/corpus" -type f | wc -l)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	line=$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -n 1)
	cov=$(printf '%s\n' "$line" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(printf '%s\n' "$line" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	line="$t: ${execs:-?} execs, ${eps:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}, corpus +$((after - before)) new"
	if [ "$rc" -ne 0 ]; then
		bad=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
		what=$(grep -m1 -E '^==[0-9]+==ERROR|^SUMMARY|fuzz invariant|^fatal:|ALARM|out-of-memory' \
			"$log" | cut -c1-160)
		echo "$line: FAILED (exit $rc) ${what:-}; input ${bad:-not saved}; log $log" \
			>"$dir/result"
		echo failed >"$dir/rc"
		return
	fi
	if [ "${FUZZ_MERGE:-}" = 1 ]; then
		if "$bin" -merge=1 -max_len="$(max_len "$t")" -rss_limit_mb=2048 \
			"$here/corpus/$t" "$dir/corpus" >"$dir/merge.log" 2>&1; then
			line="$line, merged into $here/corpus/$t"
		else
			echo "$line: merge FAILED, log $dir/merge.log" >"$dir/result"
			echo failed >"$dir/rc"
			return
		fi
	fi
	echo "$line: ok" >"$dir/result"
	echo ok >"$dir/rc"
}

say "$secs s per target, scratch in $out"
running=0
for t in $targets; do
	mkdir -p "$out/$t"
	rm -f "$out/$t/result" "$out/$t/rc"
	if [ "$jobs" -le 1 ]; then
		run_one "$t"
		sed 's/^/fuzz: /' "$out/$t/result"
		continue
	fi
	run_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait

n=0 failed=0
for t in $targets; do
	n=$((n + 1))
	[ "$jobs" -gt 1 ] && sed 's/^/fuzz: /' "$out/$t/result"
	[ "$(cat "$out/$t/rc" 2>/dev/null)" = ok ] || failed=$((failed + 1))
done
say "$n targets, $failed failed"
[ "$failed" -eq 0 ]
