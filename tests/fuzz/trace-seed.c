/* Writes the trace fuzzer's seeds (corpus/trace/) through the writer, so
 * that they follow the format a change of it makes (TRACE_FORMAT_VERSION):
 *   records.trace  every kind of record: instructions alone (long and
 *                  short), events (a system call's arguments too), runs
 *                  of blocks whole and in part, accesses of every size
 *                  and advance, one appended alone after a run;
 *   chunks.trace   a loop of one block with its accesses over 2 chunks,
 *                  small once compressed.
 * usage: trace-seed DIR   (scripts/make-fuzz-corpus.sh runs it) */
#include <stdio.h>
#include <stdlib.h>

#include "trace.h"

static char err[512];

static void check(int ok)
{
	if (!ok) {
		fprintf(stderr, "trace-seed: %s\n", err);
		exit(1);
	}
}

static void append(struct trace_writer *w, struct trace_record r)
{
	check(trace_writer__append(w, &r, err, sizeof(err)) == 0);
}

int main(int argc, char **argv)
{
	char path[4096];
	if (argc != 2) {
		fprintf(stderr, "usage: trace-seed DIR\n");
		return 2;
	}
	struct trace_insn loop[12], tail[3];
	for (unsigned i = 0; i < 12; i++)
		loop[i] = (struct trace_insn){ 0x401000 + 3 * i, 3, 3 };
	for (unsigned i = 0; i < 3; i++)
		tail[i] = (struct trace_insn){ 0xffffffff81000000ull + 5 * i, 5, 0 };
	struct trace_block *b = trace_block__new(loop, 12, err, sizeof(err));
	struct trace_block *k = trace_block__new(tail, 3, err, sizeof(err));
	check(b && k);

	snprintf(path, sizeof(path), "%s/records.trace", argv[1]);
	struct trace_writer *w = trace_writer__create(path, 7, err, sizeof(err));
	check(w != NULL);
	append(w, (struct trace_record){ .kind = TRACE_INSN, .insn = { 0x400ff0, 2, 3 } });
	append(w, (struct trace_record){ .kind = TRACE_INSN, .insn = { 0x400ff2, 4, 3 } });
	append(w, (struct trace_record){ .kind = TRACE_EVENT,
					 .event = { .kind = TRACE_EV_SYSCALL, .a = 1, .b = 0x400ff2,
						    .c = 0x9000, .args = { 1, 2, 3, 4, 5, 6 } } });
	const struct trace_block_run runs[] = { { b, 0, 12 }, { k, 0, 3 }, { b, 4, 10 } };
	const struct trace_access acc[] = {
		{ 0x7ffc0000, 0x3000, 0x12, 0, 1, false },
		{ 0x7ffc0002, 0x3002, 0x1234, 0, 2, true },
		{ 0x7ffc0008, 0x3008, 0x12345678, 1, 4, false },
		{ 0x601000, 0x5000, 0x0123456789abcdefull, 11, 8, true },
		{ 0xffff888000001000ull, 0x1000, 0xff, 13, 8, false },
		{ 0x7ffc0010, 0x3010, 7, 15, 8, true },
		{ 0x7ffc0018, 0x3018, 8, 19, 8, false },
	};
	check(trace_writer__append_blocks(w, runs, 3, acc, 7, err, sizeof(err)) == 0);
	/* the run's last instruction's, after one with an access */
	append(w, (struct trace_record){ .kind = TRACE_MEM, .mem = { 0x7ffc0020, 0x3020, 9, 8, true } });
	append(w, (struct trace_record){ .kind = TRACE_EVENT,
					 .event = { .kind = TRACE_EV_INTERRUPT, .a = 0x20, .b = 0x40101e } });
	append(w, (struct trace_record){ .kind = TRACE_INSN, .insn = { 0x40101e, 1, 3 } });
	check(trace_writer__commit(w, err, sizeof(err)) == 0);

	snprintf(path, sizeof(path), "%s/chunks.trace", argv[1]);
	w = trace_writer__create(path, 8, err, sizeof(err));
	check(w != NULL);
	for (unsigned n = 0; n < 16000; n++) { /* just over a chunk */
		const struct trace_block_run run = { b, 0, 12 };
		const struct trace_access two[] = { { 0x7ffc0000, 0x3000, n % 4, 2, 8, false },
						    { 0x7ffc0000, 0x3000, n % 4 + 1, 9, 8, true } };
		check(trace_writer__append_blocks(w, &run, 1, two, 2, err, sizeof(err)) == 0);
	}
	check(trace_writer__commit(w, err, sizeof(err)) == 0);
	trace_block__free(b);
	trace_block__free(k);
	return 0;
}
