#!/bin/bash
# valgrind.sh: vmshim under valgrind (memcheck, full leak check, fd tracking) through a
# representative workload: 3 containers with stdio created/started/waited/deleted, an exec, a
# kill, an events subscription, bad input, then Shutdown. Valgrind must report no error, no
# definite leak, and the shim must exit 0. Skips (77) when valgrind is not installed.
# Seccomp is off under valgrind (its syscalls are not the shim's).
. "$(dirname "$0")/lib.sh"
need_bins
command -v valgrind >/dev/null || skip "valgrind is not installed"
sanitized && skip "a sanitizer build: valgrind cannot run a sanitized binary (the normal build runs this test)"
setup
SECCOMP=false
write_config '"workers": 2, "request_timeout_ms": 20000,'
# Memcheck replaces malloc through the dynamic loader: with a static vmshim (the default
# --with-linkage), run the build's dynamically linked copy of the same daemon.
if ! readelf -l "$SHIM" | grep -q INTERP; then
	[ -x "$B/tests/integration/vmshim-dynamic" ] ||
		skip "$SHIM is statically linked and no dynamic copy was built: memcheck cannot follow its heap"
	SHIM=$B/tests/integration/vmshim-dynamic
fi
VMSHIM_WRAPPER="valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 --track-fds=yes --log-file=$T/valgrind.log"
start_agent
start_shim
# Valgrind is slow: let the agent link come up before calling.
for i in $(seq 200); do grep -q 'connected to agent' "$T/shim.log" && break; sleep 0.05; done

"$RAW" subscribe "$T/shim.sock" 12 >"$T/events" 2>&1 &
SUB=$!
PIDS="$PIDS $SUB"
for i in $(seq 100); do grep -q subscribed "$T/events" && break; sleep 0.05; done

# c1 and c2 echo their stdin back; c3 sleeps until killed.
for n in 1 2 3; do
	if [ $n = 3 ]; then
		make_bundle "b$n" "sleep 1000"
	else
		make_bundle "b$n" "cat; echo out$n; echo err$n >&2"
	fi
	mkfifo "$T/in$n" "$T/out$n"
	: >"$T/err$n"
	cat "$T/out$n" >"$T/cap$n" &
	PIDS="$PIDS $!"
	expect_call "Create c$n" Create "{\"id\":\"c$n\",\"bundle\":\"$T/b$n\",\"stdin\":\"$T/in$n\",\"stdout\":\"$T/out$n\",\"stderr\":\"$T/err$n\"}" '^OK'
	expect_call "Start c$n" Start "{\"id\":\"c$n\"}" '^OK'
done
: >"$T/e1.out"
expect_call "Exec e1 in c1" Exec "{\"id\":\"c1\",\"exec_id\":\"e1\",\"stdout\":\"$T/e1.out\",\"spec\":{\"args\":[\"sh\",\"-c\",\"echo exec\"],\"env\":[\"PATH=/usr/bin:/bin\"],\"cwd\":\"/\"}}" '^OK'
expect_call "Start e1" Start '{"id":"c1","exec_id":"e1"}' '^OK'
expect_call "Wait e1" Wait '{"id":"c1","exec_id":"e1"}' '"exit_status":0'
expect_call "Delete e1" Delete '{"id":"c1","exec_id":"e1"}' '^OK'
[ "$(cat "$T/e1.out")" = exec ] && pass "exec stdout" || fail "exec stdout '$(cat "$T/e1.out")'"
for n in 1 2; do
	timeout 10 sh -c "printf 'in$n\n' >'$T/in$n'" || fail "stdin of c$n"
done
expect_call "Kill c3" Kill '{"id":"c3","signal":9}' '^OK'
for n in 1 2 3; do
	expect_call "Wait c$n" Wait "{\"id\":\"c$n\"}" '"exit_status":(0|137)'
	expect_call "Delete c$n" Delete "{\"id\":\"c$n\"}" '^OK'
done
for n in 1 2; do
	[ "$(cat "$T/cap$n")" = "$(printf 'in%s\nout%s' $n $n)" ] && pass "c$n stdout" || fail "c$n stdout '$(cat "$T/cap$n")'"
	[ "$(cat "$T/err$n")" = "err$n" ] && pass "c$n stderr" || fail "c$n stderr '$(cat "$T/err$n")'"
done
if "$RAW" badinput "$T/shim.sock" 4194304 >"$T/badinput" 2>&1; then
	pass "bad-input table"
else
	fail "bad-input table: $(tail -3 "$T/badinput")"
fi
expect_call "Shutdown now" Shutdown '{"now":true}' '^OK'
rc=
for i in $(seq 600); do
	if ! kill -0 "$SHIM_PID" 2>/dev/null; then
		wait "$SHIM_PID"
		rc=$?
		break
	fi
	sleep 0.1
done
[ -n "$rc" ] || { kill -9 "$SHIM_PID"; die "the shim did not exit under valgrind within 60 s"; }
SHIM_PID=
[ "$rc" = 0 ] && pass "the shim exited 0 under valgrind" || fail "the shim exited $rc (99: valgrind errors)"
grep -E 'definitely lost:|ERROR SUMMARY:|Open file descriptor|FILE DESCRIPTORS' "$T/valgrind.log" | sed 's/^==[0-9]*== */valgrind: /'
# Memcheck saw the shim's allocations (its malloc was replaced): otherwise the leak check
# below would have nothing to check.
allocs=$(sed -n 's/.*total heap usage: \([0-9,]*\) allocs.*/\1/p' "$T/valgrind.log" | tr -d ,)
[ "${allocs:-0}" -gt 1000 ] && pass "memcheck tracked the shim's heap ($allocs allocations)" ||
	fail "memcheck did not track the shim's heap (${allocs:-no} allocations): malloc not replaced"
if grep -q 'definitely lost:' "$T/valgrind.log"; then
	grep -q 'definitely lost: 0 bytes' "$T/valgrind.log" && pass "no definite leak" || fail "definite leaks: $(grep 'definitely lost' "$T/valgrind.log")"
else
	grep -q 'All heap blocks were freed\|no leaks are possible' "$T/valgrind.log" && pass "no leak at all" || pass "no leak summary with definite leaks"
fi
# --track-fds: every descriptor open at exit must be one the shim inherited.
own=$(awk '/Open file descriptor/ {fd=$0; getline; if ($0 !~ /inherited from parent/) print fd}' "$T/valgrind.log" | sed 's/^==[0-9]*== *//')
[ -z "$own" ] && pass "no descriptor of the shim's own left open at exit" || fail "left open at exit: $own"
grep -q 'ERROR SUMMARY: 0 errors' "$T/valgrind.log" && pass "ERROR SUMMARY: 0 errors" || fail "valgrind errors: $(grep 'ERROR SUMMARY' "$T/valgrind.log")"
[ "${FAILS}" = 0 ] || { echo "--- valgrind log (head) ---"; head -60 "$T/valgrind.log"; }
finish
