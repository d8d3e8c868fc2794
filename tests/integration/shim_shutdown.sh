#!/bin/bash
# shim_shutdown.sh: what the shim takes and runs once shutdown has begun.
#   1. After Shutdown without now (exit once the last task is deleted), Create and Exec are
#      refused with FAILED_PRECONDITION "shutting down"; deleting the last task ends the shim.
#   2. SIGTERM with bring-up jobs queued: the queued Create is never run (its bundle's
#      config.json is a FIFO nobody writes: running it would block the shim's exit forever),
#      it is answered; the running Create (blocked reading its FIFO bundle until the test
#      writes it) stops before its next step (no bring-up); the shim exits promptly.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/shim_fault_lib.sh"
need_bins
setup
write_config '"workers": 2, "request_timeout_ms": 20000,'
make_bundle b 'sleep 100'
start_agent
start_shim
wait_connected 1 || die "the shim did not connect to the agent"

# 1. Shutdown without now.
expect_call "Create c1" Create "{\"id\":\"c1\",\"bundle\":\"$T/b\"}" '^OK'
expect_call "Shutdown (not now)" Shutdown '{"id":"c1"}' '^OK'
expect_call "Create after Shutdown refused" Create "{\"id\":\"c2\",\"bundle\":\"$T/b\"}" '^FAILED_PRECONDITION .*shutting down'
expect_call "Exec after Shutdown refused" Exec '{"id":"c1","exec_id":"e1","spec":{"args":["true"]}}' '^FAILED_PRECONDITION .*shutting down'
expect_call "c2 was not created" State '{"id":"c2"}' '^NOT_FOUND'
expect_call "State c1 still answers" State '{"id":"c1"}' '"status":"CREATED"'
expect_call "Delete c1 (the last task)" Delete '{"id":"c1"}' '^OK'
i=0
while [ $i -lt 100 ] && kill -0 "$SHIM_PID" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
if kill -0 "$SHIM_PID" 2>/dev/null; then
	fail "the shim did not exit after the last Delete"
	kill -9 "$SHIM_PID"
	wait "$SHIM_PID" 2>/dev/null
	rm -f "$T/shim.sock"
else
	wait "$SHIM_PID"
	pass "the shim exited after the last task was deleted (status $?)"
fi
SHIM_PID=

# 2. SIGTERM with a bring-up running and one queued (2 workers: 1 bring-up at a time).
: >"$T/shim.log"
start_shim
wait_connected 1 || die "the shim did not connect to the agent"
mkdir -p "$T/fa" "$T/fb"
mkfifo "$T/fa/config.json" "$T/fb/config.json"
timeout 20 "$RAW" call "$T/shim.sock" Create "{\"id\":\"ca\",\"bundle\":\"$T/fa\"}" >"$T/ca.out" 2>&1 &
CA=$!
sleep 0.3
timeout 20 "$RAW" call "$T/shim.sock" Create "{\"id\":\"cb\",\"bundle\":\"$T/fb\"}" >"$T/cb.out" 2>&1 &
CB=$!
sleep 0.3
kill -TERM "$SHIM_PID"
wait_log 'shutting down' "$T/shim.log" || fail "no shutdown logged"
# Unblock the running Create: its bundle read completes after SIGTERM.
timeout 5 sh -c "cat '$T/b/config.json' >'$T/fa/config.json'" || fail "could not feed ca's bundle"
i=0
while [ $i -lt 100 ] && kill -0 "$SHIM_PID" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
if kill -0 "$SHIM_PID" 2>/dev/null; then
	fail "the shim did not exit within 5 s of SIGTERM (a queued Create ran on the way out?)"
else
	rc=0
	wait "$SHIM_PID" || rc=$?
	[ "$rc" = 0 ] && pass "the shim exited promptly after SIGTERM" || fail "the shim exited $rc"
	SHIM_PID=
fi
wait "$CA" "$CB" 2>/dev/null
grep -q 'queued job(s) answered without being run' "$T/shim.log" && pass "queued job handed back unrun: $(grep -o 'shutting down: [^"]*' "$T/shim.log")" || fail "no log of the unrun queued job"
grep -q 'bring-up stopped: the shim is shutting down' "$T/shim.log" && pass "the running bring-up stopped between steps" || fail "the running bring-up went on"
grep -q 'bring-up begin' "$T/shim.log" && fail "a bring-up began after SIGTERM" || pass "no bring-up began"
grep -q '^OK' "$T/cb.out" && fail "cb: $(cat "$T/cb.out")" || pass "cb not created: $(head -c 120 "$T/cb.out")"
grep -q '^OK' "$T/ca.out" && fail "ca: $(cat "$T/ca.out")" || pass "ca not created: $(head -c 120 "$T/ca.out")"
if [ -s "$T/shim.stderr" ] && grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error|fatal' "$T/shim.stderr"; then
	fail "the shim reported: $(head -5 "$T/shim.stderr")"
fi
finish
