/* A test analysis plugin that crashes on purpose: it counts instructions,
 * and with crash=K (K >= 1) it dies of SIGSEGV at the first instruction of
 * interval K, every time that interval is analysed. `analyze` must name
 * it, leave its report out and make the others' all the same. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "simuboost-analysis.h"

struct crash {
	unsigned long at; /* the interval to crash in; 0: never */
};

struct count {
	uint64_t insns;
	bool crash;       /* in the interval being analysed */
};

static void *crash_create(const char *args, char *err, size_t errlen)
{
	struct crash *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	if (sb_analysis_arg_uint(args, "crash", &c->at) < 0) {
		snprintf(err, errlen, "crash=K: K must be a number");
		free(c);
		return NULL;
	}
	return c;
}

static void crash_destroy(void *plugin) { free(plugin); }

static void *state_new(void *plugin)
{
	struct count *s = calloc(1, sizeof(*s));
	(void)plugin;
	return s;
}

static void state_free(void *plugin, void *state)
{
	(void)plugin;
	free(state);
}

static void interval_begin(void *plugin, void *state, uint32_t interval)
{
	unsigned long at = ((struct crash *)plugin)->at;
	((struct count *)state)->crash = at && at == interval;
}

static void insn(void *state, const struct trace_record *rec)
{
	struct count *s = state;
	(void)rec;
	if (s->crash)
		raise(SIGSEGV);
	s->insns++;
}

static int interval_end(void *plugin, void *state, uint32_t interval, const struct sb_memory *mem,
			char *err, size_t errlen)
{
	(void)plugin, (void)state, (void)interval, (void)mem, (void)err, (void)errlen;
	return 0;
}

static int save(void *plugin, const void *state, FILE *out)
{
	(void)plugin;
	return fwrite(&((const struct count *)state)->insns, 8, 1, out) == 1 ? 0 : -1;
}

static void *load(void *plugin, FILE *in, char *err, size_t errlen)
{
	struct count *s = state_new(plugin);
	if (s && fread(&s->insns, 8, 1, in) != 1) {
		snprintf(err, errlen, "crash: a state is 8 bytes");
		free(s);
		return NULL;
	}
	return s;
}

static int merge(void *plugin, void *into, const void *next, char *err, size_t errlen)
{
	(void)plugin, (void)err, (void)errlen;
	((struct count *)into)->insns += ((const struct count *)next)->insns;
	return 0;
}

static int report(void *plugin, const void *state, FILE *out)
{
	(void)plugin;
	return fprintf(out, "instructions %llu\n",
		       (unsigned long long)((const struct count *)state)->insns) < 0 ? -1 : 0;
}

static const struct sb_analysis crash_analysis = {
	.api_version = SB_ANALYSIS_API_VERSION,
	.name = "crash",
	.create = crash_create,
	.destroy = crash_destroy,
	.state_new = state_new,
	.state_free = state_free,
	.interval_begin = interval_begin,
	.insn = insn,
	.interval_end = interval_end,
	.save = save,
	.load = load,
	.merge = merge,
	.report = report,
};

const struct sb_analysis *simuboost_analysis(void);
const struct sb_analysis *simuboost_analysis(void) { return &crash_analysis; }
