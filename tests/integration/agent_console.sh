#!/bin/sh
# agent_console.sh: the error paths of the oci runner's --console-socket (terminal mode), driven
# through a fake runtime (tests/integration/fake_runc: real runc cannot misbehave on demand).
# Each row is one CreateContainer (terminal) whose runtime misbehaves one way:
#   fail       runtime fails before connecting           INTERNAL, with the runtime's log error
#   failafter  runtime sends the pty, then fails          INTERNAL; the received master closed
#   close      connects, closes, sends nothing           INTERNAL "closed without sending"
#   nofd       a message without SCM_RIGHTS              INTERNAL "0 descriptor(s)"
#   twofds     two descriptors in one message            INTERNAL "2 descriptor(s)"
#   notty      a descriptor that is not a terminal       INTERNAL "not a terminal"
#   hold       exits 0 with the connection held open     INTERNAL "no terminal descriptor"
#   hang       never connects, never exits               DEADLINE_EXCEEDED within the deadline
#   hangconn   connects, never sends, never exits        DEADLINE_EXCEEDED within the deadline
# Runtime commands that hang otherwise, under the command deadline (shortened, $RT_MS):
#   chang      create (no terminal) makes the container, never exits   DEADLINE_EXCEEDED, undone
#   thang      create sends the pty, never exits                        DEADLINE_EXCEEDED, undone
#   shang      start never exits                 StartProcess DEADLINE_EXCEEDED; then deleted
#   dhang      delete removes the state, never exits    DeleteProcess OK (the container goes)
# each answered within the deadline plus slack (not before it), the runtime process killed;
# and after each: no runtime state left (`delete --force` ran, --root entry gone), no state
# directory, no process left under the agent, the agent's descriptor count back to its
# baseline, and a well-behaved terminal container still created, started and deleted.
# Also: DeleteProcess while Create waits for the console answers FAILED_PRECONDITION at once
# (and another container is served meanwhile); a container that exits right after sending its
# pty is reaped and deleted; an exec whose runtime sends no descriptor fails INTERNAL and its
# process is killed.
. "$(dirname "$0")/agent_lib.sh"

FAKE="$top_builddir/tests/integration/fake_runc"
[ -x "$FAKE" ] || { echo "SKIP: $FAKE is not built (make check builds it)"; exit 77; }
export FAKE_RUNC_DIR="$TMP/fake"
mkdir -p "$FAKE_RUNC_DIR"
STATE="$TMP/state"
ROOT="$STATE/runc"
# The console deadline, shortened (test knob): the hang rows wait for it.
DEADLINE_MS=3000
export VMSHIM_TEST_CONSOLE_TIMEOUT_MS=$DEADLINE_MS
# The runtime command deadline, shortened, but later than the console's (the hang rows keep
# their console message).
RT_MS=4000
export VMSHIM_TEST_RUNTIME_TIMEOUT_MS=$RT_MS
FAILED=0

fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
call() { "$FAKE" call "$SOCK" "$@"; }
spec='{"process":{"args":["sleep","60"],"cwd":"/"},"root":{"path":"/"}}'
create() { call CreateContainer "{\"id\":\"$1\",\"terminal\":true,\"spec\":$spec}"; }
fds() { ls "/proc/$AGENT_PID/fd" | wc -l; }
ptys() { ls -l "/proc/$AGENT_PID/fd" | grep -c ptmx || true; }
children() { pgrep -P "$AGENT_PID" | tr '\n' ' '; }

# Bounded wait until the agent has no child left (the fake's processes are reaped async).
wait_no_children() {
	i=0
	while [ -n "$(children)" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	[ -z "$(children)" ]
}

# expect WHAT OUT PATTERN: OUT must match the grep -E pattern.
expect() {
	if printf '%s\n' "$2" | grep -Eq -- "$3"; then
		echo "ok   $1: $2"
	else
		fail "$1: got '$2', want /$3/"
	fi
}

# What a failed create must leave behind: nothing.
check_clean() {
	[ -e "$ROOT/$1" ] && fail "$1: runtime state $ROOT/$1 left (no delete --force)"
	[ -e "$STATE/$1" ] && fail "$1: state directory $STATE/$1 left"
	expect "$1: id forgotten" "$(call ProcessState "{\"id\":\"$1\"}")" '^NOT_FOUND'
	wait_no_children || fail "$1: processes left under the agent: $(children)"
	# The last call's connection closes asynchronously: wait (bounded) for the baseline.
	i=0
	while [ "$(fds)" != "$BASE_FDS" ] && [ $i -lt 40 ]; do sleep 0.05; i=$((i + 1)); done
	n=$(fds)
	[ "$n" = "$BASE_FDS" ] || { fail "$1: agent fds $n, baseline $BASE_FDS"; ls -l "/proc/$AGENT_PID/fd"; }
	[ "$(ptys)" = 0 ] || fail "$1: the agent holds a pty master"
	[ -z "$(find "$STATE" -name 'console-*.sock')" ] || fail "$1: console socket left"
}

# A well-behaved terminal container, whole lifecycle: the agent still serves.
check_serves() {
	echo ok >"$FAKE_RUNC_DIR/$1.mode"
	expect "$1: create" "$(create "$1")" '^OK \{"pid":[0-9]+\}'
	expect "$1: start" "$(call StartProcess "{\"id\":\"$1\"}")" '^OK'
	kill_wait "$1"
	expect "$1: delete" "$(call DeleteProcess "{\"id\":\"$1\"}")" '^OK .*"exit_status":137'
}

# SIGKILL a container's init and wait (bounded) until the agent has seen it stop.
kill_wait() {
	expect "$1: kill" "$(call SignalProcess "{\"id\":\"$1\",\"signal\":9}")" '^OK'
	wait_stopped "$1"
}

wait_stopped() {
	i=0
	while ! call ProcessState "{\"id\":\"$1\"}" | grep -q '"stopped"' && [ $i -lt 100 ]; do
		sleep 0.05; i=$((i + 1))
	done
}

agent_start --runtime "$FAKE" --state-dir "$STATE"
check_serves warmup
wait_no_children || true
# The baseline: the count once it stopped moving (the warmup's connections closed).
BASE_FDS=$(fds)
i=0
while [ $i -lt 40 ]; do
	sleep 0.05
	n=$(fds)
	[ "$n" = "$BASE_FDS" ] && break
	BASE_FDS=$n i=$((i + 1))
done
echo "     agent $AGENT_PID: $BASE_FDS descriptors at baseline"

row() {
	id=$1 pattern=$2
	echo "$id" >"$FAKE_RUNC_DIR/$id.mode"
	expect "$id: create" "$(create "$id")" "$pattern"
	check_clean "$id"
}
row fail '^INTERNAL .*create: exit status 1: fake: create failed before the console socket'
row failafter '^INTERNAL .*create: exit status 1: fake: create failed after sending the terminal'
row close '^INTERNAL .*closed without sending the terminal'
row nofd '^INTERNAL .*a message with 0 descriptor\(s\), expected exactly 1'
row twofds '^INTERNAL .*a message with 2 descriptor\(s\), expected exactly 1'
row notty '^INTERNAL .*not a terminal'
row hold '^INTERNAL .*no terminal descriptor arrived on the console socket before it exited'
[ -s "$FAKE_RUNC_DIR/close.deleted" ] || fail "close: the runtime was never asked to delete"
check_serves after-rows

# hang and hangconn together, with a Delete and another container served while they wait.
echo hang >"$FAKE_RUNC_DIR/hang.mode"
echo hangconn >"$FAKE_RUNC_DIR/hangconn.mode"
t0=$(date +%s%N)
create hang >"$TMP/hang.out" &
p1=$!
create hangconn >"$TMP/hangconn.out" &
p2=$!
i=0
while { [ ! -e "$ROOT/hang" ] || [ ! -e "$ROOT/hangconn" ]; } && [ $i -lt 100 ]; do
	sleep 0.05; i=$((i + 1))
done
expect "hang: DeleteProcess while waiting for the console" \
	"$(call DeleteProcess '{"id":"hang"}')" '^FAILED_PRECONDITION .*being created'
check_serves during-hang
wait $p1 $p2
ms=$((($(date +%s%N) - t0) / 1000000))
expect hang "$(cat "$TMP/hang.out")" \
	"^DEADLINE_EXCEEDED .*create: no terminal descriptor on the console socket within $DEADLINE_MS ms"
expect hangconn "$(cat "$TMP/hangconn.out")" \
	"^DEADLINE_EXCEEDED .*create: no terminal descriptor on the console socket within $DEADLINE_MS ms"
[ $ms -lt $((DEADLINE_MS + 5000)) ] || fail "hang: answered after $ms ms (deadline $DEADLINE_MS)"
echo "     hang rows answered after $ms ms"
check_clean hang
check_clean hangconn

# Hanging runtime commands, all four at once: each is answered by the command deadline.
# timed OUT CMD...: run CMD to OUT, its duration in ms to OUT.ms.
timed() {
	out=$1; shift
	t=$(date +%s%N)
	"$@" >"$out"
	echo $((($(date +%s%N) - t) / 1000000)) >"$out.ms"
}
for id in chang thang shang dhang; do rm -f "$FAKE_RUNC_DIR/$id.mode"; done
echo create-hang >"$FAKE_RUNC_DIR/chang.mode"
echo create-hang >"$FAKE_RUNC_DIR/thang.mode"
echo start-hang >"$FAKE_RUNC_DIR/shang.mode"
echo delete-hang >"$FAKE_RUNC_DIR/dhang.mode"
expect "shang: create" "$(create shang)" '^OK'
expect "dhang: create" "$(create dhang)" '^OK'
expect "dhang: start" "$(call StartProcess '{"id":"dhang"}')" '^OK'
kill_wait dhang
timed "$TMP/chang.out" call CreateContainer "{\"id\":\"chang\",\"terminal\":false,\"spec\":$spec}" &
j1=$!
timed "$TMP/thang.out" create thang &
j2=$!
timed "$TMP/shang.out" call StartProcess '{"id":"shang"}' &
j3=$!
timed "$TMP/dhang.out" call DeleteProcess '{"id":"dhang"}' &
j4=$!
wait $j1 $j2 $j3 $j4
for id in chang thang; do
	expect "$id: create" "$(cat "$TMP/$id.out")" \
		"^DEADLINE_EXCEEDED .*create: no exit within $RT_MS ms \(killed\)"
done
expect "shang: start" "$(cat "$TMP/shang.out")" \
	"^DEADLINE_EXCEEDED .*start: no exit within $RT_MS ms \(killed\)"
expect "dhang: delete" "$(cat "$TMP/dhang.out")" '^OK'
grep "delete: no exit within $RT_MS ms (killed)" "$LOG" | grep -q '"id":"dhang"' ||
	fail "dhang: the agent did not log the delete's deadline"
for id in chang thang shang dhang; do
	ms=$(cat "$TMP/$id.out.ms")
	[ "$ms" -ge $RT_MS ] && [ "$ms" -lt $((RT_MS + 3000)) ] ||
		fail "$id: answered after $ms ms (deadline $RT_MS)"
	echo "     $id answered after $ms ms"
done
# The hung runtime commands themselves are gone (the init of shang is still there).
[ -z "$(pgrep -P "$AGENT_PID" -f ' (start|delete) [sd]hang$' || true)" ] ||
	fail "a hung runtime command is left under the agent"
n=$(grep -c "VMSHIM_TEST_RUNTIME_TIMEOUT_MS: runtime command deadline $RT_MS ms (test knob)" "$LOG" || true)
[ "$n" = 1 ] || fail "the runtime deadline knob was logged $n times, want once"
kill_wait shang
expect "shang: delete" "$(call DeleteProcess '{"id":"shang"}')" '^OK .*"exit_status":137'
for id in chang thang shang dhang; do check_clean "$id"; done
check_serves after-runtime-hang

# The container exits right after its pty was sent: created, reaped, deleted, master closed.
echo exit >"$FAKE_RUNC_DIR/exitnow.mode"
expect "exitnow: create" "$(create exitnow)" '^OK'
# Start races the exit: any clear answer will do, none may hang.
expect "exitnow: start" "$(call StartProcess '{"id":"exitnow"}')" '^(OK|INTERNAL|FAILED_PRECONDITION)'
wait_stopped exitnow
expect "exitnow: state" "$(call ProcessState '{"id":"exitnow"}')" '"stopped"'
expect "exitnow: delete" "$(call DeleteProcess '{"id":"exitnow"}')" '^OK .*"exit_status":0'
check_clean exitnow

# An exec with a terminal whose runtime sends no descriptor: INTERNAL, its process killed.
echo ok >"$FAKE_RUNC_DIR/ex.mode"
echo nofd >"$FAKE_RUNC_DIR/ex.execmode"
expect "ex: create" "$(create ex)" '^OK'
expect "ex: start" "$(call StartProcess '{"id":"ex"}')" '^OK'
init=$(children)
expect "ex: exec" "$(call ExecProcess "{\"id\":\"ex\",\"exec_id\":\"e1\",\"terminal\":true,\"process\":{\"args\":[\"sleep\",\"60\"],\"cwd\":\"/\"}}")" '^OK'
expect "ex: exec start" "$(call StartProcess '{"id":"ex","exec_id":"e1"}')" \
	'^INTERNAL .*exec: console socket: a message with 0 descriptor\(s\)'
i=0
while [ "$(children)" != "$init" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
[ "$(children)" = "$init" ] || fail "ex: the exec's process was not killed: $(children) (init $init)"
expect "ex: exec delete" "$(call DeleteProcess '{"id":"ex","exec_id":"e1"}')" '^OK'
kill_wait ex
expect "ex: delete" "$(call DeleteProcess '{"id":"ex"}')" '^OK'
check_clean ex

# The id rule is the shim's (common/protocol.c): an id the shim refuses, the agent refuses too.
expect "id with a space" "$(create 'a b')" '^INVALID_ARGUMENT payload\.id: invalid character 0x20'
long=$(printf '%0129d' 0)
expect "id of 129 bytes" "$(create "$long")" '^INVALID_ARGUMENT payload\.id: longer than 128 bytes'
expect "id starting with '-'" "$(create -x)" '^INVALID_ARGUMENT payload\.id: must not start'

z=$(agent_zombies)
[ -z "$z" ] || fail "zombie children of the agent: $z"
agent_stop
[ $FAILED = 0 ] || { echo "FAIL: agent_console: $FAILED check(s) failed"; exit 1; }
echo "PASS: agent_console"
