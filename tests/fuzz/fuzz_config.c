/* libFuzzer target for the vm.cfg parser: vnode_config__load on the input
 * written to a file (libconfig reads from a FILE, and load takes a path),
 * and vnode_config__set on the input as one "key=value" override.
 *
 * The file lives in a private scratch directory next to an empty file "k",
 * so that `kernel = "k";` resolves and the keys after it get checked.
 * Properties besides the sanitizers': a refused config says why and leaves
 * nothing allocated (LeakSanitizer), an accepted one has the fields every
 * caller relies on.
 *
 * Inputs with "@include" are skipped: libconfig would read whatever host
 * file they name, and a run would depend on the machine. libconfig 1.5
 * leaks on some syntax errors; tests/fuzz/lsan.supp suppresses that.
 *
 * Run: meson setup build-fuzz with CC=clang -Dfuzz=true (see
 * tests/fuzz/meson.build), then tests/fuzz/run-fuzzers.sh build-fuzz. */
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vnode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A vm.cfg is a few lines; cmdline may be 4 KiB. */
#define FUZZ_MAX_INPUT (64u << 10)

static char scratch[PATH_MAX];
static char cfg_path[PATH_MAX];
static char kernel_path[PATH_MAX];

static void remove_scratch(void)
{
	unlink(cfg_path);
	unlink(kernel_path);
	rmdir(scratch);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = getenv("FUZZ_TMPDIR");
	int fd;

	(void)argc;
	(void)argv;
	if (!base)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(scratch, sizeof(scratch), "%s/simuboost-fuzz-config-XXXXXX", base);
	if (!mkdtemp(scratch)) {
		perror(scratch);
		abort();
	}
	snprintf(cfg_path, sizeof(cfg_path), "%s/vm.cfg", scratch);
	snprintf(kernel_path, sizeof(kernel_path), "%s/k", scratch);
	fd = open(kernel_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror(kernel_path);
		abort();
	}
	close(fd);
	atexit(remove_scratch);
	return 0;
}

static void check_loaded(const struct vnode_config *cfg)
{
	if (!cfg->path || !cfg->kernel || !cfg->cmdline || !cfg->console_out ||
	    !cfg->console_in || !cfg->boot)
		abort();
	if (!cfg->memory || cfg->memory % 4096 || !cfg->interval_ns)
		abort();
	if (strlen(cfg->cmdline) >= 4096)
		abort();
}

static void fuzz_load(const uint8_t *data, size_t size)
{
	struct vnode_config cfg;
	char err[1024];
	FILE *f = fopen(cfg_path, "w");

	if (!f)
		abort();
	if (fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	err[0] = '\0';
	if (vnode_config__load(&cfg, cfg_path, err, sizeof(err)) != 0) {
		if (!memchr(err, '\0', sizeof(err)) || !err[0])
			abort();
		return;
	}
	check_loaded(&cfg);
	vnode_config__free(&cfg);
}

static void fuzz_set(const uint8_t *data, size_t size)
{
	struct vnode_config cfg;
	char err[1024];
	char *assignment = strndup((const char *)data, size);

	if (!assignment)
		return;
	vnode_config__init(&cfg);
	err[0] = '\0';
	if (vnode_config__set(&cfg, assignment, err, sizeof(err)) != 0 &&
	    (!memchr(err, '\0', sizeof(err)) || !err[0]))
		abort();
	vnode_config__free(&cfg);
	free(assignment);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_MAX_INPUT || memmem(data, size, "@include", 8))
		return 0;
	fuzz_load(data, size);
	fuzz_set(data, size);
	return 0;
}
