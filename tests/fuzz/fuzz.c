/*
 * fuzz.c: helpers shared by the fuzz targets (see fuzz.h), and the process-wide setup both
 * the libFuzzer and the standalone builds get.
 *
 * LLVMFuzzerInitialize fixes jansson's hash seed, which jansson would otherwise draw from
 * /dev/urandom: object layout, and so the coverage libFuzzer sees, must not change between
 * runs. __ubsan_default_options makes UBSan stop at the first report so that a fuzzing build
 * (compiled with recoverable UBSan) turns undefined behaviour into a saved crash. Nothing
 * here keeps state between inputs; the functions are called from the fuzzing thread only.
 */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"

const char *__ubsan_default_options(void);

const char *
__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	json_object_seed(1);
	return 0;
}

uint64_t
fuzz_hash(const uint8_t *data, size_t size)
{
	uint64_t h = 14695981039346656037ull;
	size_t i;

	for (i = 0; i < size; i++) {
		h ^= data[i];
		h *= 1099511628211ull;
	}
	return h;
}

void
fuzz_rng_init(struct fuzz_rng *r, const uint8_t *data, size_t size)
{
	r->state = fuzz_hash(data, size);
}

uint64_t
fuzz_rng_next(struct fuzz_rng *r)
{
	uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Mostly short cuts (1..16 bytes, splitting headers), sometimes a long one. */
size_t
fuzz_chunk_len(struct fuzz_rng *r, size_t left)
{
	uint64_t v = fuzz_rng_next(r);
	size_t n;

	if ((v & 7) == 0)
		n = (size_t)(v >> 8) % 4096 + 1;
	else
		n = (size_t)(v >> 8) % 16 + 1;
	return n < left ? n : left;
}

uint32_t
fuzz_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/*
 * The caller keeps size small enough for the socket buffer (a few KiB at most), so the
 * blocking write never waits for a reader; the peer then sees the data followed by EOF.
 */
void
fuzz_socket_with(const uint8_t *data, size_t size, int fds[2])
{
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
		fatal("socketpair");
	while (size > 0) {
		n = write(fds[1], data, size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fatal("write to socketpair");
		data += n;
		size -= (size_t)n;
	}
	if (shutdown(fds[1], SHUT_WR) < 0)
		fatal("shutdown");
}
