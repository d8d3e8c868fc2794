/*
 * fuzz.h: what every libFuzzer target in tests/fuzz/ shares.
 *
 * A target is one file defining LLVMFuzzerTestOneInput over one parser. It is linked two
 * ways: with libFuzzer (tests/fuzz/fuzz_NAME, --enable-fuzzing builds only) and with the
 * standalone driver in standalone.c (tests/fuzz/replay_NAME, every build), which feeds it
 * the committed corpus so that make check replays every seed and every crash reproducer.
 *
 * A target must be deterministic (no clock, no randomness: chunkings come from fuzz_rng
 * seeded with a hash of the input) and must free everything it allocates (libFuzzer runs
 * with -detect_leaks=1). A broken invariant is a programming error in the parser, so it ends
 * the process through fatalx(), which aborts: libFuzzer saves the input as a crash.
 */
#ifndef VMSHIM_FUZZ_H
#define VMSHIM_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* The libFuzzer entry points (the standalone driver calls them too). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Abort with the condition's text and a message when an invariant does not hold. */
#define fuzz_check(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fatalx("fuzz invariant \"" #cond "\" broken: " __VA_ARGS__);               \
	} while (0)

/* A small deterministic generator (splitmix64), seeded from the input. */
struct fuzz_rng {
	uint64_t state;
};

/* FNV-1a over the input: the seed of every derived choice, so a rerun repeats it. */
uint64_t fuzz_hash(const uint8_t *data, size_t size);
void fuzz_rng_init(struct fuzz_rng *r, const uint8_t *data, size_t size);
uint64_t fuzz_rng_next(struct fuzz_rng *r);
/* A chunk length in 1..left for cutting input the way the network might (left > 0). */
size_t fuzz_chunk_len(struct fuzz_rng *r, size_t left);
/* Big-endian u32 at p. */
uint32_t fuzz_be32(const uint8_t *p);
/* A socketpair (SOCK_CLOEXEC) whose fds[1] end got data[0..size) and was then shut down. */
void fuzz_socket_with(const uint8_t *data, size_t size, int fds[2]);

/*
 * fuzz-fields.c: run the typed accessors of common/msg.h over a decoded payload, field by
 * field as a table says, and check each answer against what the JSON actually holds.
 */
struct json_t;

enum fuzz_field_type {
	FF_STRING,
	FF_BOOL,
	FF_U32,
	FF_I64,
	FF_OBJECT,
	FF_ARRAY,
	FF_STRINGS, /* array of strings */
	FF_U32S,    /* array of u32 */
	FF_STRMAP,  /* object whose values are strings (annotations) */
	FF_TABLE,   /* object described by the `sub` table */
	FF_TABLES,  /* array of objects described by `sub` */
};

struct fuzz_field {
	const char *key; /* NULL ends a table */
	enum fuzz_field_type type;
	bool required;
	const struct fuzz_field *sub; /* FF_TABLE, FF_TABLES */
};

/* Walk obj (any JSON value, NULL for absent) with the table; `where` names it in errors. */
void fuzz_fields_walk(struct json_t *obj, const char *where, const struct fuzz_field *table);

#endif
