#!/bin/bash
# hotplug_bringup.sh: the per-VM bring-up lock (docs/CONTRACT.md 5.3: concurrent bring-ups crash
# confidential guests) on a real QEMU.
#
# Eight concurrent Creates with a block rootfs each (eight root ports, 9 workers so all eight
# can be in flight: bring-up jobs take at most workers - 1), three ways:
#   A. vm.confidential, agent with VMSHIM_TEST_BRINGUP_OVERLAP=1: all succeed, no overlap, at
#      most one bring-up at a time in the shim's log;
#   B. not confidential, the switch on: the agent detects the overlap. The agent holds each
#      MountDisk 5 s (VMSHIM_TEST_SPAN_HOLD_MS) before it goes on, so without the lock a second
#      span certainly begins while the first is open: the verdict does not hang on timing;
#   C. not confidential, no switch: all succeed and the bring-ups overlap (max printed, > 1).
# QEMU completes device_add one at a time in a few ms, far longer than the agent's
# MountDisk-to-CreateContainer span, so on its own it would keep the agent from ever seeing
# two spans at once. In A and B qmp_proxy --gather hands the shim up to 8 device_add answers
# together (a VMM that hot-adds in parallel), so without the lock the guest calls really
# collide; with the lock each answer waits its 250 ms out alone.
# Then D: workers 4, confidential, 8 slow block Creates (qmp_proxy holds each device_add
# 600 ms) queued on the lock: State (loop thread), Pids, Exec and Kill (workers) on another
# container are answered while Creates are still queued (their latency is printed, not
# judged: under load any figure can be missed).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/hotplug_lib.sh"
need_bins
need_qemu
setup
make_bundle b 'echo up'
for i in 1 2 3 4 5 6 7 8; do make_image "d$i.img"; done

# wave NAME CONFIDENTIAL GATHER AGENT_ARGS...: fresh QEMU, agent and shim; 8 concurrent block
# Creates (GATHER: through qmp_proxy --gather device_add:8:250).
wave() {
	name=$1
	conf=$2
	qmp=$T/qmp.sock
	start_qemu 8
	if [ "$3" = gather ]; then
		rm -f "$T/proxy.sock"
		"$QPROXY" --listen "$T/proxy.sock" --upstream "$T/qmp.sock" \
			--gather device_add:8:250 >>"$T/proxy.$name.log" 2>&1 &
		PROXY_PID=$!
		PIDS="$PIDS $PROXY_PID"
		wait_path "$T/proxy.sock" || die "qmp_proxy did not listen"
		qmp=$T/proxy.sock
	fi
	shift 3
	start_agent_args "$T/agent.$name.log" "$@"
	write_hp_config "$qmp" 8 300 "$conf" 9
	rm -f "$T/shim.log"
	start_shim
	bg=""
	for i in 1 2 3 4 5 6 7 8; do
		call_bg "$T/create.$name.$i" Create \
			"{\"id\":\"$name$i\",\"bundle\":\"$T/b\",$(block_rootfs "$T/d$i.img")}"
		bg="$bg $BG_PID"
	done
	t0=$(date +%s%N)
	for p in $bg; do wait "$p"; done
	WAVE_MS=$((($(date +%s%N) - t0) / 1000000))
	OKS=$(cat "$T"/create."$name".* | grep -c '^OK')
	MAXC=$(max_bringups "$T/shim.log")
	cp "$T/shim.log" "$T/shim.$name.log"
	stop_shim
	stop_agent
	stop_qemu
	if [ -n "${PROXY_PID:-}" ]; then
		kill -9 "$PROXY_PID" 2>/dev/null
		wait "$PROXY_PID" 2>/dev/null
		PROXY_PID=
	fi
}

VMSHIM_TEST_BRINGUP_OVERLAP=1 wave A true gather
echo "     A (confidential, overlap switch): $OKS/8 Creates OK in $WAVE_MS ms, max concurrent bring-ups $MAXC"
[ "$OKS" = 8 ] && pass "A: all 8 Creates succeeded" || fail "A: $(cat "$T"/create.A.*)"
grep -q 'bring-up overlap detected' "$T/agent.A.log" && fail "A: the agent saw an overlap" ||
	pass "A: the agent saw no overlap"
grep -q 'agent link lost' "$T/shim.A.log" && fail "A: the agent dropped the connection" ||
	pass "A: the agent link stayed up"
[ "$MAXC" = 1 ] && pass "A: at most one bring-up at a time in the shim" || fail "A: max concurrency $MAXC"
[ "$(grep -c 'bring-up lock taken after waiting' "$T/shim.A.log")" = 8 ] &&
	pass "A: the lock wait was logged for each Create ($(grep -o 'after waiting [0-9]* ms' "$T/shim.A.log" | cut -d' ' -f3 | tr '\n' ' ')ms)" ||
	fail "A: lock wait lines: $(grep -c 'bring-up lock taken' "$T/shim.A.log")"

VMSHIM_TEST_BRINGUP_OVERLAP=1 VMSHIM_TEST_SPAN_HOLD_MS=5000 wave B false gather
echo "     B (not confidential, overlap switch): $OKS/8 Creates OK, max concurrent bring-ups $MAXC"
grep -q 'bring-up overlap detected' "$T/agent.B.log" &&
	pass "B: without the lock the agent detected the overlap: $(grep -o 'bring-up overlap detected: [^:]*' "$T/agent.B.log" | head -1)" ||
	fail "B: no overlap detected without the lock"

wave C false direct
echo "     C (not confidential): $OKS/8 Creates OK in $WAVE_MS ms, max concurrent bring-ups $MAXC"
[ "$OKS" = 8 ] && pass "C: all 8 Creates succeeded" || fail "C: $(cat "$T"/create.C.*)"
[ "$MAXC" -gt 1 ] && pass "C: bring-ups overlap without the lock (max $MAXC)" || fail "C: max concurrency $MAXC"
grep -q 'bring-up lock taken' "$T/shim.C.log" && fail "C: the lock was taken" || pass "C: no lock taken"

# --- D: 8 slow confidential Creates queued on the lock do not starve other calls ---
start_qemu 8
start_agent_args "$T/agent.D.log"
rm -f "$T/proxy.sock"
"$QPROXY" --listen "$T/proxy.sock" --upstream "$T/qmp.sock" --delay device_add:600 >>"$T/proxy.log" 2>&1 &
PIDS="$PIDS $!"
wait_path "$T/proxy.sock" || die "qmp_proxy did not listen"
write_hp_config "$T/proxy.sock" 8 300 true 4
rm -f "$T/shim.log"
start_shim
make_bundle s 'sleep 1000'
expect_call "D: Create s1 (no disk)" Create "{\"id\":\"s1\",\"bundle\":\"$T/s\"}" '^OK'
expect_call "D: Start s1" Start '{"id":"s1"}' '^OK'
bg=""
for i in 1 2 3 4 5 6 7 8; do
	call_bg "$T/create.D.$i" Create "{\"id\":\"D$i\",\"bundle\":\"$T/b\",$(block_rootfs "$T/d$i.img")}"
	bg="$bg $BG_PID"
done
# Until the first bring-up holds the lock (bounded), then measure while the rest queue.
for i in $(seq 100); do grep -q 'bring-up begin' "$T/shim.log" && break; sleep 0.02; done
timed() { # timed WHAT METHOD JSON PATTERN: expect_call, printing its latency; sets LAT
	t0=$(date +%s%N)
	expect_call "$@"
	LAT=$((($(date +%s%N) - t0) / 1000000))
	echo "     $1: $LAT ms"
}
timed "D: State s1 (loop thread)" State '{"id":"s1"}' '"status":"RUNNING"'
timed "D: Pids s1 (worker)" Pids '{"id":"s1"}' '"processes":\[\{"pid":[1-9]'
timed "D: Exec e1 in s1 (worker)" Exec "{\"id\":\"s1\",\"exec_id\":\"e1\",\"spec\":{\"args\":[\"true\"]}}" '^OK'
timed "D: Kill s1 (worker)" Kill '{"id":"s1","signal":9}' '^OK'
done_now=$(cat "$T"/create.D.* 2>/dev/null | grep -c '^OK')
[ "$done_now" -lt 8 ] && pass "D: those answers came while $((8 - done_now)) Creates were still queued" ||
	fail "D: all Creates were done already: the check proved nothing"
t0=$(date +%s%N)
for p in $bg; do wait "$p"; done
OKS=$(cat "$T"/create.D.* | grep -c '^OK')
echo "     D: 8 slow confidential Creates (device_add held 600 ms): $OKS OK, the last $((($(date +%s%N) - t0) / 1000000)) ms after those calls; max concurrent bring-ups $(max_bringups "$T/shim.log")"
[ "$OKS" = 8 ] && pass "D: all 8 Creates succeeded" || fail "D: $(cat "$T"/create.D.*)"
expect_call "D: Wait s1" Wait '{"id":"s1"}' '"exit_status":137'
finish
