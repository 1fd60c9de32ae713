/* simuboost analysis plugins: the interface a plugin implements.
 *
 * An analysis is a shared object exporting
 *
 *     const struct sb_analysis *simuboost_analysis(void);
 *
 * and built against this header only (plus trace.h for the records). The
 * same plugin runs online, inside the simulation node while an interval
 * replays (`simuboost replay|simulate ... --analysis x.so,ARGS`), and
 * offline over stored traces (`simuboost analyze REC --analysis x.so,ARGS`);
 * it sees the same records in the same order both ways.
 *
 * Results are built per interval and merged in order. A *state* is the
 * result of a contiguous range of intervals. The host creates an empty
 * state, then for each interval k of its range calls interval_begin,
 * the record callbacks, and interval_end. A parallel run gives every
 * interval its own state (in its own process or thread) and merges them
 * left to right; a serial run passes every interval through one state. The
 * contract is that both give the same report, byte for byte:
 *
 *     report(merge(S[a,b), S[b,c))) == report(S[a,c))
 *
 * States cross process boundaries as bytes (save, load), so a state must
 * not point into the process that made it. A plugin keeps everything in
 * its plugin object and its states, with no globals: several runs may use
 * it at once from different threads (each state from one thread).
 *
 * Records (struct trace_record, trace.h) carry icount: the instructions
 * of the interval executed before the record's instruction. A memory or
 * event record belongs to the instruction record before it.
 *
 * API history: 1 is the first. */
#ifndef SIMUBOOST_ANALYSIS_H
#define SIMUBOOST_ANALYSIS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

#define SB_ANALYSIS_API_VERSION 1u

/* Guest RAM at the end of an interval: what the checkpoint that ends it
 * holds. Pages are numbered as checkpoints number them (guest RAM offset
 * / 4096; for guests below 3 GiB, the guest-physical page number). */
struct sb_memory {
	uint64_t pages;
	/* Copies page gpn (4096 bytes) into out: 0, or -1 if it cannot be
	 * read (the host then reports the run as failed). */
	int (*read_page)(const struct sb_memory *m, uint64_t gpn, void *out);
	void *host;
};

#define SB_ANALYSIS_MEMORY 1u /* interval_end wants the guest's memory */

struct sb_analysis {
	uint32_t api_version;     /* SB_ANALYSIS_API_VERSION */
	const char *name;         /* [a-z0-9_-], at most 32: names its outputs */
	uint32_t flags;           /* SB_ANALYSIS_* */

	/* Parses the arguments (the text after the first comma of the
	 * --analysis spec, "" if none) into a plugin object; NULL with a
	 * message in err if they are bad. */
	void *(*create)(const char *args, char *err, size_t errlen);
	void (*destroy)(void *plugin);

	/* A state that has seen no interval yet. NULL: out of memory. */
	void *(*state_new)(void *plugin);
	void (*state_free)(void *plugin, void *state);

	void (*interval_begin)(void *plugin, void *state, uint32_t interval);
	/* The records, by kind. A NULL callback is not called, and the
	 * online host does not instrument for records no plugin wants. */
	void (*insn)(void *state, const struct trace_record *rec);
	void (*mem)(void *state, const struct trace_record *rec);
	void (*event)(void *state, const struct trace_record *rec);
	/* mem is the guest's memory at the interval's end, if the plugin has
	 * SB_ANALYSIS_MEMORY, else NULL. 0, or -1 with err. */
	int (*interval_end)(void *plugin, void *state, uint32_t interval, const struct sb_memory *mem,
			    char *err, size_t errlen);

	/* Serializes a state; the host adds a version, length and checksum
	 * around the bytes and stores them atomically. 0, or -1. */
	int (*save)(void *plugin, const void *state, FILE *out);
	/* The state save wrote; NULL with err if the bytes make no sense. */
	void *(*load)(void *plugin, FILE *in, char *err, size_t errlen);
	/* into = into followed by next, where next's range starts where
	 * into's ends. The host frees next afterwards. 0, or -1 with err. */
	int (*merge)(void *plugin, void *into, const void *next, char *err, size_t errlen);
	/* The result, as text (or JSON, CSV: the plugin's choice). 0, or -1. */
	int (*report)(void *plugin, const void *state, FILE *out);
};

/* For create: the value of a "KEY=N" argument in args ("a=1,b=2"): 1 if
 * found and a number above 0, 0 if KEY is absent, -1 if malformed. */
static inline int sb_analysis_arg_uint(const char *args, const char *key, unsigned long *out)
{
	size_t klen = strlen(key);
	for (const char *a = args; *a;) {
		const char *end = strchr(a, ',');
		size_t len = end ? (size_t)(end - a) : strlen(a);
		if (len > klen && !strncmp(a, key, klen) && a[klen] == '=') {
			char *stop;
			unsigned long v = strtoul(a + klen + 1, &stop, 10);
			if (stop != a + len || v == 0 || a[klen + 1] == '-')
				return -1;
			*out = v;
			return 1;
		}
		a += len + (end ? 1 : 0);
	}
	return 0;
}

/* The symbol the host looks up. */
typedef const struct sb_analysis *(*sb_analysis_entry_fn)(void);
#define SB_ANALYSIS_ENTRY "simuboost_analysis"

#endif
