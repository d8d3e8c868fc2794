#!/bin/sh
# agent_process.sh: the process runner end to end: echo, stdin, no output lost, big transfers,
# a too-big stream frame, exit statuses, concurrency, no zombies, clean SIGTERM.
. "$(dirname "$0")/agent_lib.sh"
agent_start

# echo
check "$CLIENT" run "$SOCK" --id echo --stdout "$TMP/out" --stderr "$TMP/err" -- \
	sh -c 'echo hello; echo oops >&2'
[ "$(cat "$TMP/out")" = hello ] || { echo "FAIL: echo stdout: $(cat "$TMP/out")"; exit 1; }
[ "$(cat "$TMP/err")" = oops ] || { echo "FAIL: echo stderr: $(cat "$TMP/err")"; exit 1; }

# fd hygiene: the process gets its stdio and nothing else of the agent's
check "$CLIENT" run "$SOCK" --id fds --stdout "$TMP/out" -- \
	sh -c 'ls -l /proc/self/fd | grep -v -e "^total" -e "-> /proc/"'
n=$(wc -l < "$TMP/out")
[ "$n" = 3 ] || { echo "FAIL: the process has $n fds:"; cat "$TMP/out"; exit 1; }

# cat: stdin, then EOF
printf 'line one\nline two\n' > "$TMP/in"
check "$CLIENT" run "$SOCK" --id cat --stdin "$TMP/in" --stdout "$TMP/out" -- cat
cmp "$TMP/in" "$TMP/out" || { echo "FAIL: cat output differs"; exit 1; }

# exit statuses
check "$CLIENT" run "$SOCK" --id exit3 --expect-status 3 -- sh -c 'exit 3'
check "$CLIENT" run "$SOCK" --id kill9 --expect-status 137 -- sh -c 'kill -9 $$'
check "$CLIENT" run "$SOCK" --id noexec --start-error 1 --expect-status 127 -- \
	/nonexistent/program

# 64 MiB written by a process that exits at once: every byte, then the exit event
check "$CLIENT" run "$SOCK" --id big64 --order 1 --stdout "$TMP/out" -- \
	head -c 67108864 /dev/zero
size=$(stat -c %s "$TMP/out")
[ "$size" = 67108864 ] || { echo "FAIL: 64 MiB run delivered $size bytes"; exit 1; }

# a descendant keeps stdout open: the exit is published after the 5 s grace
start=$(date +%s)
check "$CLIENT" run "$SOCK" --id grace --stdout "$TMP/out" -- sh -c 'echo before; sleep 8 &'
took=$(( $(date +%s) - start ))
[ "$(head -1 "$TMP/out")" = before ] || { echo "FAIL: grace output"; exit 1; }
[ $took -ge 4 ] && [ $took -le 8 ] || { echo "FAIL: grace took $took s"; exit 1; }
grep -q 'detaching' "$TMP/agent.log" || { echo "FAIL: no detach log line"; exit 1; }

# 256 MiB each way through cat
head -c 268435456 /dev/urandom > "$TMP/in"
check "$CLIENT" run "$SOCK" --id big256 --stdin "$TMP/in" --stdout "$TMP/out" -- cat
a=$(sha256sum < "$TMP/in"); b=$(sha256sum < "$TMP/out")
[ "$a" = "$b" ] || { echo "FAIL: 256 MiB through cat: sha256 differs"; exit 1; }
echo "ok   256 MiB sha256 ${a%% *}"
rm -f "$TMP/in" "$TMP/out"

# a stream frame of 10 MiB + 1 fails that stream only
check "$CLIENT" bigframe "$SOCK"

# 100 concurrent processes
check "$CLIENT" many "$SOCK" 100

# no zombies
sleep 0.2
z=$(agent_zombies)
[ -z "$z" ] || { echo "FAIL: zombie children of the agent: $z"; exit 1; }
echo "ok   no zombies"
agent_stop
echo "PASS: agent_process"
