#!/bin/bash
# bench-stdio.sh: throughput of the stdio data plane (`make bench-stdio`). Prints figures,
# asserts nothing about speed (it fails only when bytes go missing or something breaks).
#
# Measured in one run on the same machine, the same BENCH_MIB bytes (default 1024) each:
#  - pipe:    pump | sink                                  (the ceiling: one kernel pipe)
#  - socat:   pump > FIFO -> socat -> unix socket -> socat -> FIFO > sink
#             (the same shape as the shim's path, with a generic relay at both hops)
#  - stdout:  container `pump` -> pipe -> vmshim-agent -> socket -> vmshim -> FIFO > sink
#  - stdin:   pump > FIFO -> vmshim -> socket -> vmshim-agent -> pipe -> container `sink`
# Rates are MB/s (10^6 bytes) from the sink's first byte to its EOF; "CPU/GiB" is utime+stime
# from /proc/PID/stat of the shim (and the agent) over the transfer, per GiB moved.
. "$(dirname "$0")/../integration/lib.sh"
CLIENT=$B/tests/integration/stdio_client
need_bins "$CLIENT"
command -v socat >/dev/null 2>&1 || echo "note: socat is not installed: its row is skipped"

MIB=${BENCH_MIB:-1024}
SIZE=$((MIB * 1048576))
HZ=$(getconf CLK_TCK)

setup
start_agent
SECCOMP=${SECCOMP:-false} start_shim

# CPU seconds (utime+stime) of a pid, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# mbps BYTES SECONDS
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? b / s / 1e6 : 0) }'; }
# sink_check "BYTES SECONDS" WHAT: the byte count must be complete.
sink_check() {
	set -- $1 "$2"
	[ "$1" = "$SIZE" ] || die "$3: the sink got $1 of $SIZE bytes"
}

# 1. A direct pipe.
res=$("$CLIENT" pump $SIZE | "$CLIENT" sink -)
sink_check "$res" pipe
PIPE=$(mbps $res)

# 2. The socat relay chain.
SOCAT=0
if command -v socat >/dev/null 2>&1; then
	mkfifo "$T/s.in" "$T/s.out"
	socat -u UNIX-LISTEN:"$T/s.sock" OPEN:"$T/s.out" 2>>"$T/socat.log" &
	PIDS="$PIDS $!"
	wait_path "$T/s.sock" || die "socat did not listen"
	"$CLIENT" sink "$T/s.out" >"$T/s.res" &
	SINK=$!
	socat -u OPEN:"$T/s.in" UNIX-CONNECT:"$T/s.sock" 2>>"$T/socat.log" &
	PIDS="$PIDS $! $SINK"
	"$CLIENT" pump $SIZE >"$T/s.in"
	wait "$SINK"
	res=$(cat "$T/s.res")
	sink_check "$res" socat
	SOCAT=$(mbps $res)
fi

# 3. stdout through vmshim + agent.
make_bundle out "exec $CLIENT pump $SIZE"
mkfifo "$T/o.out"
call Create "{\"id\":\"out\",\"bundle\":\"$T/out\",\"stdout\":\"$T/o.out\"}" | grep -q '^OK' ||
	die "Create out failed"
"$CLIENT" sink "$T/o.out" >"$T/o.res" &
SINK=$!
PIDS="$PIDS $SINK"
s0=$(ticks "$SHIM_PID")
a0=$(ticks "$AGENT_PID")
call Start '{"id":"out"}' | grep -q '^OK' || die "Start out failed"
call Wait '{"id":"out"}' | grep -q '"exit_status":0' || die "Wait out failed"
s1=$(ticks "$SHIM_PID")
a1=$(ticks "$AGENT_PID")
call Delete '{"id":"out"}' >/dev/null
wait "$SINK"
res=$(cat "$T/o.res")
sink_check "$res" "vmshim stdout"
OUT=$(mbps $res)
OUT_SHIM_CPU=$(awk -v t=$((s1 - s0)) -v hz="$HZ" -v m="$MIB" 'BEGIN { printf "%.2f", t / hz * 1024 / m }')
OUT_AGENT_CPU=$(awk -v t=$((a1 - a0)) -v hz="$HZ" -v m="$MIB" 'BEGIN { printf "%.2f", t / hz * 1024 / m }')

# 4. stdin through vmshim + agent: the container's sink reports to a regular file.
make_bundle in "exec $CLIENT sink -"
mkfifo "$T/i.in"
call Create "{\"id\":\"in\",\"bundle\":\"$T/in\",\"stdin\":\"$T/i.in\",\"stdout\":\"$T/i.res\"}" |
	grep -q '^OK' || die "Create in failed"
call Start '{"id":"in"}' | grep -q '^OK' || die "Start in failed"
s0=$(ticks "$SHIM_PID")
a0=$(ticks "$AGENT_PID")
"$CLIENT" pump $SIZE >"$T/i.in"
call Wait '{"id":"in"}' | grep -q '"exit_status":0' || die "Wait in failed"
s1=$(ticks "$SHIM_PID")
a1=$(ticks "$AGENT_PID")
call Delete '{"id":"in"}' >/dev/null
res=$(cat "$T/i.res")
sink_check "$res" "vmshim stdin"
IN=$(mbps $res)
IN_SHIM_CPU=$(awk -v t=$((s1 - s0)) -v hz="$HZ" -v m="$MIB" 'BEGIN { printf "%.2f", t / hz * 1024 / m }')
IN_AGENT_CPU=$(awk -v t=$((a1 - a0)) -v hz="$HZ" -v m="$MIB" 'BEGIN { printf "%.2f", t / hz * 1024 / m }')

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo "bench-stdio: $MIB MiB per row, $(nproc) CPUs, $(date -u +%Y-%m-%d)"
printf '  %-28s %6s MB/s\n' "direct pipe" "$PIPE"
printf '  %-28s %6s MB/s\n' "socat chain (FIFO-sock-FIFO)" "$SOCAT"
printf '  %-28s %6s MB/s  vmshim/socat %s  vmshim/pipe %s  shim CPU %s s/GiB  agent CPU %s s/GiB\n' \
	"vmshim stdout" "$OUT" "$(ratio "$OUT" "$SOCAT")" "$(ratio "$OUT" "$PIPE")" "$OUT_SHIM_CPU" "$OUT_AGENT_CPU"
printf '  %-28s %6s MB/s  vmshim/socat %s  vmshim/pipe %s  shim CPU %s s/GiB  agent CPU %s s/GiB\n' \
	"vmshim stdin" "$IN" "$(ratio "$IN" "$SOCAT")" "$(ratio "$IN" "$PIPE")" "$IN_SHIM_CPU" "$IN_AGENT_CPU"
finish
