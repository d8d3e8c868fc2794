#!/bin/bash
# shim_badinput.sh: docs/CONTRACT.md 5.5 on the real daemon: malformed JSON, unknown
# service/method, a missing field, a wrong type, an oversized payload (RESOURCE_EXHAUSTED, discarded unbuffered),
# an even stream id; after each one the same connection must still answer. Then a peer whose
# uid is not in allowed_uids is closed at once and logged (docs/CONTRACT.md 6).
. "$(dirname "$0")/lib.sh"
need_bins
setup
start_agent
write_config '"max_message_bytes": 65536,'
start_shim

if "$RAW" badinput "$T/shim.sock" 65536; then
	pass "bad-input table"
else
	fail "bad-input table"
fi
expect_call "State after the bad inputs" State '{"id":"nope"}' '^NOT_FOUND'

# A refused uid: run the client as nobody. The socket is 0600 in a 0700 dir by default, so
# open it up for this one test: the shim's own SO_PEERCRED check must refuse the peer.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	mode=$(stat -c %a "$T/shim.sock")
	[ "$mode" = 600 ] && pass "socket mode 0600" || fail "socket mode $mode"
	chmod 0666 "$T/shim.sock"
	chmod 0755 "$T"
	out=$(setpriv --reuid 65534 --regid 65534 --clear-groups "$RAW" call "$T/shim.sock" Connect '{}' 2>&1)
	if printf '%s' "$out" | grep -q '^OK'; then
		fail "uid 65534 was answered: $out"
	else
		pass "uid 65534 refused: $out"
	fi
	if grep -q 'refused a connection from pid [0-9]* uid 65534' "$T/shim.log"; then
		pass "refusal logged: $(grep -o 'refused a connection from pid [0-9]* uid 65534[^"]*' "$T/shim.log" | head -1)"
	else
		fail "no refusal in the log"
	fi
	chmod 0600 "$T/shim.sock"
else
	echo "note: not root or no setpriv: uid refusal not tested"
fi
expect_call "State still works" State '{"id":"nope"}' '^NOT_FOUND'
finish
