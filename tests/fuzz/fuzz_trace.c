/* libFuzzer target for the trace reader (trace_reader__open_memory, the
 * one parser of trace files; trace_reader__open maps a file and calls the
 * same code): the frame, the index, every chunk, every record, and seeks.
 *
 * The fuzz build defines FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, under
 * which the reader computes checksums but does not refuse a mismatch, so
 * that mutations reach the index, lz4 and record decoding behind them.
 *
 * Properties besides the sanitizers': an error names the trace and leaves
 * a message; records come out with non-decreasing icounts, and as many
 * instruction records as the footer promises; every record formats within
 * its buffer.
 *
 * Seed corpus: corpus/trace/, small committed traces. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reading is linear in the input; larger inputs only slow the fuzzer. */
#define FUZZ_MAX_INPUT (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512] = "", line[256];
	struct trace_record rec;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	struct trace_reader *r = trace_reader__open_memory(data, size, "fuzz.trace", err,
							   sizeof(err));
	if (!r) {
		if (!memchr(err, '\0', sizeof(err)) || !strstr(err, "fuzz.trace"))
			abort();
		return 0;
	}
	const struct trace_info info = *trace_reader__info(r);
	uint64_t last = 0, insns = 0;
	int rc;
	while ((rc = trace_reader__next(r, &rec, err, sizeof(err))) == 1) {
		if (rec.icount < last)
			abort();
		last = rec.icount;
		insns += rec.kind == TRACE_INSN;
		trace_record__format(&rec, line, sizeof(line));
		if (!memchr(line, '\0', sizeof(line)))
			abort();
	}
	if (rc == 0 && insns != info.instructions)
		abort();
	if (rc < 0 && !strstr(err, "fuzz.trace"))
		abort();
	/* Seeks land on the instruction asked for, or fail with a message. */
	const uint64_t at[] = { 0, info.instructions / 2, info.instructions ? info.instructions - 1 : 0 };
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		if (trace_reader__seek(r, at[i], err, sizeof(err)) != 0)
			continue;
		if (trace_reader__next(r, &rec, err, sizeof(err)) == 1 && at[i] &&
		    (rec.kind != TRACE_INSN || rec.icount != at[i]))
			abort();
	}
	trace_reader__close(r);
	return 0;
}
