#!/bin/sh
# bench-containerd.sh: vmshim next to containerd's own runc shim under a private, real
# containerd (`make bench-containerd`). Prints figures and ratios, asserts nothing.
#
# Rows, each for io.containerd.vmshim.v2 and io.containerd.runc.v2 in the same run:
#  - `ctr run --rm IMAGE-LESS-ROOTFS /bin/true`: median wall time of BENCH_RUNS runs (20),
#    the two runtimes alternating;
#  - one running container: the shim's RSS and PSS (vmshim: and with its local VM agent);
#  - BENCH_N (100) running containers in one group: the group's shim (and agent);
#  - BENCH_N groups of one running container each: the total PSS of every shim (and agent).
# PSS (proportional set size, /proc/PID/smaps_rollup) shares pages fairly between processes,
# so sums of PSS are the memory the shims really cost; containers' own processes are not
# counted. Ratios are vmshim / runc.
. "$(dirname "$0")/../integration/containerd_lib.sh"

RUNS=${BENCH_RUNS:-20}
N=${BENCH_N:-100}
ctd_setup

rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
pss() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
# sum FUNC PIDS...
sum() {
	f=$1
	shift
	t=0
	for p in "$@"; do t=$((t + $($f "$p"))); done
	echo $t
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf (b > 0 ? "%.2fx" : "-"), a / b }'; }
ms() { awk -v n="$1" 'BEGIN { printf "%.1f", n / 1e6 }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
agents() { pgrep -f "vmshim-agent --listen-uds /run/vmshim/$NS/" | tr '\n' ' '; }

run_cmd() { ctr_ run --rm --env PATH=/bin --runtime "$1" --rootfs "$T/rootfs" "$2" /bin/true </dev/null; }
start_d() {
	rt=$1
	c=$2
	shift 2
	ctr_ run -d --env PATH=/bin --runtime "$rt" "$@" --rootfs "$T/rootfs" "$c" sleep 100000 \
		>/dev/null 2>"$T/err" || die "run -d $c: $(cat "$T/err")"
}
rm_all() {
	for c in $(ctr_ task ls -q); do ctr_ task kill -s SIGKILL "$c" 2>/dev/null; done
	for c in $(ctr_ container ls -q); do
		i=0
		while [ "$(task_status "$c")" = RUNNING ] && [ $i -lt 200 ]; do
			i=$((i + 1))
			sleep 0.05
		done
		ctr_ task rm -f "$c" >/dev/null 2>&1
		ctr_ container rm "$c" 2>/dev/null
	done
}

echo "bench-containerd: containerd $(containerd --version | awk '{ print $3 }'), $(nproc) CPUs, runs $RUNS, N $N"

# 1. ctr run --rm /bin/true, alternating.
: >"$T/t-runc"
: >"$T/t-vmshim"
for i in $(seq 0 "$RUNS"); do
	for rt in io.containerd.runc.v2 io.containerd.vmshim.v2; do
		n=$(rt_name "$rt")
		t0=$(date +%s%N)
		run_cmd "$rt" "true-$n-$i" || die "$n: ctr run --rm /bin/true failed"
		t1=$(date +%s%N)
		[ "$i" = 0 ] || echo $((t1 - t0)) >>"$T/t-$n" # run 0 warms the caches
	done
done
tr=$(median <"$T/t-runc")
tv=$(median <"$T/t-vmshim")
printf '%-44s runc %8s ms   vmshim %8s ms   ratio %s\n' "ctr run --rm /bin/true (median)" \
	"$(ms "$tr")" "$(ms "$tv")" "$(ratio "$tv" "$tr")"

# 2. One running container.
start_d io.containerd.runc.v2 one-runc
start_d io.containerd.vmshim.v2 one-vmshim
wait_status one-runc RUNNING
wait_status one-vmshim RUNNING
rs=$(shim_pids runc one-runc)
vs=$(shim_pids vmshim one-vmshim)
va=$(agents)
printf '%-44s runc %8s kB   vmshim %8s kB   ratio %s\n' "1 container: shim RSS" \
	"$(rss "$rs")" "$(rss "$vs")" "$(ratio "$(rss "$vs")" "$(rss "$rs")")"
printf '%-44s runc %8s kB   vmshim %8s kB   ratio %s\n' "1 container: shim PSS" \
	"$(pss "$rs")" "$(pss "$vs")" "$(ratio "$(pss "$vs")" "$(pss "$rs")")"
vt=$(sum pss $vs $va)
printf '%-44s runc %8s kB   vmshim %8s kB   ratio %s\n' "1 container: PSS, vmshim with its agent" \
	"$(pss "$rs")" "$vt" "$(ratio "$vt" "$(pss "$rs")")"
rm_all

# 3. N running containers in one group.
for i in $(seq 1 "$N"); do
	start_d io.containerd.runc.v2 "g-runc-$i" --annotation io.containerd.runc.v2.group=g-runc
	start_d io.containerd.vmshim.v2 "g-vmshim-$i" --annotation io.vmshim.group=g-vmshim
done
rs=$(shim_pids runc "g-runc-1")
vs=$(shim_pids vmshim g-vmshim)
va=$(agents)
printf '%-44s runc %8s kB   vmshim %8s kB   ratio %s\n' "$N containers, 1 group: shim RSS" \
	"$(sum rss $rs)" "$(sum rss $vs)" "$(ratio "$(sum rss $vs)" "$(sum rss $rs)")"
printf '%-44s runc %8s kB   vmshim %8s kB   ratio %s\n' "$N containers, 1 group: shim PSS" \
	"$(sum pss $rs)" "$(sum pss $vs)" "$(ratio "$(sum pss $vs)" "$(sum pss $rs)")"
vt=$(sum pss $vs $va)
printf '%-44s runc %8s kB   vmshim %8s kB   ratio %s\n' "$N containers, 1 group: PSS with agent" \
	"$(sum pss $rs)" "$vt" "$(ratio "$vt" "$(sum pss $rs)")"
rm_all

# 4. N groups of one running container each.
for i in $(seq 1 "$N"); do
	start_d io.containerd.runc.v2 "s-runc-$i"
	start_d io.containerd.vmshim.v2 "s-vmshim-$i"
done
rs=$(shim_pids runc "s-runc-")
vs=$(shim_pids vmshim)
va=$(agents)
echo "$N groups: $(echo $rs | wc -w) runc shims, $(echo $vs | wc -w) vmshim shims, $(echo $va | wc -w) agents"
printf '%-44s runc %8s kB   vmshim %8s kB   ratio %s\n' "$N groups: total PSS (vmshim with agents)" \
	"$(sum pss $rs)" "$(sum pss $vs $va)" "$(ratio "$(sum pss $vs $va)" "$(sum pss $rs)")"
printf '%-44s runc %8s kB   vmshim %8s kB   ratio %s\n' "$N groups: total PSS of the shims alone" \
	"$(sum pss $rs)" "$(sum pss $vs)" "$(ratio "$(sum pss $vs)" "$(sum pss $rs)")"
rm_all
ctd_finish
