#!/bin/bash
# shim_limits_xdg.sh: the default socket path (docs/CONTRACT.md 2) for a user that is not root:
# `vmshim start` as uid 65534 with XDG_RUNTIME_DIR set prints unix://$XDG_RUNTIME_DIR/vmshim/
# NS/ID.sock, the socket is 0600 and its directories 0700, owned by that user, and it answers
# that user; `vmshim delete` as that user cleans up.
. "$(dirname "$0")/lib.sh"
need_bins
command -v setpriv >/dev/null || skip "setpriv is missing"
[ "$(id -u)" = 0 ] || skip "needs root to switch to uid 65534"
setup
# uid 65534 runs the shim and the client: from a checkout it cannot traverse (a clone under a
# 0700 `mktemp -d`) it could not even exec them. Both binaries are self-contained (static or
# linked only against system libraries), so run copies from the test's 0755 directory.
mkdir -m 0755 "$T/bin"
cp "$SHIM" "$T/bin/vmshim" && cp "$RAW" "$T/bin/shim_rawclient" || die "cannot copy the binaries to $T/bin"
SHIM=$T/bin/vmshim
RAW=$T/bin/shim_rawclient
setpriv --reuid 65534 --regid 65534 --clear-groups "$SHIM" -h >/dev/null 2>&1 ||
	skip "uid 65534 cannot run a copy of the shim in $T/bin (noexec /tmp?)"
X=$T/xdg
mkdir -m 0700 "$X"
chown 65534:65534 "$X"
cat >"$T/config.json" <<JSON
{"vm": {"vsock": "uds:$T/no-vm.sock"}, "seccomp": false, "allowed_uids": [65534], "log_level": "debug"}
JSON
chmod 0644 "$T/config.json"
as_nobody() { setpriv --reuid 65534 --regid 65534 --clear-groups env XDG_RUNTIME_DIR="$X" "$@"; }
out=$(as_nobody "$SHIM" -namespace ns1 -id g1 -config "$T/config.json" -log "$X/shim.log" start 2>&1)
st=$?
[ $st = 0 ] && [ "$out" = "unix://$X/vmshim/ns1/g1.sock" ] && pass "start as uid 65534: $out" || fail "start: exit $st: $out"
pid=$(cat "$X/vmshim/ns1/g1.pid" 2>/dev/null)
[ -n "$pid" ] && PIDS="$PIDS $pid"
S=$X/vmshim/ns1/g1.sock
[ "$(stat -c '%a %u' "$S")" = "600 65534" ] && pass "socket 0600, owner 65534" || fail "socket: $(stat -c '%a %u' "$S")"
for d in "$X/vmshim" "$X/vmshim/ns1"; do
	[ "$(stat -c '%a %u' "$d")" = "700 65534" ] && pass "$d 0700, owner 65534" || fail "$d: $(stat -c '%a %u' "$d")"
done
out=$(as_nobody "$RAW" call "$S" Connect '{}')
echo "$out" | grep -q "\"shim_pid\":$pid" && pass "answers uid 65534: $out" || fail "call: $out"
out=$(as_nobody "$SHIM" -namespace ns1 -id g1 -json delete 2>&1)
echo "$out" | grep -q '"exit_status":137' && pass "delete as uid 65534" || fail "delete: $out"
[ ! -e "$S" ] && pass "socket removed" || fail "socket left"
finish
