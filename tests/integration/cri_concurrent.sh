# cri_concurrent.sh: 10 pods created and removed at once through containerd's CRI plugin, on
# the runtime handler $CRI_HANDLER (sourced by cri_concurrent_runc.sh, the control, and
# cri_concurrent_vmshim.sh).
#
# The pods use the node's network namespace, so no CNI plugin is needed (cri_lib.sh). Each pod:
# RunPodSandbox, CreateContainer, StartContainer, ExecSync (its output checked), StopPodSandbox,
# RemovePodSandbox, all while the nine others do the same. Every pod must succeed, and then the
# processes of this containerd, containerd's open descriptors and the mounts under the test's
# directory must be back to their baseline, taken after a first round of N concurrent pods went
# through the same steps: the first pods open what containerd keeps for good (the image's
# snapshots, its databases, and a few descriptors it keeps after its first burst of concurrent
# pods: a baseline after one pod was 15 fds and a second round ended at 18 on the runc control,
# with no shim of ours involved). A leak per pod still shows as growth over the second round.

H=${CRI_HANDLER:?CRI_HANDLER must be runc or vmshim}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=cri_lib.sh
. "$(dirname "$0")/cri_lib.sh"
N=${CRI_PODS:-10}

cri_need
case $H in runc | vmshim) ;; *) die "unknown handler $H" ;; esac
cri_setup

# pod_cycle NAME: one pod through its whole life; prints one line, "ok NAME" or why not.
pod_cycle() {
	s=$(run_pod "$1" "$H" 2>"$T/$1.err") && [ -n "$s" ] || {
		echo "$1: RunPodSandbox: $(cat "$T/$1.err")"
		return 1
	}
	c=$(create_ctr "$1" "$s" main 'exec sleep 1000' 2>"$T/$1.err") && [ -n "$c" ] || {
		echo "$1: CreateContainer: $(cat "$T/$1.err")"
		return 1
	}
	cri StartContainer "{\"container_id\":\"$c\"}" >/dev/null 2>"$T/$1.err" || {
		echo "$1: StartContainer: $(cat "$T/$1.err")"
		return 1
	}
	out=$(cri ExecSync "{\"container_id\":\"$c\",\"cmd\":[\"echo\",\"hi-$1\"],\"timeout\":60}" 2>"$T/$1.err")
	[ "$(echo "$out" | jget stdout)" = "hi-$1" ] || {
		echo "$1: ExecSync: $out $(cat "$T/$1.err")"
		return 1
	}
	cri StopPodSandbox "{\"pod_sandbox_id\":\"$s\"}" >/dev/null 2>"$T/$1.err" || {
		echo "$1: StopPodSandbox: $(cat "$T/$1.err")"
		return 1
	}
	cri RemovePodSandbox "{\"pod_sandbox_id\":\"$s\"}" >/dev/null 2>"$T/$1.err" || {
		echo "$1: RemovePodSandbox: $(cat "$T/$1.err")"
		return 1
	}
	echo "ok $1"
}

# counts: "processes fds mounts"
counts() {
	echo "$(cri_procs | wc -l) $(open_fds "$CTRD_PID") $(cri_mounts | wc -l)"
}

# Settle (bounded): shims exit and containerd closes their connections a moment after
# RemovePodSandbox answers; wait until the counts are at most the baseline. Under load (other
# containerds on the machine) those closes were seen to take more than 20 s: 60 s at most.
settle() {
	i=0
	while [ $i -lt 600 ]; do
		set -- $(counts)
		[ "$1" -le "$b_procs" ] && [ "$2" -le "$b_fds" ] && [ "$3" -le "$b_mounts" ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# round PREFIX: N pods at once; prints how many failed.
round() {
	jobs=
	for n in $(seq 1 "$N"); do
		pod_cycle "$1$n" >"$T/$1$n.result" 2>&1 &
		jobs="$jobs $!"
	done
	failed=0
	for j in $jobs; do
		wait "$j" || failed=$((failed + 1))
	done
	echo "$failed"
}

r=$(round warm)
[ "$r" = 0 ] || die "[$H] $r pods of the warm-up round failed: $(grep -hv '^ok ' "$T"/warm*.result | head -5)"
# The baseline: nothing of the warm-up round is running any more.
b_procs=0
b_fds=$(open_fds "$CTRD_PID")
b_mounts=0
settle || true
set -- $(counts)
b_procs=$1 b_mounts=$3
# containerd closes the warm-up round's descriptors over a moment: the baseline is the lowest
# count seen over 3 s, not one sample that may still hold a few of them.
b_fds=$2
i=0
while [ $i -lt 30 ]; do
	n=$(open_fds "$CTRD_PID")
	[ "$n" -lt "$b_fds" ] && b_fds=$n
	sleep 0.1
	i=$((i + 1))
done
echo "[$H] baseline: $b_procs processes, containerd $b_fds fds, $b_mounts mounts"

failed=$(round pod)
okc=$(cat "$T"/pod*.result | grep -c '^ok ')
if [ "$failed" -eq 0 ] && [ "$okc" -eq "$N" ]; then
	pass "[$H] $N pods created, run, exec'd and removed concurrently"
else
	fail "[$H] $failed of $N pods failed:"
	grep -hv '^ok ' "$T"/pod*.result | head -20
fi
settle
set -- $(counts)
if [ "$1" -le "$b_procs" ] && [ "$2" -le "$b_fds" ] && [ "$3" -le "$b_mounts" ]; then
	pass "[$H] afterwards: $1 processes, containerd $2 fds, $3 mounts (the baseline)"
else
	fail "[$H] afterwards: $1 processes (baseline $b_procs), containerd $2 fds ($b_fds), $3 mounts ($b_mounts)"
	cri_ps
	cri_mounts
	# What containerd still holds, so a leak can be told from a slow close next time.
	ls -l "/proc/$CTRD_PID/fd" 2>/dev/null | sed 's/^/    /'
fi
cg=$(cri_cgroups)
[ -z "$cg" ] && pass "[$H] no container cgroup is left" || fail "[$H] cgroups left: $cg"

if [ "$FAILS" -ne 0 ]; then
	echo "FAIL: $FAILS check(s) failed (logs in $T; KEEP=1 keeps them)"
	[ "${KEEP:-0}" = 1 ] || grep -E 'level=(error|warning)' "$T/containerd.log" | tail -20
	exit 1
fi
echo PASS
exit 0
