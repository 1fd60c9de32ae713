/* libFuzzer target for ckpt_archive__import_memory: the tar reader, the
 * entry checks (paths, types, names, sizes), extraction, and the verify of
 * what was extracted.
 *
 * Each input is imported into DIR under a private scratch directory. The
 * properties checked besides the sanitizers': a refused import leaves no
 * DIR and no DIR.import-* behind and says why; an accepted one leaves DIR
 * holding only regular recording files, nothing anywhere else.
 *
 * Scratch space is $FUZZ_TMPDIR, else /dev/shm (import fsyncs every file,
 * which costs nothing there), else /tmp.
 *
 * Run: meson setup build-fuzz with CC=clang -Dfuzz=true (see
 * tests/fuzz/meson.build), then tests/fuzz/run-fuzzers.sh build-fuzz. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Seeds are a few KiB; much larger inputs only slow the fuzzer. */
#define FUZZ_MAX_INPUT (1u << 20)

static char scratch[PATH_MAX];  /* the private directory; "" until made */
static char target[PATH_MAX];   /* scratch/rec: DIR of every import */

static void remove_scratch(void)
{
	if (scratch[0])
		rmdir(scratch);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = getenv("FUZZ_TMPDIR");
	struct stat sb;

	(void)argc;
	(void)argv;
	if (!base)
		base = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) &&
		       access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(scratch, sizeof(scratch), "%s/simuboost-fuzz-archive-XXXXXX", base);
	if (!mkdtemp(scratch)) {
		perror(scratch);
		abort();
	}
	snprintf(target, sizeof(target), "%s/rec", scratch);
	atexit(remove_scratch);
	return 0;
}

/* The names in dir, each checked with ok(); -1 if dir cannot be read. */
static long scan(const char *dir, int (*ok)(int dirfd, const char *name))
{
	DIR *d = opendir(dir);
	struct dirent *e;
	long n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (!ok(dirfd(d), e->d_name))
			abort();
		n++;
	}
	closedir(d);
	return n;
}

static int is_target(int dirfd, const char *name)
{
	(void)dirfd;
	return strcmp(name, "rec") == 0;
}

/* A regular file with a recording's name, removed once checked. */
static int is_recording_file(int dirfd, const char *name)
{
	size_t digits = strspn(name, "0123456789");
	struct stat sb;
	bool named = !strcmp(name, "recording.meta") ||
		     (digits >= 6 && (!strcmp(name + digits, ".manifest") ||
				      !strcmp(name + digits, ".pack") ||
				      !strcmp(name + digits, ".log")));

	if (!named || fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
	    !S_ISREG(sb.st_mode))
		return 0;
	return unlinkat(dirfd, name, 0) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[1024];
	int rc;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	err[0] = '\0';
	rc = ckpt_archive__import_memory(data, size, target, err, sizeof(err));
	if (rc != 0) {
		if (rc != -1 || !memchr(err, '\0', sizeof(err)) || !err[0])
			abort();
		/* Nothing at all in scratch: no DIR, no DIR.import-*. */
		if (scan(scratch, is_target) != 0)
			abort();
		return 0;
	}
	if (scan(target, is_recording_file) < 0 || rmdir(target) != 0)
		abort();
	if (scan(scratch, is_target) != 0)
		abort();
	return 0;
}
