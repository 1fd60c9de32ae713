/* libFuzzer target for analysis states (analysis_state__parse: the
 * envelope, then each example plugin's load), the one parser of the state
 * files replay --analysis and analyze keep between an interval and the
 * merge. The fuzz build skips the envelope's checksum check (see host.c),
 * so mutations reach the plugins' own decoding.
 *
 * Properties besides the sanitizers': a refused state leaves a message
 * naming the input; an accepted one merges after an empty state and
 * reports without failing.
 *
 * Seed corpus: corpus/analysis/, states the example plugins saved. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (1u << 20)

static const char *const plugins[] = { "insn-count", "working-set", "syscalls",
				       "page-redundancy" };
static struct analysis *loaded[4];

static void load_plugins(void)
{
	char spec[4200], err[1024];
	for (unsigned i = 0; i < 4; i++) {
		snprintf(spec, sizeof(spec), "%s/%s.so", ANALYSES_DIR, plugins[i]);
		if (!(loaded[i] = analysis__load(spec, err, sizeof(err)))) {
			fprintf(stderr, "fuzz_analysis: %s\n", err);
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[1024];

	if (size > FUZZ_MAX_INPUT)
		return -1;
	if (!loaded[0])
		load_plugins();
	for (unsigned i = 0; i < 4; i++) {
		err[0] = '\0';
		struct analysis_state *s = analysis_state__parse(loaded[i], data, size, "input", err,
								 sizeof(err));
		if (!s) {
			if (!strstr(err, "input"))
				abort();
			continue;
		}
		struct analysis_state *all = analysis_state__new(loaded[i], err, sizeof(err));
		if (!all)
			abort();
		if (analysis_state__merge(all, s, err, sizeof(err)) == 0) {
			FILE *out = fopen("/dev/null", "w");
			if (analysis_state__report(all, out, err, sizeof(err)) != 0)
				abort();
			fclose(out);
		}
		analysis_state__free(all);
	}
	return 0;
}
