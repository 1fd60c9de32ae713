/* A whole run: the traces of consecutive intervals read as one stream,
 * with instruction counts from the start of the first. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "trace.h"

struct trace_run {
	char dir[4096];
	uint32_t next_interval, last;
	uint32_t interval;              /* the one being read */
	struct trace_reader *reader;
	uint64_t base;                  /* instructions of the intervals before */
};

void trace__path(char *out, size_t outlen, const char *dir, uint32_t interval)
{
	snprintf(out, outlen, "%s/%06" PRIu32 ".trace", dir, interval);
}

static int open_next(struct trace_run *run, char *err, size_t errlen)
{
	char path[4200];

	if (run->reader) {
		run->base += trace_reader__info(run->reader)->instructions;
		trace_reader__close(run->reader);
		run->reader = NULL;
	}
	if (run->next_interval >= run->last)
		return 0;
	trace__path(path, sizeof(path), run->dir, run->next_interval);
	char why[1024];
	run->reader = trace_reader__open(path, why, sizeof(why));
	if (!run->reader) { /* a missing one ends the run, which is the intervals in a row */
		snprintf(err, errlen, "the run stops at interval %" PRIu32 ": %s", run->next_interval,
			 why);
		return -1;
	}
	if (trace_reader__info(run->reader)->interval != run->next_interval) {
		snprintf(err, errlen, "%s: holds interval %" PRIu32 ", not %" PRIu32, path,
			 trace_reader__info(run->reader)->interval, run->next_interval);
		return -1;
	}
	run->interval = run->next_interval++;
	return 1;
}

struct trace_run *trace_run__open(const char *dir, uint32_t first, uint32_t last, char *err,
				  size_t errlen)
{
	struct trace_run *run = calloc(1, sizeof(*run));
	if (!run) {
		snprintf(err, errlen, "%s: out of memory", dir);
		return NULL;
	}
	snprintf(run->dir, sizeof(run->dir), "%s", dir);
	run->next_interval = first;
	run->last = last;
	if (first >= last) {
		snprintf(err, errlen, "%s: no intervals in %" PRIu32 "..%" PRIu32, dir, first, last);
		free(run);
		return NULL;
	}
	if (open_next(run, err, errlen) != 1) {
		trace_run__close(run);
		return NULL;
	}
	return run;
}

int trace_run__next(struct trace_run *run, struct trace_record *rec, uint32_t *interval,
		    char *err, size_t errlen)
{
	for (;;) {
		if (!run->reader)
			return 0;
		int rc = trace_reader__next(run->reader, rec, err, errlen);
		if (rc < 0)
			return -1;
		if (rc > 0) {
			rec->icount += run->base;
			if (interval)
				*interval = run->interval;
			return 1;
		}
		if (open_next(run, err, errlen) < 0)
			return -1;
	}
}

void trace_run__close(struct trace_run *run)
{
	if (!run)
		return;
	trace_reader__close(run->reader);
	free(run);
}
