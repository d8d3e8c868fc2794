#!/bin/bash
# bench-stdio.sh: throughput of the stdio data plane (`make bench-stdio`). Prints figures,
# asserts nothing about speed (it fails only when bytes go missing or something breaks).
#
# Four paths of the same shape, each moving BENCH_MIB MiB (default 1024) per run:
#  - vmshim: stdout: container writer -> pipe -> vmshim-agent -> socket -> vmshim -> FIFO ->
#            reader; stdin: writer -> FIFO -> vmshim -> socket -> agent -> pipe -> container
#            reader. The shim runs as in production: seccomp on, default log level (info).
#  - socat:  writer | socat -b65536 -> Unix socket -> socat -b65536 | reader
#  - relay:  the same chain with tests/bench/relay.c (read/write 64 KiB): the limit for a
#            relay that copies through userspace
#  - pipe:   writer | reader (one kernel pipe, no relay: the ceiling)
# Writers (tests/bench/relay.c `write`): 1 MiB writes, 8 KiB writes, and 100-byte lines (one
# write per line). The reader reads 1 MiB at a time. For socat, relay and pipe the two
# directions are the same chain, so one figure serves both.
#
# Runs are interleaved (every path once per round, the order rotated each round) and BENCH_REPS
# rounds (default 3) are made; the tables show medians. MB/s are 10^6 bytes per second from the
# reader's first byte to its EOF. "CPU s/GiB" is utime+stime of the shim and of the agent
# (/proc/PID/stat) over the transfer, per GiB. Syscalls per MiB come from a separate short run
# (BENCH_STRACE_MIB, default 64; 0 skips it) with strace -c attached to every thread of both
# daemons. BENCH_PATHS and BENCH_WRITERS select rows (e.g. BENCH_PATHS="out in").
. "$(dirname "$0")/../integration/lib.sh"
RELAY=$B/tests/bench/relay
need_bins "$RELAY"
HAVE_SOCAT=1
command -v socat >/dev/null 2>&1 || {
	HAVE_SOCAT=0
	echo "note: socat is not installed: its column is skipped"
}
HAVE_STRACE=1
command -v strace >/dev/null 2>&1 || {
	HAVE_STRACE=0
	echo "note: strace is not installed: syscalls per MiB are skipped"
}

MIB=${BENCH_MIB:-1024}
REPS=${BENCH_REPS:-3}
STRACE_MIB=${BENCH_STRACE_MIB:-64}
HZ=$(getconf CLK_TCK)
WRITERS=${BENCH_WRITERS:-"1048576 8192 100"}
PATHS=${BENCH_PATHS:-"pipe socat relay out in"}

setup
start_agent
cat >"$T/config.json" <<JSON
{
  "vm": {"vsock": "uds:$T/vm.sock"},
  "seccomp": true,
  "allowed_uids": [$(id -u)]
}
JSON
start_shim
grep -q 'seccomp on' "$T/shim.log" || echo "note: the shim does not report seccomp on: $(grep -o 'seccomp [^)]*' "$T/shim.log")"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# check_res FILE BYTES WHAT: the reader got every byte; prints "bytes seconds".
check_res() {
	read -r got secs <"$1" || die "$3: no result"
	[ "$got" = "$2" ] || die "$3: the reader got $got of $2 bytes"
	echo "$got $secs"
}
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? b / s / 1e6 : 0) }'; }
wname() { case $1 in 1048576) echo 1MiB ;; 8192) echo 8KiB ;; *) echo "${1}B-lines" ;; esac; }

# run PATH BS BYTES TAG: one transfer; prints "MB/s shim_ticks agent_ticks". TAG makes the
# container ids unique (a container is deleted after its run).
run() {
	path=$1 bs=$2 size=$3 N=$2x$4
	rm -f "$T/r.res"
	case $path in
	pipe)
		"$RELAY" write "$size" "$bs" | "$RELAY" sink - >"$T/r.res"
		set -- $(check_res "$T/r.res" "$size" pipe)
		echo "$(mbps "$1" "$2") 0 0"
		;;
	socat | relay)
		rm -f "$T/c.sock"
		if [ "$path" = socat ]; then
			socat -b65536 -u UNIX-LISTEN:"$T/c.sock" STDOUT 2>>"$T/chain.log" |
				"$RELAY" sink - >"$T/r.res" &
		else
			"$RELAY" listen "$T/c.sock" 2>>"$T/chain.log" | "$RELAY" sink - >"$T/r.res" &
		fi
		sink=$!
		wait_path "$T/c.sock" || die "$path did not listen"
		if [ "$path" = socat ]; then
			"$RELAY" write "$size" "$bs" | socat -b65536 -u STDIN UNIX-CONNECT:"$T/c.sock",retry=250,interval=0.02
		else
			"$RELAY" write "$size" "$bs" | "$RELAY" connect "$T/c.sock"
		fi
		wait "$sink"
		set -- $(check_res "$T/r.res" "$size" "$path")
		echo "$(mbps "$1" "$2") 0 0"
		;;
	out)
		make_bundle "o$N" "exec $RELAY write $size $bs"
		mkfifo "$T/o$N.fifo"
		call Create "{\"id\":\"o$N\",\"bundle\":\"$T/o$N\",\"stdout\":\"$T/o$N.fifo\"}" |
			grep -q '^OK' || die "Create o$N failed"
		"$RELAY" sink "$T/o$N.fifo" >"$T/r.res" &
		sink=$!
		s0=$(ticks "$SHIM_PID")
		a0=$(ticks "$AGENT_PID")
		call Start "{\"id\":\"o$N\"}" | grep -q '^OK' || die "Start o$N failed"
		call Wait "{\"id\":\"o$N\"}" | grep -q '"exit_status":0' || die "Wait o$N failed"
		s1=$(ticks "$SHIM_PID")
		a1=$(ticks "$AGENT_PID")
		call Delete "{\"id\":\"o$N\"}" >/dev/null
		wait "$sink"
		rm -rf "$T/o$N" "$T/o$N.fifo"
		set -- $(check_res "$T/r.res" "$size" "vmshim stdout")
		echo "$(mbps "$1" "$2") $((s1 - s0)) $((a1 - a0))"
		;;
	in)
		make_bundle "i$N" "exec $RELAY sink -"
		mkfifo "$T/i$N.fifo"
		call Create "{\"id\":\"i$N\",\"bundle\":\"$T/i$N\",\"stdin\":\"$T/i$N.fifo\",\"stdout\":\"$T/r.res\"}" |
			grep -q '^OK' || die "Create i$N failed"
		call Start "{\"id\":\"i$N\"}" | grep -q '^OK' || die "Start i$N failed"
		s0=$(ticks "$SHIM_PID")
		a0=$(ticks "$AGENT_PID")
		"$RELAY" write "$size" "$bs" >"$T/i$N.fifo"
		call Wait "{\"id\":\"i$N\"}" | grep -q '"exit_status":0' || die "Wait i$N failed"
		s1=$(ticks "$SHIM_PID")
		a1=$(ticks "$AGENT_PID")
		call Delete "{\"id\":\"i$N\"}" >/dev/null
		rm -rf "$T/i$N" "$T/i$N.fifo"
		set -- $(check_res "$T/r.res" "$size" "vmshim stdin")
		echo "$(mbps "$1" "$2") $((s1 - s0)) $((a1 - a0))"
		;;
	esac
}

# rotate N WORDS...: the words, starting at the Nth (0-based, modulo).
rotate() {
	k=$1
	shift
	n=$#
	set -- "$@" "$@"
	shift $((k % n))
	while [ "$n" -gt 0 ]; do
		printf '%s ' "$1"
		shift
		n=$((n - 1))
	done
}

echo "bench-stdio: $MIB MiB per run, $REPS rounds, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')"
SIZE=$((MIB * 1048576))
: >"$T/results"
t_start=$(date +%s)
for rep in $(seq 1 "$REPS"); do
	for bs in $WRITERS; do
		for path in $(rotate "$rep" $PATHS); do
			[ "$path" = socat ] && [ "$HAVE_SOCAT" = 0 ] && continue
			echo "$path $bs $rep $(run "$path" "$bs" "$SIZE" "$rep")" >>"$T/results"
		done
	done
	echo "  round $rep done ($(($(date +%s) - t_start)) s, load $(cut -d' ' -f1 /proc/loadavg))"
done

# median PATH BS FIELD: the median over the rounds of field FIELD (4 MB/s, 5 shim, 6 agent).
median() {
	awk -v p="$1" -v b="$2" -v f="$3" '$1 == p && $2 == b { print $f }' "$T/results" | sort -n |
		awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2];
			else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
cpu() { awk -v t="$1" -v hz="$HZ" -v m="$MIB" 'BEGIN { printf "%.2f", t / hz * 1024 / m }'; }
all() { awk -v p="$1" -v b="$2" -v f="$3" '$1 == p && $2 == b { printf "%s%s", s, $f; s = "," }' "$T/results"; }

echo
echo "MB/s, median of $REPS (all runs in brackets); ratios are vmshim / the other path"
printf '  %-6s %-10s %7s %7s %7s %7s   %-9s %-9s %-9s  %s\n' dir writer vmshim socat relay pipe \
	"x socat" "x relay" "x pipe" "CPU s/GiB shim agent"
for dir in out in; do
	for bs in $WRITERS; do
		v=$(median "$dir" "$bs" 4)
		so=$(median socat "$bs" 4)
		re=$(median relay "$bs" 4)
		pi=$(median pipe "$bs" 4)
		printf '  %-6s %-10s %7s %7s %7s %7s   %-9s %-9s %-9s  %s %s\n' \
			"$([ "$dir" = out ] && echo stdout || echo stdin)" "$(wname "$bs")" "$v" "$so" "$re" "$pi" \
			"$(ratio "$v" "$so")" "$(ratio "$v" "$re")" "$(ratio "$v" "$pi")" \
			"$(cpu "$(median "$dir" "$bs" 5)")" "$(cpu "$(median "$dir" "$bs" 6)")"
	done
done
echo "  runs: $(for p in $PATHS; do for bs in $WRITERS; do printf '%s/%s [%s] ' "$p" "$(wname "$bs")" "$(all "$p" "$bs" 4)"; done; done)"

# Syscalls per MiB: strace -c on every thread of the shim and of the agent, one short run each.
if [ "$HAVE_STRACE" = 1 ] && [ "$STRACE_MIB" -gt 0 ]; then
	SSIZE=$((STRACE_MIB * 1048576))
	tids() { ls "/proc/$1/task" | sed 's/^/-p /'; }
	echo
	echo "syscalls per MiB (strace -c, one $STRACE_MIB MiB run each; the shim's and the agent's threads)"
	for dir in out in; do
		for bs in $WRITERS; do
			strace -c -q -o "$T/st.shim" $(tids "$SHIM_PID") 2>>"$T/strace.log" &
			sp=$!
			strace -c -q -o "$T/st.agent" $(tids "$AGENT_PID") 2>>"$T/strace.log" &
			ap=$!
			# strace attaches before it reports; wait until both show as tracers.
			i=0
			while [ $i -lt 100 ] && ! { grep -q "TracerPid:[[:space:]]*$sp" "/proc/$SHIM_PID/status" &&
				grep -q "TracerPid:[[:space:]]*$ap" "/proc/$AGENT_PID/status"; }; do
				sleep 0.05
				i=$((i + 1))
			done
			run "$dir" "$bs" "$SSIZE" s >/dev/null
			kill -INT "$sp" "$ap"
			wait "$sp" "$ap" 2>/dev/null
			sc=$(awk '$NF == "total" { print $4 }' "$T/st.shim")
			ac=$(awk '$NF == "total" { print $4 }' "$T/st.agent")
			top=$(awk 'NR > 2 && $NF != "total" && $1 ~ /^[0-9.]+$/ { print $4, $NF }' "$T/st.shim" |
				sort -rn | head -3 | awk -v m="$STRACE_MIB" '{ printf "%s %.0f, ", $2, $1 / m }')
			atop=$(awk 'NR > 2 && $NF != "total" && $1 ~ /^[0-9.]+$/ { print $4, $NF }' "$T/st.agent" |
				sort -rn | head -3 | awk -v m="$STRACE_MIB" '{ printf "%s %.0f, ", $2, $1 / m }')
			printf '  %-6s %-10s shim %7s  agent %7s   (shim: %s agent: %s)\n' \
				"$([ "$dir" = out ] && echo stdout || echo stdin)" "$(wname "$bs")" \
				"$(awk -v c="${sc:-0}" -v m="$STRACE_MIB" 'BEGIN { printf "%.0f", c / m }')" \
				"$(awk -v c="${ac:-0}" -v m="$STRACE_MIB" 'BEGIN { printf "%.0f", c / m }')" \
				"${top%, }" "${atop%, }"
		done
	done
fi
echo "  (total $(($(date +%s) - t_start)) s; VMSHIM_IO_COPY=${VMSHIM_IO_COPY:-0})"
finish
