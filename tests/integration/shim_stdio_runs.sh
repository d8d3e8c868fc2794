#!/bin/bash
# shim_stdio_runs.sh: many short-lived processes through the real vmshim + vmshim-agent.
#  - 500 exec lifecycles of a process that writes 1 MiB and exits at once: right after each
#    Wait returns, a non-blocking read of the stdout FIFO (the shim still holding its end) must
#    complete all 1 MiB, byte-exact (docs/CONTRACT.md 5.1: bytes reach the FIFO before Wait
#    returns);
#  - 1,000 exec lifecycles with stdin, stdout and stderr FIFOs (create FIFOs, Exec, Start, read
#    output, Wait, Delete): afterwards the shim's and the agent's open-fd counts equal their
#    idle counts (docs/CONTRACT.md 5.7).
# STDIO_RUNS / STDIO_CYCLES change the counts for quick runs.
. "$(dirname "$0")/lib.sh"
CLIENT=$B/tests/integration/stdio_client
need_bins "$CLIENT"
RUNS=${STDIO_RUNS:-500}
CYCLES=${STDIO_CYCLES:-1000}

setup
start_agent
start_shim

make_bundle ctr 'exec sleep 1000'
expect_call "Create ctr" Create "{\"id\":\"ctr\",\"bundle\":\"$T/ctr\"}" '^OK'
expect_call "Start ctr" Start '{"id":"ctr"}' '^OK'
mkdir "$T/fifos"

# Bounded wait until PID's fd count equals WANT; prints the last count.
settle_fds() {
	i=0
	n=$(open_fds "$1")
	while [ "$n" != "$2" ] && [ $i -lt 100 ]; do
		sleep 0.05
		n=$(open_fds "$1")
		i=$((i + 1))
	done
	echo "$n"
}

if out=$("$CLIENT" runs "$T/shim.sock" ctr "$RUNS" 1048576 "$T/fifos" "$CLIENT" 2>&1); then
	pass "$RUNS x 1 MiB: every run complete and byte-exact when Wait returned: $out"
else
	fail "$RUNS x 1 MiB: $(printf '%s' "$out" | tail -8 | tr '\n' ';')"
fi

wait_clients_closed
shim_idle=$(open_fds "$SHIM_PID")
agent_idle=$(open_fds "$AGENT_PID")
if out=$("$CLIENT" runs "$T/shim.sock" ctr "$CYCLES" 65536 "$T/fifos" "$CLIENT" full 2>&1); then
	pass "$CYCLES exec lifecycles with stdin/stdout/stderr: $out"
else
	fail "$CYCLES exec lifecycles: $(printf '%s' "$out" | tail -8 | tr '\n' ';')"
fi
shim_now=$(settle_fds "$SHIM_PID" "$shim_idle")
agent_now=$(settle_fds "$AGENT_PID" "$agent_idle")
[ "$shim_now" = "$shim_idle" ] && pass "shim fds back to idle: $shim_now" ||
	fail "shim fds: $shim_now after $CYCLES lifecycles, idle $shim_idle: $(ls -l /proc/$SHIM_PID/fd | tail -5 | tr '\n' ';')"
[ "$agent_now" = "$agent_idle" ] && pass "agent fds back to idle: $agent_now" ||
	fail "agent fds: $agent_now after $CYCLES lifecycles, idle $agent_idle: $(ls -l /proc/$AGENT_PID/fd | tail -5 | tr '\n' ';')"
[ -z "$(ls "$T/fifos")" ] || fail "FIFOs left behind: $(ls "$T/fifos" | head -3)"

expect_call "Kill ctr" Kill '{"id":"ctr","signal":9}' '^OK'
expect_call "Wait ctr" Wait '{"id":"ctr"}' '"exit_status":137'
expect_call "Delete ctr" Delete '{"id":"ctr"}' '^OK'
finish
