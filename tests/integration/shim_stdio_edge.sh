#!/bin/bash
# shim_stdio_edge.sh: stdio corner cases through the real vmshim + vmshim-agent (local VM).
#  - the runtime never opens the stdin FIFO: Create, Start, Wait, Delete still complete (for a
#    process that ignores stdin, and for `cat`, which is killed);
#  - a terminal: `stty size` inside an exec with terminal true reports what ResizePty set
#    (width = columns, height = rows: 77 x 33 gives "33 77");
#  - half-close (docs/CONTRACT.md 5.2): the stdin FIFO's EOF ends the process's stdin while its
#    stdout keeps flowing: `cat; sleep 0.2; echo after-eof` shows the input and then "after-eof".
. "$(dirname "$0")/lib.sh"
need_bins
setup
start_agent
start_shim

# Bounded wait until FILE contains PATTERN (grep -E).
wait_for() {
	i=0
	while ! grep -Eq -- "$2" "$1" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	grep -Eq -- "$2" "$1" 2>/dev/null
}

# 1. Nobody ever opens the stdin FIFO.
make_bundle nostdin 'echo hi; exit 3'
mkfifo "$T/ns.in"
expect_call "Create (stdin never opened)" Create "{\"id\":\"ns\",\"bundle\":\"$T/nostdin\",\"stdin\":\"$T/ns.in\",\"stdout\":\"$T/ns.out\"}" '^OK'
expect_call "Start (stdin never opened)" Start '{"id":"ns"}' '^OK'
expect_call "Wait (stdin never opened)" Wait '{"id":"ns"}' '"exit_status":3'
expect_call "Delete (stdin never opened)" Delete '{"id":"ns"}' '"exit_status":3'
[ "$(cat "$T/ns.out")" = hi ] && pass "stdout of the process with an unopened stdin: hi" ||
	fail "stdout: '$(cat "$T/ns.out")'"
make_bundle nscat 'exec cat'
mkfifo "$T/nc.in"
expect_call "Create cat (stdin never opened)" Create "{\"id\":\"nc\",\"bundle\":\"$T/nscat\",\"stdin\":\"$T/nc.in\",\"stdout\":\"$T/nc.out\"}" '^OK'
expect_call "Start cat (stdin never opened)" Start '{"id":"nc"}' '^OK'
expect_call "State cat (still running)" State '{"id":"nc"}' '"status":"RUNNING"'
expect_call "Kill cat" Kill '{"id":"nc","signal":9}' '^OK'
expect_call "Wait cat" Wait '{"id":"nc"}' '"exit_status":137'
expect_call "Delete cat" Delete '{"id":"nc"}' '"exit_status":137'

# 2. A terminal sized by ResizePty.
make_bundle tty 'exec sleep 1000'
expect_call "Create tty container" Create "{\"id\":\"tty\",\"bundle\":\"$T/tty\"}" '^OK'
expect_call "Start tty container" Start '{"id":"tty"}' '^OK'
mkfifo "$T/t.in" "$T/t.out"
cat "$T/t.out" >"$T/t.captured" &
TREADER=$!
PIDS="$PIDS $TREADER"
expect_call "Exec with a terminal" Exec "{\"id\":\"tty\",\"exec_id\":\"t1\",\"terminal\":true,\"stdin\":\"$T/t.in\",\"stdout\":\"$T/t.out\",\"spec\":{\"args\":[\"sh\",\"-c\",\"read x; stty size\"],\"env\":[\"PATH=/usr/bin:/bin\"],\"cwd\":\"/\",\"terminal\":true}}" '^OK'
exec 3>"$T/t.in"
expect_call "Start the terminal exec" Start '{"id":"tty","exec_id":"t1"}' '^OK'
expect_call "ResizePty 77 x 33" ResizePty '{"id":"tty","exec_id":"t1","width":77,"height":33}' '^OK'
echo go >&3
expect_call "Wait the terminal exec" Wait '{"id":"tty","exec_id":"t1"}' '"exit_status":0'
exec 3>&-
wait_for "$T/t.captured" '33 77' &&
	pass "stty size in the terminal: $(tr -d '\r' <"$T/t.captured" | tr '\n' '|')" ||
	fail "stty size: '$(cat -v "$T/t.captured")', want 33 77"
expect_call "Delete the terminal exec" Delete '{"id":"tty","exec_id":"t1"}' '^OK'
expect_call "Kill tty container" Kill '{"id":"tty","signal":9}' '^OK'
expect_call "Wait tty container" Wait '{"id":"tty"}' '"exit_status":137'
expect_call "Delete tty container" Delete '{"id":"tty"}' '^OK'

# 3. Half-close: stdin EOF, stdout keeps flowing.
make_bundle half 'cat; sleep 0.2; echo after-eof'
mkfifo "$T/h.in" "$T/h.out"
cat "$T/h.out" >"$T/h.captured" &
HREADER=$!
PIDS="$PIDS $HREADER"
expect_call "Create half" Create "{\"id\":\"half\",\"bundle\":\"$T/half\",\"stdin\":\"$T/h.in\",\"stdout\":\"$T/h.out\"}" '^OK'
exec 3>"$T/h.in"
expect_call "Start half" Start '{"id":"half"}' '^OK'
echo "echoed input" >&3
wait_for "$T/h.captured" '^echoed input$' || fail "the input was not echoed before EOF"
exec 3>&- # the runtime closes its writer: stdin EOF
expect_call "Wait half" Wait '{"id":"half"}' '"exit_status":0'
wait_for "$T/h.captured" 'after-eof'
if [ "$(cat "$T/h.captured")" = "$(printf 'echoed input\nafter-eof')" ]; then
	pass "half-close: input echoed, then after-eof flowed after stdin's EOF"
else
	fail "half-close: captured '$(cat "$T/h.captured")'"
fi
expect_call "Delete half" Delete '{"id":"half"}' '"exit_status":0'

finish
