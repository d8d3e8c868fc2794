#!/bin/bash
# shim_fault_stream.sh: a hostile agent on the stream port (tests/integration/fake_agent.c):
#   stream-big        stdout announces a frame of 10 MiB + 1: the stream fails unread, what came
#                     before it ("hello\n") reaches the host, the output still completes;
#   stream-after-eof  stdout sends data after its EOF: nothing after the EOF reaches the host;
#   stream-stdin-data the agent sends data on stdin (which flows the other way): stdin fails;
#   stream-noeof      stdin: the agent never sends its EOF: the stream stays open while the
#                     process runs (its stdin may rightly wait for it), and once the process
#                     exited the shim closes it after the half-closed timeout (shortened for
#                     the test with VMSHIM_TEST_HALF_CLOSED_TIMEOUT_MS, docs/RELIABILITY.md).
# Each time the process's exit is still published (Wait answers), State/Delete answer, the shim
# stays up and its open-fd count returns to the baseline (docs/PROTOCOL.md 3, docs/CONTRACT.md
# 5.7: EOF is a frame, never a shutdown that could overtake the last bytes).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/shim_fault_lib.sh"
need_bins "$FAKE"
setup
HALF_MS=1000
export VMSHIM_TEST_HALF_CLOSED_TIMEOUT_MS=$HALF_MS
CONNECT_TIMEOUT_MS=1000
write_config '"request_timeout_ms": 5000,'
make_bundle b 'exit 0'

k=0
for mode in stream-big stream-after-eof stream-stdin-data stream-noeof; do
	k=$((k + 1))
	start_fake "$mode"
	if [ $k = 1 ]; then
		start_shim
		wait_log "runner $mode\"" "$T/shim.log" || die "no link to the fake agent"
		sleep 0.1
		base=$(open_fds "$SHIM_PID")
		echo "baseline: $base open fds, RSS $(rss_kb "$SHIM_PID") KiB"
		grep -q 'test override: half-closed stream timeout 1000 ms' "$T/shim.log" && pass "test override logged" || fail "test override not logged"
	else
		wait_log "runner $mode\"" "$T/shim.log" || fail "$mode: no link to the fake agent"
		sleep 0.1
		check_fds "$mode: before" "$base"
	fi
	mkfifo "$T/in$k"
	: >"$T/out$k"
	: >"$T/err$k"
	expect_call "$mode: Create c$k" Create "{\"id\":\"c$k\",\"bundle\":\"$T/b\",\"stdin\":\"$T/in$k\",\"stdout\":\"$T/out$k\",\"stderr\":\"$T/err$k\"}" '^OK'
	expect_call "$mode: Start c$k" Start "{\"id\":\"c$k\"}" '^OK'
	case $mode in
	stream-big)
		wait_log 'stdout stream failed' "$T/shim.log" && pass "$mode: $(grep -o 'stdout stream failed[^"]*' "$T/shim.log" | tail -1)" || fail "$mode: no stream failure logged"
		;;
	stream-after-eof)
		wait_log 'stdout: sent data after EOF' "$T/fake.log" || fail "$mode: the fake agent did not send"
		wait_log 'stdout: closed by the shim' "$T/fake.log" && pass "$mode: the shim closed stdout after the EOF" || fail "$mode: stdout not closed"
		;;
	stream-stdin-data)
		wait_log 'stdin stream failed: data from the guest on stdin' "$T/shim.log" && pass "$mode: stdin stream failed (logged)" || fail "$mode: no stdin failure logged"
		;;
	stream-noeof)
		timeout 5 sh -c "printf 'input\n' >'$T/in$k'" || fail "$mode: could not write stdin"
		wait_log 'stdin: 6 bytes, EOF received; not sending ours' "$T/fake.log" && pass "$mode: the agent got 6 stdin bytes and the shim's EOF" || fail "$mode: stdin did not reach the agent"
		# The process still runs, so its stdin waits for it however long (docs/CONTRACT.md 5.2): the
		# half-closed timeout counts only once the process is gone.
		if wait_log 'stdin: closed by the shim' "$T/fake.log" $((3 * HALF_MS / 50)); then
			fail "$mode: stdin closed while the process still runs"
		else
			pass "$mode: stdin kept open while the process runs (3 x the timeout)"
		fi
		;;
	esac
	expect_call "$mode: State c$k" State "{\"id\":\"c$k\"}" '"status":"RUNNING"'
	t_kill=$(date +%s%N)
	expect_call "$mode: Kill c$k" Kill "{\"id\":\"c$k\",\"signal\":9}" '^OK'
	expect_call "$mode: Wait c$k" Wait "{\"id\":\"c$k\"}" '"exit_status":137'
	if [ $mode = stream-noeof ]; then
		# Once the process is gone, the stdin stream without the agent's EOF is stuck.
		if wait_log 'stdin: closed by the shim' "$T/fake.log" 100; then
			ms=$((($(date +%s%N) - t_kill) / 1000000))
			[ "$ms" -ge $((HALF_MS - 100)) ] && [ "$ms" -lt $((HALF_MS + 3000)) ] &&
				pass "$mode: half-closed stdin reaped about $ms ms after the exit (timeout $HALF_MS ms)" ||
				fail "$mode: reaped $ms ms after the exit"
		else
			fail "$mode: the half-closed stream was never reaped after the exit"
		fi
		grep -q 'stdin stream half-closed for' "$T/shim.log" && pass "$mode: $(grep -o 'stdin stream half-closed for[^"]*' "$T/shim.log" | tail -1)" || fail "$mode: no half-closed log"
	fi
	expect_call "$mode: Delete c$k" Delete "{\"id\":\"c$k\"}" '^OK'
	[ "$(cat "$T/out$k")" = hello ] && pass "$mode: stdout is exactly what came before the fault" || fail "$mode: stdout '$(cat "$T/out$k" | head -c 100)'"
	[ "$(cat "$T/err$k")" = hello ] && pass "$mode: stderr unaffected" || fail "$mode: stderr '$(cat "$T/err$k" | head -c 100)'"
	alive "$mode"
	check_fds "$mode: after Delete" "$base"
	stop_fake
done
finish
