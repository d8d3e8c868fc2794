# hotplug_lib.sh: QEMU helpers of the hot-add integration tests (sourced after lib.sh).
#
# start_qemu runs a real qemu-system-x86_64 (q35, paused before boot, no guest OS, no disks)
# with N pcie-root-ports rp0..rpN-1 and two QMP monitors: $T/qmp.sock is the shim's
# (vm.qmp), $T/guest.sock stands in for the guest and for the test's own queries. With no
# guest OS an unplug completes only on system_reset, which the tests issue on the second
# monitor to play the guest's acknowledgement. No fake QEMU: without it the test exits 77.

QMPCMD=$B/tests/integration/qmp_cmd
QPROXY=$B/tests/integration/qmp_proxy
QEMU_BIN=${QEMU_BIN:-qemu-system-x86_64}
QEMU_PID=

need_qemu() {
	command -v "$QEMU_BIN" >/dev/null 2>&1 ||
		skip "$QEMU_BIN is not installed (apt-get install qemu-system-x86)"
	need_bins "$QMPCMD" "$QPROXY"
}

# start_qemu NPORTS: start QEMU and wait (bounded) until both monitors answer.
start_qemu() {
	qargs=""
	for i in $(seq 0 $(($1 - 1))); do
		qargs="$qargs -device pcie-root-port,id=rp$i,chassis=$((i + 1))"
	done
	rm -f "$T/qmp.sock" "$T/guest.sock"
	# shellcheck disable=SC2086
	"$QEMU_BIN" -machine q35 -nodefaults -S -display none -accel kvm -accel tcg $qargs \
		-qmp "unix:$T/qmp.sock,server=on,wait=off" \
		-qmp "unix:$T/guest.sock,server=on,wait=off" >>"$T/qemu.log" 2>&1 &
	QEMU_PID=$!
	PIDS="$PIDS $QEMU_PID"
	i=0
	while [ $i -lt 200 ]; do
		"$QMPCMD" "$T/guest.sock" query-status >/dev/null 2>&1 && return 0
		kill -0 "$QEMU_PID" 2>/dev/null || die "QEMU exited (see $T/qemu.log)"
		sleep 0.05
		i=$((i + 1))
	done
	die "QEMU did not open its monitors (see $T/qemu.log)"
}

stop_qemu() {
	[ -n "$QEMU_PID" ] || return 0
	kill -9 "$QEMU_PID" 2>/dev/null
	wait "$QEMU_PID" 2>/dev/null
	QEMU_PID=
}

# guest_qmp COMMAND [ARGS_JSON]: one command on the second monitor.
guest_qmp() {
	"$QMPCMD" "$T/guest.sock" "$@"
}

# What the shim left in the VM: "NODES DEVICES" (vmshim-* block nodes, vmshim-*-dev devices).
vm_leftovers() {
	n=$(guest_qmp query-named-block-nodes | grep -o '"node-name":"vmshim-[^"]*"' | sort -u | wc -l)
	d=$(guest_qmp qom-list '{"path":"/machine/peripheral"}' |
		grep -o '"name":"vmshim-[0-9]*-dev[0-9]*"' | wc -l)
	echo "$n $d"
}

# start_agent_args LOG [ARGS...]: the local VM with extra switches, logging to LOG.
start_agent_args() {
	log=$1
	shift
	rm -f "$T/vm.sock"
	"$AGENT" --listen-uds "$T/vm.sock" "$@" >>"$log" 2>&1 &
	AGENT_PID=$!
	PIDS="$PIDS $AGENT_PID"
	AGENT_PIDS="$AGENT_PIDS $AGENT_PID"
	wait_path "$T/vm.sock" || die "the agent did not listen (see $log)"
}

# write_hp_config QMP_PATH NPORTS UNPLUG_MS CONFIDENTIAL WORKERS
write_hp_config() {
	ports=""
	for i in $(seq 0 $(($2 - 1))); do
		ports="$ports${ports:+, }\"rp$i\""
	done
	cat >"$T/config.json" <<JSON
{
  "workers": $5,
  "vm": {"vsock": "uds:$T/vm.sock", "connect_timeout_ms": 2000, "qmp": "$1",
         "hotplug_ports": [$ports], "unplug_timeout_ms": $3, "confidential": $4},
  "seccomp": ${SECCOMP:-true},
  "allowed_uids": [$(id -u)],
  "log_level": "debug"
}
JSON
}

# make_image NAME: a sparse 16 MiB raw image.
make_image() {
	truncate -s 16M "$T/$1"
}

# block_rootfs IMAGE [OPTIONS_JSON]: a rootfs member for Create.
block_rootfs() {
	printf '"rootfs":[{"type":"block","source":"%s","options":%s}]' "$1" "${2:-[]}"
}

# call_bg OUT METHOD JSON: a call in the background, its answer in OUT, its pid in BG_PID.
call_bg() {
	"$RAW" call "$T/shim.sock" "$2" "$3" >"$1" 2>&1 &
	BG_PID=$!
	PIDS="$PIDS $BG_PID"
}

# delete_with_ack ID: Delete ID while resetting the VM (the guest's ack) until it answers.
delete_with_ack() {
	call_bg "$T/delete.$1" Delete "{\"id\":\"$1\"}"
	dpid=$BG_PID
	i=0
	while [ $i -lt 100 ] && kill -0 "$dpid" 2>/dev/null; do
		guest_qmp system_reset >/dev/null 2>&1
		sleep 0.1
		i=$((i + 1))
	done
	wait "$dpid" 2>/dev/null
	cat "$T/delete.$1"
}

# max_bringups LOG: the most container bring-ups the shim had in progress at once (its
# "bring-up begin" / "bring-up end" lines, in the order they were written).
max_bringups() {
	awk '/"bring-up begin"/ { n++; if (n > m) m = n } /"bring-up end after/ { n-- }
		END { print m + 0 }' "$1"
}

# A normal (non-block) container still runs end to end: Create, Start, Wait, output.
check_normal_container() {
	make_bundle "n$1" "echo normal-$1"
	: >"$T/n$1.out"
	expect_call "$2: State still answers" State '{"id":"nope"}' '^NOT_FOUND'
	expect_call "$2: a normal container is created" Create \
		"{\"id\":\"n$1\",\"bundle\":\"$T/n$1\",\"stdout\":\"$T/n$1.out\"}" '^OK'
	expect_call "$2: ... started" Start "{\"id\":\"n$1\"}" '^OK'
	expect_call "$2: ... exits 0" Wait "{\"id\":\"n$1\"}" '"exit_status":0'
	grep -qx "normal-$1" "$T/n$1.out" && pass "$2: ... its output arrived" ||
		fail "$2: normal container output: '$(cat "$T/n$1.out")'"
	expect_call "$2: ... deleted" Delete "{\"id\":\"n$1\"}" '^OK'
}
