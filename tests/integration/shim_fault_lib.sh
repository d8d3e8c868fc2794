# shim_fault_lib.sh: helpers shared by the fault-injection tests (shim_fault_*.sh), sourced
# after lib.sh. Every wait here is bounded.

FAKE=$B/tests/integration/fake_agent
FCLIENT=$B/tests/integration/shim_fault_client

# Resident set of a pid, in KiB.
rss_kb() {
	awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}

# wait_connected N: until the shim has logged its Nth "connected to agent" (10 s at most).
wait_connected() {
	i=0
	while [ $i -lt 200 ]; do
		[ "$(grep -c 'connected to agent' "$T/shim.log" 2>/dev/null)" -ge "$1" ] && return 0
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}

# wait_log PATTERN FILE [TRIES]: until FILE has a line matching PATTERN (grep -E), 50 ms a try.
wait_log() {
	i=0
	while [ $i -lt "${3:-200}" ]; do
		grep -Eq -- "$1" "$2" 2>/dev/null && return 0
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}

# check_fds WHAT BASELINE: the shim's fd count must come back to BASELINE within 5 s.
check_fds() {
	i=0
	n=$(open_fds "$SHIM_PID")
	while [ "$n" != "$2" ] && [ $i -lt 100 ]; do
		sleep 0.05
		n=$(open_fds "$SHIM_PID")
		i=$((i + 1))
	done
	if [ "$n" = "$2" ]; then
		pass "$1: open fds back to the baseline ($n)"
	else
		fail "$1: $n open fds, baseline $2: $(ls -l /proc/$SHIM_PID/fd | tail -n +2 | awk '{print $NF}' | sort | uniq -c | tr '\n' ';')"
	fi
}

# start_fake MODE [ARGS]: the hostile agent on $T/vm.sock (replaces whatever listened there).
start_fake() {
	rm -f "$T/vm.sock"
	"$FAKE" --listen "$T/vm.sock" --mode "$@" >>"$T/fake.log" 2>&1 &
	FAKE_PID=$!
	PIDS="$PIDS $FAKE_PID"
	wait_path "$T/vm.sock" || die "the fake agent did not listen (see $T/fake.log)"
}

stop_fake() {
	kill -9 "$FAKE_PID" 2>/dev/null
	wait "$FAKE_PID" 2>/dev/null
}

# alive WHAT: the shim process must still be there.
alive() {
	if kill -0 "$SHIM_PID" 2>/dev/null; then
		pass "$1: the shim is still up (RSS $(rss_kb "$SHIM_PID") KiB)"
	else
		die "$1: the shim died (see $T/shim.stderr: $(tail -3 "$T/shim.stderr"))"
	fi
}
