#!/bin/bash
# shim_fifo_bundle.sh: a path a client names is opened so that the open cannot block.
# Six Creates whose bundle config.json is a FIFO with no writer, sent at once, each answer
# INVALID_ARGUMENT, and a valid Create sent alongside them succeeds: no worker sits in open()
# on a FIFO. The same bundle given to `vmshim start` (which reads its annotations) is refused,
# not waited on. A hang shows as the raw client's own response timeout (no answer: FAIL).
. "$(dirname "$0")/lib.sh"
need_bins
setup
start_agent
write_config '"workers": 4,'
start_shim

for i in 1 2 3 4 5 6; do
	mkdir -p "$T/fifo$i"
	mkfifo "$T/fifo$i/config.json"
done
make_bundle ok 'exit 0'

pids=
for i in 1 2 3 4 5 6; do
	call Create "{\"id\":\"fifo$i\",\"bundle\":\"$T/fifo$i\"}" >"$T/fifo$i.out" 2>&1 &
	pids="$pids $!"
done
call Create "{\"id\":\"ok\",\"bundle\":\"$T/ok\"}" >"$T/ok.out" 2>&1 &
pids="$pids $!"
for p in $pids; do
	wait "$p"
done
for i in 1 2 3 4 5 6; do
	out=$(cat "$T/fifo$i.out")
	if printf '%s\n' "$out" | grep -q '^INVALID_ARGUMENT .*not a regular file'; then
		pass "FIFO bundle $i: $out"
	else
		fail "FIFO bundle $i: got '$out', want INVALID_ARGUMENT (not a regular file)"
	fi
done
out=$(cat "$T/ok.out")
if printf '%s\n' "$out" | grep -Eq '^OK \{"pid":[1-9]'; then
	pass "valid Create alongside: $out"
else
	fail "valid Create alongside: got '$out', want OK"
fi
expect_call "Delete ok" Delete '{"id":"ok"}' '^OK'
expect_call "FIFO Create leaves no task" State '{"id":"fifo1"}' '^NOT_FOUND'

# `vmshim start` reads the bundle for its annotations: a FIFO is refused, not waited on.
# timeout(1) is only the hang detector; the verdict is the exit status and the message.
if command -v timeout >/dev/null; then
	rc=0
	out=$(cd "$T/fifo1" && timeout 20 "$SHIM" -namespace fifo -id fifo1 -address "$T/none.sock" -config "$T/config.json" \
		-bundle "$T/fifo1" start 2>&1) || rc=$?
	if [ $rc -eq 124 ]; then
		fail "start with a FIFO bundle hung"
	elif [ $rc -ne 0 ] && printf '%s\n' "$out" | grep -q 'not a regular file'; then
		pass "start with a FIFO bundle refused: $out"
	else
		fail "start with a FIFO bundle: exit $rc, '$out'"
	fi
fi
finish
