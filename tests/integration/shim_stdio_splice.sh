#!/bin/bash
# shim_stdio_splice.sh: the zero-copy data plane through the real vmshim + vmshim-agent, and
# its copy fallback (VMSHIM_IO_COPY=1 in both daemons' environment), each checked by sha256:
#  - STDIO_BIG_MIB (default 1024) MiB of a pseudo-random pattern out of a container's stdout
#    and into a container's stdin, on the splice path and on the copy path; then 64 MiB out
#    with the agent's frame pipe at 16 KiB (VMSHIM_TEST_FRAME_PIPE), so every spliced frame
#    crosses it in steps, none of them copied;
#  - a reader that stalls for 5 s after 16 MiB of 64 MiB: the shim's and the agent's RSS
#    stay bounded while it stalls, and nothing is lost;
#  - EOF right after the last spliced byte: exact sizes around the 1 MiB frame (1 MiB,
#    1 MiB + 1, 3 MiB - 1) out of stdout and into stdin, each complete, then EOF and exit 0;
#  - an exit while a splice is in flight: processes that write 32 MiB and exit at once; right
#    after each Wait returns, a non-blocking read of the FIFO must complete all bytes.
. "$(dirname "$0")/lib.sh"
CLIENT=$B/tests/integration/stdio_client
need_bins "$CLIENT"
command -v sha256sum >/dev/null 2>&1 || skip "sha256sum is not installed"
BIG=$((${STDIO_BIG_MIB:-1024} * 1048576))

setup

# sum SEED SIZE: sha256 of the pattern stdio_client gen writes.
sum() { "$CLIENT" gen "$1" "$2" | sha256sum | cut -d' ' -f1; }

# out_sha ID SEED SIZE: a container writes the pattern to stdout; prints the reader's sha256.
out_sha() {
	make_bundle "$1" "exec $CLIENT gen $2 $3"
	mkfifo "$T/$1.out"
	call Create "{\"id\":\"$1\",\"bundle\":\"$T/$1\",\"stdout\":\"$T/$1.out\"}" | grep -q '^OK' ||
		{ echo "Create failed"; return; }
	sha256sum <"$T/$1.out" | cut -d' ' -f1 >"$T/$1.sum" &
	rd=$!
	call Start "{\"id\":\"$1\"}" | grep -q '^OK' || echo "Start failed"
	call Wait "{\"id\":\"$1\"}" | grep -q '"exit_status":0' || echo "Wait failed"
	wait_job "$rd" 120 || echo "the reader did not see EOF"
	call Delete "{\"id\":\"$1\"}" >/dev/null
	cat "$T/$1.sum"
}

# in_sha ID SEED SIZE: the pattern goes into a container's stdin; prints what it hashed.
in_sha() {
	make_bundle "$1" "exec sha256sum"
	mkfifo "$T/$1.in"
	call Create "{\"id\":\"$1\",\"bundle\":\"$T/$1\",\"stdin\":\"$T/$1.in\",\"stdout\":\"$T/$1.res\"}" |
		grep -q '^OK' || { echo "Create failed"; return; }
	call Start "{\"id\":\"$1\"}" | grep -q '^OK' || echo "Start failed"
	"$CLIENT" gen "$2" "$3" >"$T/$1.in"
	call Wait "{\"id\":\"$1\"}" | grep -q '"exit_status":0' || echo "Wait failed"
	call Delete "{\"id\":\"$1\"}" >/dev/null
	cut -d' ' -f1 "$T/$1.res"
}

# check WHAT GOT WANT
check() {
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: got '$2', want '$3'"; fi
}

BIG_SUM=$(sum 11 "$BIG")
STEP=$((64 * 1048576))
for mode in splice copy steps; do
	size=$BIG want=$BIG_SUM
	case $mode in
	copy)
		stop_shim
		stop_agent
		export VMSHIM_IO_COPY=1
		;;
	steps)
		# The agent's frame pipe at 16 KiB: every spliced frame crosses it in many steps.
		stop_shim
		stop_agent
		unset VMSHIM_IO_COPY
		export VMSHIM_TEST_FRAME_PIPE=16384
		size=$STEP want=$(sum 11 "$STEP")
		;;
	esac
	start_agent
	start_shim
	check "$mode: $((size / 1048576)) MiB out of stdout, sha256" "$(out_sha "big-out-$mode" 11 "$size")" "$want"
	# The frame pipe is stdout's alone; in steps no frame may fall back to copies.
	[ "$mode" = steps ] || check "$mode: $((size / 1048576)) MiB into stdin, sha256" "$(in_sha "big-in-$mode" 11 "$size")" "$want"
done
grep -q 'frame pipe fill' "$T/agent.log" && fail "steps: a frame was copied: $(grep 'frame pipe fill' "$T/agent.log" | head -1)"

stop_shim
stop_agent
unset VMSHIM_TEST_FRAME_PIPE
start_agent
start_shim

# A reader that stalls: 16 MiB, 5 s of nothing (the scenario, not a wait for a race), the rest.
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
STALL=$((64 * 1048576))
make_bundle stall "exec $CLIENT gen 5 $STALL"
mkfifo "$T/stall.out"
expect_call "Create stall" Create "{\"id\":\"stall\",\"bundle\":\"$T/stall\",\"stdout\":\"$T/stall.out\"}" '^OK'
shim0=$(rss "$SHIM_PID")
agent0=$(rss "$AGENT_PID")
(
	exec <"$T/stall.out"
	dd bs=1M count=16 iflag=fullblock of="$T/stall.1" 2>/dev/null
	: >"$T/stalled"
	sleep 5
	cat >"$T/stall.2"
) &
rd=$!
expect_call "Start stall" Start '{"id":"stall"}' '^OK'
i=0
while [ ! -e "$T/stalled" ] && [ $i -lt 600 ]; do
	sleep 0.05
	i=$((i + 1))
done
[ -e "$T/stalled" ] || fail "the stalling reader never got its first 16 MiB"
shim_max=0 agent_max=0
for _ in 1 2 3 4 5 6 7 8; do
	r=$(rss "$SHIM_PID")
	[ "$r" -gt "$shim_max" ] && shim_max=$r
	r=$(rss "$AGENT_PID")
	[ "$r" -gt "$agent_max" ] && agent_max=$r
	sleep 0.4
done
# Each side holds at most 1 MiB per stream in memory (spliced bytes stay in the kernel).
if [ $((shim_max - shim0)) -lt 8192 ] && [ $((agent_max - agent0)) -lt 8192 ]; then
	pass "stalled reader: RSS grew by $((shim_max - shim0)) kB (shim), $((agent_max - agent0)) kB (agent)"
else
	fail "stalled reader: RSS grew by $((shim_max - shim0)) kB (shim), $((agent_max - agent0)) kB (agent)"
fi
expect_call "Wait stall" Wait '{"id":"stall"}' '"exit_status":0'
wait_job "$rd" 60 || fail "the stalling reader did not see EOF"
check "stalled reader: every byte, in order" "$(cat "$T/stall.1" "$T/stall.2" | sha256sum | cut -d' ' -f1)" "$(sum 5 "$STALL")"
call Delete '{"id":"stall"}' >/dev/null

# EOF right after the last spliced byte, at sizes around one frame.
for size in 1048576 1048577 3145727; do
	check "stdout of $size bytes, then EOF" "$(out_sha "eo$size" 3 "$size")" "$(sum 3 "$size")"
	check "stdin of $size bytes, then EOF" "$(in_sha "ei$size" 3 "$size")" "$(sum 3 "$size")"
done

# Exits while the last frames are being spliced: Wait answers only once every byte is in the FIFO.
make_bundle ctr 'exec sleep 1000'
expect_call "Create ctr" Create "{\"id\":\"ctr\",\"bundle\":\"$T/ctr\"}" '^OK'
expect_call "Start ctr" Start '{"id":"ctr"}' '^OK'
mkdir "$T/fifos"
if out=$("$CLIENT" runs "$T/shim.sock" ctr 20 33554432 "$T/fifos" "$CLIENT" 2>&1); then
	pass "20 x 32 MiB: complete and byte-exact when Wait returned: $out"
else
	fail "20 x 32 MiB: $(printf '%s' "$out" | tail -8 | tr '\n' ';')"
fi
call Kill '{"id":"ctr","signal":9}' >/dev/null
call Wait '{"id":"ctr"}' >/dev/null
call Delete '{"id":"ctr"}' >/dev/null
finish
