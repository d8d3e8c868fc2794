/*
 * fuzz_handshake.c: libFuzzer target for the server side of the hybrid vsock handshake
 * (common/transport.c): hybrid_parse_connect and hybrid_accept_line (docs/PROTOCOL.md 1).
 *
 * hybrid_parse_connect gets the whole input as a line and is checked against the grammar of
 * transport.h: "CONNECT" in any case, one space, decimal digits forming a u32. Anything it
 * accepts must match the grammar with the port it reports; a well-formed line (up to 10
 * digits) must be accepted.
 *
 * hybrid_accept_line reads from a socketpair that holds the start of the input followed by
 * EOF. From the bytes alone the answer is known: a line of at most HYBRID_LINE_MAX bytes with
 * its newline is parsed as above, a longer one fails after HYBRID_LINE_MAX bytes, no newline
 * before EOF is UNAVAILABLE. What it must not do is read past the newline: the rest of the
 * input must still be in the socket, byte for byte, and the descriptor must be back in
 * blocking mode. The socketpair is created and closed per input; nothing else is allocated.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "transport.h"

#define FUZZ_HANDSHAKE_SOCK_MAX 1024u /* input bytes written to the socketpair */

/*
 * The grammar: returns 1 with *port for a well-formed line whose number fits a u32 and has at
 * most 10 digits, 2 for a well-formed line with a longer number (zero padding), 0 otherwise.
 */
static int
handshake_grammar(const uint8_t *line, size_t len, uint32_t *port)
{
	static const char word[] = "connect ";
	uint64_t v = 0;
	size_t i;

	if (len < 9)
		return 0;
	for (i = 0; i < 8; i++) {
		uint8_t c = line[i];
		if (c >= 'A' && c <= 'Z')
			c = (uint8_t)(c - 'A' + 'a');
		if (c != (uint8_t)word[i])
			return 0;
	}
	for (i = 8; i < len; i++) {
		if (line[i] < '0' || line[i] > '9')
			return 0;
		if (v <= UINT32_MAX)
			v = v * 10 + (uint64_t)(line[i] - '0');
	}
	if (v > UINT32_MAX)
		return 0;
	*port = (uint32_t)v;
	return len - 8 <= 10 ? 1 : 2;
}

/* Check hybrid_parse_connect on one line against the grammar. Returns what it returned. */
static int
handshake_check_parse(const uint8_t *line, size_t len)
{
	uint32_t port = 0xfeedu, want = 0;
	int g, r;

	r = hybrid_parse_connect((const char *)line, len, &port);
	g = handshake_grammar(line, len, &want);
	fuzz_check(r == 0 || r == -1, "returned %d", r);
	if (r == 0)
		fuzz_check(g != 0 && port == want, "accepted a malformed line (port %u)", port);
	else
		fuzz_check(g != 1, "rejected a well-formed line (port %u)", want);
	return r;
}

/* Run hybrid_accept_line over a socket holding the input and check what it took. */
static void
handshake_check_accept(const uint8_t *data, size_t size)
{
	size_t n = size < FUZZ_HANDSHAKE_SOCK_MAX ? size : FUZZ_HANDSHAKE_SOCK_MAX;
	uint8_t rest[FUZZ_HANDSHAKE_SOCK_MAX + 1];
	const uint8_t *nl = memchr(data, '\n', n);
	size_t used, have = 0;
	struct status st;
	uint32_t port = 0, want_port = 0;
	int fds[2], r, want, want_code = ST_OK, flags;
	ssize_t got;

	if (nl != NULL && (size_t)(nl - data) < HYBRID_LINE_MAX) {
		used = (size_t)(nl - data) + 1;
		want = hybrid_parse_connect((const char *)data, used - 1, &want_port);
		if (want < 0)
			want_code = ST_INVALID_ARGUMENT;
	} else if (n >= HYBRID_LINE_MAX) {
		used = HYBRID_LINE_MAX;
		want = -1;
		want_code = ST_INVALID_ARGUMENT;
	} else {
		used = n;
		want = -1;
		want_code = ST_UNAVAILABLE;
	}

	fuzz_socket_with(data, n, fds);
	status_clear(&st);
	r = hybrid_accept_line(fds[0], time_mono_ms() + 10000, &port, &st);
	fuzz_check(r == want, "returned %d, expected %d (%s)", r, want, st.msg);
	if (r == 0)
		fuzz_check(port == want_port, "port %u, expected %u", port, want_port);
	else
		fuzz_check(st.code == want_code && st.msg[0] != '\0', "code %d, expected %d: %s",
		    st.code, want_code, st.msg);
	flags = fcntl(fds[0], F_GETFL);
	fuzz_check(flags >= 0 && (flags & O_NONBLOCK) == 0, "left the fd non-blocking");
	for (;;) {
		got = read(fds[0], rest + have, sizeof rest - have);
		if (got < 0 && errno == EINTR)
			continue;
		fuzz_check(got >= 0, "read the rest: %s", strerror(errno));
		if (got == 0)
			break;
		have += (size_t)got;
	}
	fuzz_check(have == n - used && memcmp(rest, data + used, have) == 0,
	    "consumed %zu bytes, expected %zu", n - have, used);
	close(fds[0]);
	close(fds[1]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	handshake_check_parse(data, size);
	handshake_check_accept(data, size);
	return 0;
}
