#!/bin/bash
# shim_stdio_bulk.sh: bulk stdio through the real vmshim + vmshim-agent (local VM),
# docs/CONTRACT.md 5.1 and 5.2.
#  - 1 GiB from a container's stdout to the stdout FIFO, SHA-256 equal to the source's;
#  - 256 MiB into stdin, through `cat`, back out of stdout, SHA-256 equal, with CloseIO sent
#    once all of it is in the stdin FIFO (the writer still open) while output is outstanding;
#  - a slow FIFO reader (64 KiB every 2 ms) while 256 MiB pass: the shim's VmRSS stays under
#    32 MiB (the per-stream bound is 1 MiB, docs/ARCHITECTURE.md "Stdio data plane").
# STDIO_BULK_MIB / STDIO_STDIN_MIB / STDIO_SLOW_MIB shrink the sizes for quick runs.
. "$(dirname "$0")/lib.sh"
CLIENT=$B/tests/integration/stdio_client
need_bins "$CLIENT"

if command -v openssl >/dev/null 2>&1; then
	sha() { openssl dgst -sha256 | awk '{print $NF}'; }
elif command -v sha256sum >/dev/null 2>&1; then
	sha() { sha256sum | awk '{print $1}'; }
else
	skip "neither openssl nor sha256sum is installed"
fi

BULK=$((${STDIO_BULK_MIB:-1024} * 1048576))
STDIN=$((${STDIO_STDIN_MIB:-256} * 1048576))
SLOW=$((${STDIO_SLOW_MIB:-256} * 1048576))
RSS_LIMIT_KIB=$((32 * 1024))

setup
start_agent
start_shim

# 1. 1 GiB of stdout.
make_bundle big "exec $CLIENT gen 1 $BULK"
mkfifo "$T/big.out"
(sha <"$T/big.out" >"$T/big.sha") &
READER=$!
PIDS="$PIDS $READER"
expect_call "Create big" Create "{\"id\":\"big\",\"bundle\":\"$T/big\",\"stdout\":\"$T/big.out\"}" '^OK'
t0=$(date +%s%N)
expect_call "Start big" Start '{"id":"big"}' '^OK'
expect_call "Wait big" Wait '{"id":"big"}' '"exit_status":0'
t1=$(date +%s%N)
expect_call "Delete big" Delete '{"id":"big"}' '^OK'
wait_job "$READER" 30 || fail "the stdout reader did not see EOF"
want=$("$CLIENT" gen 1 $BULK | sha)
got=$(cat "$T/big.sha")
ms=$(((t1 - t0) / 1000000))
if [ "$got" = "$want" ]; then
	pass "$((BULK / 1048576)) MiB stdout: SHA-256 $got matches, $ms ms Start..Wait ($((BULK / 1000 / (ms + 1))) MB/s with hashing)"
else
	fail "$((BULK / 1048576)) MiB stdout: SHA-256 $got, want $want"
fi

# 2. 256 MiB through cat, CloseIO once every byte is in the stdin FIFO.
make_bundle cat 'exec cat'
mkfifo "$T/cat.in" "$T/cat.out"
expect_call "Create cat" Create "{\"id\":\"cat\",\"bundle\":\"$T/cat\",\"stdin\":\"$T/cat.in\",\"stdout\":\"$T/cat.out\"}" '^OK'
("$CLIENT" closeio "$T/shim.sock" cat "$T/cat.in" "$T/cat.out" $STDIN 2>"$T/closeio.log" | sha >"$T/cat.sha"; echo "${PIPESTATUS[0]}" >"$T/closeio.rc") &
CJOB=$!
PIDS="$PIDS $CJOB"
wait_job "$CJOB" 60 || fail "closeio did not finish within 60 s"
want=$("$CLIENT" gen 7 $STDIN | sha)
got=$(cat "$T/cat.sha")
if [ "$(cat "$T/closeio.rc" 2>/dev/null)" = 0 ] && [ "$got" = "$want" ]; then
	pass "$((STDIN / 1048576)) MiB stdin -> cat -> stdout with CloseIO mid-way: SHA-256 matches; $(tr '\n' ';' <"$T/closeio.log")"
else
	fail "stdin/CloseIO: rc $(cat "$T/closeio.rc" 2>/dev/null), SHA-256 $got want $want; $(tr '\n' ';' <"$T/closeio.log")"
fi
expect_call "Delete cat" Delete '{"id":"cat"}' '"exit_status":0'

# 3. A slow reader: the shim's memory stays bounded.
make_bundle slow "exec $CLIENT gen 3 $SLOW"
mkfifo "$T/slow.out"
expect_call "Create slow" Create "{\"id\":\"slow\",\"bundle\":\"$T/slow\",\"stdout\":\"$T/slow.out\"}" '^OK'
("$CLIENT" slowread "$T/slow.out" 65536 2000 "$SHIM_PID" 2>"$T/slow.log" | sha >"$T/slow.sha") &
SJOB=$!
PIDS="$PIDS $SJOB"
expect_call "Start slow" Start '{"id":"slow"}' '^OK'
wait_job "$SJOB" 55 || fail "the slow reader did not finish within 55 s"
expect_call "Wait slow" Wait '{"id":"slow"}' '"exit_status":0'
expect_call "Delete slow" Delete '{"id":"slow"}' '^OK'
peak=$(sed -n 's/.*peak \([0-9]*\) KiB.*/\1/p' "$T/slow.log")
want=$("$CLIENT" gen 3 $SLOW | sha)
got=$(cat "$T/slow.sha")
[ "$got" = "$want" ] && pass "slow reader got all $((SLOW / 1048576)) MiB (SHA-256 matches)" ||
	fail "slow reader: SHA-256 $got, want $want; $(cat "$T/slow.log")"
if grep -q __asan_init "$SHIM"; then
	pass "shim VmRSS peak ${peak:-?} KiB with a slow reader (not bounded under sanitizers)"
elif [ -n "$peak" ] && [ "$peak" -lt $RSS_LIMIT_KIB ]; then
	pass "shim VmRSS peak $peak KiB < $RSS_LIMIT_KIB KiB with a slow reader"
else
	fail "shim VmRSS peak ${peak:-?} KiB, limit $RSS_LIMIT_KIB KiB; $(cat "$T/slow.log")"
fi

finish
