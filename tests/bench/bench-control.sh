#!/bin/bash
# bench-control.sh: the figures of `make bench-control` (docs/PERFORMANCE.md), one run on this
# machine, printed next to their targets. Nothing here asserts a speed. The shim runs as in
# production (seccomp on, log level info) against the embedded local VM (vmshim-agent).
set -u
B=${top_builddir:-$PWD}
SHIM=$B/shim/vmshim
AGENT=$B/contrib/agent/vmshim-agent
BC=$B/tests/bench/bench-control
N=${BENCH_N:-20000}
SECS=${BENCH_SECS:-3}
T=$(mktemp -d /tmp/vmshim-bench.XXXXXX)
PIDS=
cleanup() {
	for p in $PIDS $(pgrep -P "${AGENT_PID:-1}" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

ulimit -n 4096 2>/dev/null
"$AGENT" --listen-uds "$T/vm.sock" >"$T/agent.log" 2>&1 &
AGENT_PID=$!
PIDS="$PIDS $AGENT_PID"
for i in $(seq 100); do [ -S "$T/vm.sock" ] && break; sleep 0.05; done
cat >"$T/config.json" <<JSON
{"vm": {"vsock": "uds:$T/vm.sock"}, "allowed_uids": [$(id -u)], "log_level": "info"}
JSON
"$SHIM" serve -socket "$T/shim.sock" -config "$T/config.json" -log "$T/shim.log" &
SHIM_PID=$!
PIDS="$PIDS $SHIM_PID"
for i in $(seq 100); do grep -q 'connected to agent' "$T/shim.log" 2>/dev/null && break; sleep 0.05; done
sleep 0.3
idle=$(rss_kb "$SHIM_PID")

mkdir -p "$T/b/rootfs"
cat >"$T/b/config.json" <<JSON
{"ociVersion": "1.0.2", "process": {"args": ["sleep", "100000"], "cwd": "/", "env": ["PATH=/usr/bin:/bin"]},
 "root": {"path": "rootfs"}}
JSON
RAW=$B/tests/integration/shim_rawclient
call() { "$BC" lat "unix:$T/shim.sock" "$1" "$2" 1 >/dev/null; }
call Create "{\"id\":\"c0\",\"bundle\":\"$T/b\"}"
call Start '{"id":"c0"}'

echo "vmshim bench-control: $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r)"
echo "shim pid $SHIM_PID, agent pid $AGENT_PID, $N calls per latency run, ${SECS}s per throughput run"
echo
s=$("$BC" lat "unix:$T/shim.sock" State '{"id":"c0"}' "$N")
a=$("$BC" lat "uds:$T/vm.sock:1024" Ping '{}' "$N")
sp50=$(echo "$s" | sed 's/.*p50_us=\([0-9.]*\).*/\1/')
ap50=$(echo "$a" | sed 's/.*p50_us=\([0-9.]*\).*/\1/')
echo "State through vmshim:            $s"
echo "Ping to vmshim-agent (hybrid):   $a   (closest analogue: the agent has no State)"
echo "p50 ratio shim/agent:            $(awk -v s="$sp50" -v a="$ap50" 'BEGIN {printf "%.2f", s / a}')   (target <= 1.2)"
echo
for c in 1 16 64; do
	echo "State, $c client(s):  $("$BC" tput "unix:$T/shim.sock" c0 "$c" "$SECS")   $([ "$c" = 64 ] && echo '(target >= 50000 calls/s on 2 cores)')"
done
echo
echo "RSS idle (one container):         ${idle} kB   (target <= 2048 kB)"
for i in $(seq 1 100); do
	call Create "{\"id\":\"s$i\",\"bundle\":\"$T/b\"}"
	call Start "{\"id\":\"s$i\"}"
done
sleep 0.3
echo "RSS with 100 running containers:  $(rss_kb "$SHIM_PID") kB"
mkfifo "$T/hold"
"$BC" conns "unix:$T/shim.sock" 1000 <"$T/hold" >"$T/conns.out" 2>&1 &
CONNS=$!
exec 7>"$T/hold"
for i in $(seq 200); do grep -q ready "$T/conns.out" && break; sleep 0.05; done
echo "RSS with 1000 open connections:   $(rss_kb "$SHIM_PID") kB   ($(cat "$T/conns.out"))"
exec 7>&-
wait "$CONNS"
kill -TERM "$SHIM_PID"
wait "$SHIM_PID" 2>/dev/null

# Start to ready: `vmshim start` returns once its socket accepts (docs/CONTRACT.md 2).
runs=${BENCH_STARTS:-21}
for i in $(seq "$runs"); do
	# bash's own clock (microseconds): timing with date(1) would add two process starts.
	t0=${EPOCHREALTIME/./}
	"$SHIM" -id "g$i" -socket "$T/s$i.sock" -config "$T/config.json" -log "$T/s$i.log" start >/dev/null
	t1=${EPOCHREALTIME/./}
	echo $((t1 - t0))
	kill -TERM "$(cat "$T/s$i.pid")" 2>/dev/null
done >"$T/starts"
echo
echo "vmshim start to a socket that answers: median $(median <"$T/starts") us of $runs runs (min $(sort -n "$T/starts" | head -1), max $(sort -n "$T/starts" | tail -1))   (target <= 5000 us)"
