#!/bin/sh
# agent_hostile.sh: what an outside probe found on the agent protocol, checked on the agent
# alone:
#   pause    PauseContainer of a created (never started) container answers FAILED_PRECONDITION
#   delete   a never-started init that is stopped (SIGSTOP) does not outlive DeleteProcess:
#            it is SIGKILLed and reaped, not left waiting for a start byte for ever
#   shutdown the agent's SIGTERM shutdown kills a stopped process and a paused container
#   logs     a 3000-byte serial or target is cut in every log line, a 3000-byte id is refused
#            by the id rule (no peer string longer than 255 bytes reaches the log), and the
#            agent keeps answering
. "$(dirname "$0")/agent_lib.sh"

call() { "$CLIENT" call "$SOCK" "$@"; }
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }

# expect WHAT PATTERN METHOD JSON: the answer must match the grep -E pattern.
expect() {
	what=$1 pat=$2
	shift 2
	out=$(call "$@" 2>&1)
	if printf '%s\n' "$out" | grep -Eq -- "$pat"; then
		echo "ok   $what: $(printf '%s' "$out" | cut -c1-200)"
	else
		fail "$what: got '$out', want /$pat/"
	fi
}

# The state letter of a process (R, S, T, Z...), or nothing once it is gone.
pstate() {
	line=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	rest=${line##*) }
	echo "${rest%% *}"
}

# wait_state PID WANT: bounded wait until the process is in state WANT ("" = gone).
wait_state() {
	i=0
	while [ "$(pstate "$1")" != "$2" ] && [ $i -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	[ "$(pstate "$1")" = "$2" ]
}

create() {
	out=$(call CreateContainer "{\"id\":\"$1\",\"spec\":{\"process\":{\"args\":[\"sleep\",\"300\"]}}}")
	pid=$(printf '%s\n' "$out" | sed -n 's/^OK {"pid":\([0-9]*\)}$/\1/p')
	[ -n "$pid" ] || { echo "FAIL: CreateContainer $1: $out"; exit 1; }
	echo "$pid"
}

agent_start

# pause: refused on a created container.
p1=$(create p1)
expect "Pause of a created container" '^FAILED_PRECONDITION .*not running' PauseContainer '{"id":"p1"}'

# delete: a stopped never-started init dies with its DeleteProcess.
kill -STOP "$p1"
wait_state "$p1" T || { echo "FAIL: pid $p1 did not stop"; exit 1; }
expect "Delete of a stopped created container" '^OK' DeleteProcess '{"id":"p1"}'
if wait_state "$p1" ""; then
	echo "ok   the stopped init $p1 is gone after DeleteProcess"
else
	fail "pid $p1 outlived DeleteProcess (state $(pstate "$p1"))"
	kill -KILL "$p1" 2>/dev/null
fi

# shutdown: a stopped created init and a paused running container die with the agent.
p2=$(create p2)
kill -STOP "$p2"
wait_state "$p2" T || { echo "FAIL: pid $p2 did not stop"; exit 1; }
p3=$(create p3)
expect "Start p3" '^OK' StartProcess '{"id":"p3"}'
expect "Pause p3 (running)" '^OK' PauseContainer '{"id":"p3"}'
wait_state "$p3" T || { echo "FAIL: paused pid $p3 is not stopped"; exit 1; }

# logs: peer strings of 3000 bytes.
long=$(printf '%3000s' '' | tr ' ' x)
expect "MountDisk with a long serial and target" '^OK' MountDisk \
	"{\"id\":\"m1\",\"serial\":\"$long\",\"target\":\"/$long\"}"
expect "MountDisk with a long id" '^INVALID_ARGUMENT payload.id: ' MountDisk \
	"{\"id\":\"$long\",\"serial\":\"s1\",\"target\":\"/m2\"}"
expect "DeleteProcess of a long id" '^NOT_FOUND' DeleteProcess "{\"id\":\"$long\"}"
expect "the agent still answers" '^OK' Ping '{}'

agent_stop
for p in "$p2" "$p3"; do
	if wait_state "$p" ""; then
		echo "ok   pid $p is gone after the agent's shutdown"
	else
		fail "pid $p outlived the agent (state $(pstate "$p"))"
		kill -KILL "$p" 2>/dev/null
	fi
done

grep -q 'mount skipped' "$LOG" || fail "no 'mount skipped' line in the log"
max=$(awk '{ if (length($0) > m) m = length($0) } END { print m }' "$LOG")
if grep -Eq 'x{256}' "$LOG"; then
	fail "a peer string of more than 255 bytes reached the log (longest line $max bytes):"
	grep -E 'x{256}' "$LOG" | cut -c1-200
else
	echo "ok   no peer string over 255 bytes in the log (longest line $max bytes)"
fi
[ "$FAILS" -eq 0 ] || { echo "FAIL: $FAILS check(s) failed"; exit 1; }
echo PASS
