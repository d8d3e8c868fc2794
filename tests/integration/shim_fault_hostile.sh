#!/bin/bash
# shim_fault_hostile.sh: a hostile agent on the control port (tests/integration/fake_agent.c).
# Each mode misbehaves on Pids/Stats while a Wait is parked on a created container:
#   garbage, oversized, request  -> the call turns INTERNAL/UNAVAILABLE, the link is dropped,
#                                   the parked Wait answers UNAVAILABLE, the shim reconnects;
#   badjson                      -> that call INTERNAL, the link stays;
#   unknown-ids                  -> strays are discarded, the call itself answers OK;
#   trickle                      -> DEADLINE_EXCEEDED (or UNAVAILABLE) within about
#                                   request_timeout_ms; the link is dropped for the unfinished
#                                   frame, the parked Wait answers UNAVAILABLE, the shim
#                                   reconnects and a later agent call (Kill) succeeds
#                                   (shim_fault_trickle.sh goes further);
#   events                       -> a never-ending event flood: State latency stays low,
#                                   agent calls still answer, memory stays flat.
# In every mode the shim stays up, State/Connect/Delete answer, RSS is printed, the open-fd
# count returns to its baseline; a real agent afterwards runs a container (docs/CONTRACT.md
# 5.6, 5.7).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/shim_fault_lib.sh"
need_bins "$FAKE" "$FCLIENT"
setup
TIMEOUT_MS=1500
cat >"$T/config.json" <<JSON
{
  "vm": {"vsock": "uds:$T/vm.sock", "connect_timeout_ms": 1000},
  "request_timeout_ms": $TIMEOUT_MS, "max_message_bytes": 65536,
  "seccomp": false, "allowed_uids": [$(id -u)], "log_level": "info"
}
JSON
make_bundle b 'exit 0'

# connected MODE: the shim's link to the fake agent in MODE is up (its Ping names the mode).
connected() {
	wait_log "runner $1\"" "$T/shim.log" || fail "$1: the shim did not connect to the fake agent"
	sleep 0.1
}

k=0
for mode in garbage oversized request badjson unknown-ids trickle events; do
	k=$((k + 1))
	start_fake "$mode" --max-message 65536
	if [ $k = 1 ]; then
		start_shim
		connected "$mode"
		base=$(open_fds "$SHIM_PID")
		echo "baseline: $base open fds, RSS $(rss_kb "$SHIM_PID") KiB"
	else
		connected "$mode"
		check_fds "$mode: before" "$base"
	fi
	rss0=$(rss_kb "$SHIM_PID")
	expect_call "$mode: Create c$k" Create "{\"id\":\"c$k\",\"bundle\":\"$T/b\"}" '^OK'
	call Wait "{\"id\":\"c$k\"}" >"$T/wait$k" 2>&1 &
	WAITER=$!
	sleep 0.1
	t0=$(date +%s%N)
	case $mode in
	garbage | oversized | request)
		expect_call "$mode: Pids" Pids "{\"id\":\"c$k\"}" '^(INTERNAL|UNAVAILABLE)'
		wait "$WAITER"
		grep -q '^UNAVAILABLE' "$T/wait$k" && pass "$mode: parked Wait: $(cat "$T/wait$k")" || fail "$mode: parked Wait: '$(cat "$T/wait$k")'"
		wait_log "agent link lost" "$T/shim.log" && pass "$mode: $(grep -o 'agent link lost[^"]*' "$T/shim.log" | tail -1)" || fail "$mode: the link was not dropped"
		;;
	badjson)
		expect_call "$mode: Pids" Pids "{\"id\":\"c$k\"}" '^INTERNAL'
		expect_call "$mode: the link still works (Kill)" Kill "{\"id\":\"c$k\",\"signal\":9}" '^OK'
		;;
	unknown-ids)
		expect_call "$mode: Pids after 300 stray frames" Pids "{\"id\":\"c$k\"}" '^OK'
		;;
	trickle)
		n0=$(grep -c 'connected to agent' "$T/shim.log")
		expect_call "$mode: Pids" Pids "{\"id\":\"c$k\"}" '^(DEADLINE_EXCEEDED|UNAVAILABLE)'
		ms=$((($(date +%s%N) - t0) / 1000000))
		[ $ms -lt $((TIMEOUT_MS + 1500)) ] && pass "$mode: answered in $ms ms (request_timeout_ms $TIMEOUT_MS)" || fail "$mode: took $ms ms"
		expect_call "$mode: State meanwhile" State "{\"id\":\"c$k\"}" '"status":"CREATED"'
		wait_log "agent link lost: protocol error: a frame from the agent did not finish" "$T/shim.log" 60 &&
			pass "$mode: $(grep -o 'agent link lost: protocol error: a frame[^"]*' "$T/shim.log" | tail -1)" ||
			fail "$mode: the link was not dropped for the unfinished frame"
		wait "$WAITER"
		grep -q '^UNAVAILABLE' "$T/wait$k" && pass "$mode: parked Wait: $(cat "$T/wait$k")" || fail "$mode: parked Wait: '$(cat "$T/wait$k")'"
		wait_connected $((n0 + 1)) && pass "$mode: reconnected" || fail "$mode: no reconnection"
		expect_call "$mode: a later agent call on the new link (Kill)" Kill "{\"id\":\"c$k\",\"signal\":9}" '^OK'
		;;
	events)
		expect_call "$mode: Stats starts the flood" Stats "{\"id\":\"c$k\"}" '^OK'
		sleep 1
		rss1=$(rss_kb "$SHIM_PID")
		out=$("$FCLIENT" idle "$T/shim.sock" 0 300 "c$k") && pass "$mode: $out" || fail "$mode: $out"
		expect_call "$mode: an agent call during the flood (Pids)" Pids "{\"id\":\"c$k\"}" '^OK'
		sleep 1
		rss2=$(rss_kb "$SHIM_PID")
		if sanitized; then
			pass "$mode: RSS $rss1 -> $rss2 KiB (not bounded under sanitizers)"
		elif [ $((rss2 - rss1)) -lt 16384 ]; then
			pass "$mode: RSS flat under the flood: $rss1 KiB after 1 s, $rss2 KiB after 2+ s"
		else
			fail "$mode: RSS grew: $rss1 -> $rss2 KiB"
		fi
		;;
	esac
	expect_call "$mode: State" State "{\"id\":\"c$k\"}" '"id":"c'$k'"'
	expect_call "$mode: Connect" Connect '{}' '^OK'
	alive "$mode"
	rss=$(rss_kb "$SHIM_PID")
	if sanitized; then
		pass "$mode: RSS $rss0 -> $rss KiB (not bounded under sanitizers)"
	elif [ $((rss - rss0)) -lt 32768 ]; then
		pass "$mode: RSS $rss0 -> $rss KiB"
	else
		fail "$mode: RSS grew $rss0 -> $rss KiB"
	fi
	stop_fake
	expect_call "$mode: Delete c$k" Delete "{\"id\":\"c$k\"}" '^OK'
	wait "$WAITER" 2>/dev/null
	[ -s "$T/wait$k" ] && pass "$mode: the parked Wait was answered: $(cat "$T/wait$k")" || fail "$mode: the parked Wait got no answer"
done
echo "fake agent: $(grep -o 'event flood ended after [0-9]* events' "$T/fake.log")"

# A real agent afterwards: the shim reconnects and a container runs.
start_agent
wait_log 'runner process' "$T/shim.log" || fail "no reconnection to the real agent"
sleep 0.1
make_bundle ok 'echo fine'
: >"$T/ok.out"
expect_call "real agent: Create" Create "{\"id\":\"ok\",\"bundle\":\"$T/ok\",\"stdout\":\"$T/ok.out\"}" '^OK'
expect_call "real agent: Start" Start '{"id":"ok"}' '^OK'
expect_call "real agent: Wait" Wait '{"id":"ok"}' '"exit_status":0'
expect_call "real agent: Delete" Delete '{"id":"ok"}' '^OK'
[ "$(cat "$T/ok.out")" = fine ] && pass "real agent: stdout arrived" || fail "real agent: stdout '$(cat "$T/ok.out")'"
check_fds "real agent" "$base"
echo "RSS at the end: $(rss_kb "$SHIM_PID") KiB"
finish
