#!/bin/bash
# shim_forward.sh: events to containerd (Events/Forward on TTRPC_ADDRESS) against a fake
# containerd: containerd away then back (nothing waits for it, the queued events arrive in
# order), connections dropped before the answer (events are sent again, none lost, none
# reordered), and the exit reaching containerd before the Wait that reports it.
. "$(dirname "$0")/lib.sh"
need_bins
PB=$B/tests/integration/pb_client
[ -x "$PB" ] || skip "pb_client not built"
setup
start_agent

pcall() { "$PB" call "$T/shim.sock" "$@" 2>&1; }
topics() { sed -n 's/.*"topic":"\([^"]*\)".*"container_id":"\([^"]*\)".*/\1:\2/p' "$1" 2>/dev/null | tr '\n' ' ' | sed 's/ $//'; }
# wait_topics FILE WANT: bounded wait until FILE lists exactly WANT.
wait_topics() {
	for i in $(seq 400); do
		[ "$(topics "$1")" = "$2" ] && return 0
		sleep 0.05
	done
	return 1
}

# 1. containerd is away: Create/Start/Wait are not held; the events queue.
export TTRPC_ADDRESS="$T/ctd.sock"
start_shim
unset TTRPC_ADDRESS
make_bundle b1 'exit 3'
out=$(pcall Create "{\"id\":\"c1\",\"bundle\":\"$T/b1\"}")
case $out in OK*) pass "Create with containerd away" ;; *) fail "Create: $out" ;; esac
out=$(pcall Start '{"id":"c1"}')
case $out in OK*) pass "Start with containerd away" ;; *) fail "Start: $out" ;; esac
out=$(pcall Wait '{"id":"c1"}' 20000)
case $out in *'"exit_status":3'*) pass "Wait answers with containerd away" ;; *) fail "Wait: $out" ;; esac
grep -q 'unreachable, queueing' "$T/shim.log" && pass "the shim logged containerd away" || fail "no log line for containerd away"

# ... then comes back: everything queued arrives, in order.
"$PB" events "$T/ctd.sock" "$T/fw1" >>"$T/ctd.log" 2>&1 &
CTD=$!
PIDS="$PIDS $CTD"
want="/tasks/create:c1 /tasks/start:c1 /tasks/exit:c1"
wait_topics "$T/fw1" "$want" && pass "queued events delivered in order: $want" || fail "after containerd came back: '$(topics "$T/fw1")'"
out=$(pcall Delete '{"id":"c1"}')
wait_topics "$T/fw1" "$want /tasks/delete:c1" && pass "later events follow" || fail "Delete's event: '$(topics "$T/fw1")'"
kill "$CTD"; wait "$CTD" 2>/dev/null
stop_shim

# 2. The first two Forward calls lose their connection before the answer: sent again.
rm -f "$T/ctd.sock"
"$PB" events "$T/ctd.sock" "$T/fw2" "" 2 >>"$T/ctd.log" 2>&1 &
CTD=$!
PIDS="$PIDS $CTD"
wait_path "$T/ctd.sock" || die "the fake containerd did not listen"
rm -f "$T/shim.sock"
export TTRPC_ADDRESS="$T/ctd.sock"
start_shim
unset TTRPC_ADDRESS
make_bundle b2 'exit 4'
pcall Create "{\"id\":\"c2\",\"bundle\":\"$T/b2\"}" >/dev/null
pcall Start '{"id":"c2"}' >/dev/null
out=$(pcall Wait '{"id":"c2"}' 20000)
case $out in *'"exit_status":4'*) pass "Wait c2" ;; *) fail "Wait c2: $out" ;; esac
pcall Delete '{"id":"c2"}' >/dev/null
want="/tasks/create:c2 /tasks/start:c2 /tasks/exit:c2 /tasks/delete:c2"
wait_topics "$T/fw2" "$want" && pass "retried after dropped connections, in order: $want" || fail "retries: '$(topics "$T/fw2")'"

# 3. The exit reaches containerd before Wait answers: containerd holds its answer.
kill "$CTD"; wait "$CTD" 2>/dev/null
rm -f "$T/ctd.sock"
"$PB" events "$T/ctd.sock" "$T/fw3" "$T/release" >>"$T/ctd.log" 2>&1 &
CTD=$!
PIDS="$PIDS $CTD"
wait_path "$T/ctd.sock" || die "the fake containerd did not listen"
make_bundle b3 'exit 5'
pcall Create "{\"id\":\"c3\",\"bundle\":\"$T/b3\"}" >/dev/null
wait_topics "$T/fw3" "/tasks/create:c3" || fail "c3's create did not arrive: '$(topics "$T/fw3")'"
"$PB" call "$T/shim.sock" Wait '{"id":"c3"}' 30000 >"$T/wait3" 2>&1 &
WAIT3=$!
PIDS="$PIDS $WAIT3"
pcall Start '{"id":"c3"}' >/dev/null
for i in $(seq 400); do [ -e "$T/fw3.exit-received" ] && break; sleep 0.05; done
[ -e "$T/fw3.exit-received" ] || fail "the exit never reached containerd"
# A round trip through the shim's loop: a Wait answered wrongly would have been sent by now.
pcall State '{"id":"c3"}' | grep -q '"status":"STOPPED"' || fail "c3 is not STOPPED"
[ ! -s "$T/wait3" ] && kill -0 "$WAIT3" 2>/dev/null && pass "Wait is held while containerd has not taken the exit" ||
	fail "Wait answered before containerd took the exit: $(cat "$T/wait3")"
: >"$T/release"
wait "$WAIT3"
grep -q '"exit_status":5' "$T/wait3" && pass "Wait answered after the exit was forwarded: $(cat "$T/wait3")" ||
	fail "Wait: $(cat "$T/wait3")"
case "$(topics "$T/fw3")" in
"/tasks/create:c3 /tasks/start:c3 /tasks/exit:c3"*) pass "containerd had the exit when Wait answered" ;;
*) fail "when Wait answered containerd had: '$(topics "$T/fw3")'" ;;
esac
pcall Delete '{"id":"c3"}' >/dev/null
stop_shim

# 4. A queue of 3 while containerd is away: the 4th event drops the oldest, logged; the rest
# arrive in order once containerd is back.
kill "$CTD"; wait "$CTD" 2>/dev/null
rm -f "$T/ctd.sock" "$T/shim.sock"
export TTRPC_ADDRESS="$T/ctd.sock" VMSHIM_TEST_FORWARD_QUEUE=3
start_shim
unset TTRPC_ADDRESS VMSHIM_TEST_FORWARD_QUEUE
make_bundle b4 'exit 6'
pcall Create "{\"id\":\"c4\",\"bundle\":\"$T/b4\"}" >/dev/null
pcall Start '{"id":"c4"}' >/dev/null
pcall Wait '{"id":"c4"}' 20000 | grep -q '"exit_status":6' || fail "Wait c4"
pcall Delete '{"id":"c4"}' >/dev/null
grep -q 'dropping the oldest (/tasks/' "$T/shim.log" && pass "a full queue drops the oldest event, logged" ||
	fail "no drop logged with a queue of 3"
"$PB" events "$T/ctd.sock" "$T/fw4" >>"$T/ctd.log" 2>&1 &
CTD=$!
PIDS="$PIDS $CTD"
for i in $(seq 400); do [ "$(topics "$T/fw4" | wc -w)" -ge 3 ] && break; sleep 0.05; done
got=$(topics "$T/fw4")
case "$got" in
"/tasks/start:c4 /tasks/exit:c4 /tasks/delete:c4" | "/tasks/create:c4 /tasks/exit:c4 /tasks/delete:c4")
	pass "the 3 queued events arrived in order: $got" ;;
*) fail "with a queue of 3: '$got'" ;;
esac
stop_shim

[ "$FAILS" -eq 0 ] || { echo "FAIL: $FAILS check(s) failed"; exit 1; }
echo "PASS"
