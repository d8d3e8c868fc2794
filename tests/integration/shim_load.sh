#!/bin/bash
# shim_load.sh: docs/CONTRACT.md 5.4 and 5.7 under load. The open-fd count after 1000 connect/call/
# disconnect cycles equals the idle count; 64 clients x 200 calls in parallel all succeed;
# 500 parked Waits leave State flowing and are all answered; 200 half-header connections do
# not delay a normal client, nor does one that sends 200000 requests and never reads.
. "$(dirname "$0")/lib.sh"
need_bins "$LOAD"
setup
start_agent
write_config '"handshake_timeout_ms": 5000,'
start_shim

make_bundle b1 'sleep 1000'
expect_call "Create c1" Create "{\"id\":\"c1\",\"bundle\":\"$T/b1\"}" '^OK'
expect_call "Start c1" Start '{"id":"c1"}' '^OK'

idle=$(open_fds "$SHIM_PID")
"$RAW" cycles "$T/shim.sock" 1000 || fail "cycles"
sleep 0.2
after=$(open_fds "$SHIM_PID")
[ "$idle" = "$after" ] && pass "open fds: $idle idle, $after after 1000 cycles" || fail "open fds: $idle idle, $after after 1000 cycles"

out=$("$LOAD" "$T/shim.sock" 64 200 c1) && pass "$out" || fail "$out"

out=$("$RAW" waits "$T/shim.sock" 500 c1) && pass "$(echo $out)" || fail "$(echo $out)"

out=$("$RAW" halfheader "$T/shim.sock" 200) && pass "$out" || fail "$out"
out=$("$RAW" noread "$T/shim.sock" 200000) && pass "$(echo $out)" || fail "$(echo $out)"

expect_call "Delete c1" Delete '{"id":"c1"}' '"exit_status":137'
sleep 0.3
after=$(open_fds "$SHIM_PID")
[ "$idle" -ge "$after" ] && pass "open fds back to $after (idle with a task: $idle)" || fail "open fds: $after, idle $idle"
finish
