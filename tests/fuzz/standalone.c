/*
 * standalone.c: a main() for the fuzz targets without libFuzzer, so every build can replay
 * the committed corpora (tests/fuzz/replay_NAME, registered in TESTS).
 *
 *   replay_NAME [FILE|DIR]...
 *
 * Each FILE, and each regular file directly inside each DIR (in name order, dotfiles
 * skipped), is read into a buffer of exactly its size, so ASan sees any read past the end,
 * and handed to LLVMFuzzerTestOneInput once. With no arguments it replays
 * $top_srcdir/tests/fuzz/corpus/NAME, as make check runs it. A broken invariant or a
 * sanitizer report aborts the program; an unreadable path or an empty corpus is an error
 * (exit 1), since a replay that ran nothing proves nothing. Single-threaded; every buffer is
 * freed after its run so LeakSanitizer only reports the target's leaks.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#ifndef FUZZ_NAME
#error "FUZZ_NAME must name the target (-DFUZZ_NAME=frame)"
#endif
#define FUZZ_STR2(x) #x
#define FUZZ_STR(x)  FUZZ_STR2(x)

/* Read the whole file into an exact-size malloc'd buffer. 0 or -errno. */
static int
standalone_read(const char *path, uint8_t **out, size_t *outlen)
{
	cleanup_close int fd = -1;
	cleanup_free uint8_t *buf = NULL;
	struct stat sb;
	size_t have = 0;
	ssize_t n;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (fstat(fd, &sb) < 0)
		return -errno;
	buf = xmalloc((size_t)sb.st_size);
	while (have < (size_t)sb.st_size) {
		n = read(fd, buf + have, (size_t)sb.st_size - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the file shrank under us */
		have += (size_t)n;
	}
	*outlen = have;
	*out = steal_ptr(&buf);
	return 0;
}

/* Run one file through the target. 0 or -1 (reported). */
static int
standalone_run_file(const char *path)
{
	cleanup_free uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	if ((r = standalone_read(path, &buf, &len)) < 0) {
		fprintf(stderr, "replay_%s: %s: %s\n", FUZZ_STR(FUZZ_NAME), path, strerror(-r));
		return -1;
	}
	LLVMFuzzerTestOneInput(buf, len);
	return 0;
}

/* Run every regular, non-dot file directly in dir, in name order. Count in *runs. */
static int
standalone_run_dir(const char *dir, size_t *runs)
{
	struct dirent **ents = NULL;
	struct stat sb;
	char *path;
	int n, i, ret = 0;

	if ((n = scandir(dir, &ents, NULL, alphasort)) < 0) {
		fprintf(stderr, "replay_%s: %s: %s\n", FUZZ_STR(FUZZ_NAME), dir, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (ents[i]->d_name[0] != '.') {
			xasprintf(&path, "%s/%s", dir, ents[i]->d_name);
			if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
				if (standalone_run_file(path) < 0)
					ret = -1;
				else
					(*runs)++;
			}
			free(path);
		}
		free(ents[i]);
	}
	free(ents);
	return ret;
}

int
main(int argc, char **argv)
{
	cleanup_free char *deflt = NULL;
	const char *top;
	struct stat sb;
	size_t runs = 0;
	int i, bad = 0;

	LLVMFuzzerInitialize(&argc, &argv);
	if (argc < 2) {
		top = getenv("top_srcdir");
		xasprintf(&deflt, "%s/tests/fuzz/corpus/%s", top ? top : ".", FUZZ_STR(FUZZ_NAME));
		if (standalone_run_dir(deflt, &runs) < 0)
			bad = 1;
	}
	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
			if (standalone_run_dir(argv[i], &runs) < 0)
				bad = 1;
		} else if (standalone_run_file(argv[i]) < 0) {
			bad = 1;
		} else {
			runs++;
		}
	}
	if (runs == 0) {
		fprintf(stderr, "replay_%s: no inputs replayed\n", FUZZ_STR(FUZZ_NAME));
		return 1;
	}
	printf("replay_%s: %zu inputs replayed%s\n", FUZZ_STR(FUZZ_NAME), runs,
	    bad ? ", some could not be read" : ", no invariant broken");
	return bad;
}
