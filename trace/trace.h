/* simuboost traces: what a replayed interval executed, instruction by
 * instruction, with its memory accesses and events, in one file per
 * interval.
 *
 * A trace is a stream of records in execution order: an instruction
 * record, then the memory accesses and events that belong to it. Records
 * are numbered by `icount`, the number of instructions executed before
 * theirs, from 0 at the start of the interval, so a trace of interval K
 * counts what the replay of interval K counts. Concatenated in interval
 * order, the traces of a recording are the whole run; trace_run__open
 * reads them as one stream, numbered from the start of the run.
 *
 * Files are chunked, each chunk lz4-compressed and checksummed (XXH3), and
 * end with an index of chunk start counts, so a reader seeks by icount
 * without decompressing what it skips. A file appears under its name only
 * once complete (trace_writer__commit); a reader names the file and chunk
 * of anything wrong. */
#ifndef SIMUBOOST_TRACE_H
#define SIMUBOOST_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACE_FORMAT_VERSION 4u /* 2: system calls carry their arguments; 3: compact
				  * memory records; 4: runs of blocks */

enum trace_kind {
	TRACE_INSN = 1,
	TRACE_MEM,
	TRACE_EVENT,
};

enum trace_event_kind {
	TRACE_EV_INTERRUPT = 1, /* a = vector, b = RIP it interrupted */
	TRACE_EV_EXCEPTION,     /* a = vector, b = RIP, c = error code */
	TRACE_EV_PIO_READ,      /* a = port, c = value, size */
	TRACE_EV_PIO_WRITE,
	TRACE_EV_MMIO_READ,     /* a = guest-physical address, c = value, size */
	TRACE_EV_MMIO_WRITE,
	TRACE_EV_SYSCALL,       /* a = RAX (the number), b = RIP of the SYSCALL, c = CR3,
				 * args = RDI, RSI, RDX, R10, R8, R9 */
	TRACE_EV_SYSRET,        /* a = RAX (the result), b = RIP returned to, c = CR3 */
	TRACE_EV_CR3,           /* a = new CR3, b = old CR3 */
	TRACE_EV_AD_BITS,       /* a = physical address of an 8-byte word that only the
				 * MMU's accessed/dirty bits changed, b = its value at
				 * the interval's start, c = at its end; all at the end */
	TRACE_EV__COUNT
};

struct trace_record {
	enum trace_kind kind;
	uint64_t icount;        /* instructions executed before this record's */
	union {
		struct {
			uint64_t pc;
			uint8_t size;   /* bytes, 1..15 */
			uint8_t cpl;    /* privilege level, 0..3 */
		} insn;
		struct {
			uint64_t vaddr, paddr;
			uint64_t value; /* the bytes read or written, little-endian */
			uint8_t size;   /* 1, 2, 4 or 8 */
			bool write;
		} mem;
		struct {
			enum trace_event_kind kind;
			uint64_t a, b, c;
			uint8_t size;   /* access width of port and MMIO events */
			uint64_t args[6]; /* TRACE_EV_SYSCALL only */
		} event;
	};
};

const char *trace_event_kind__name(enum trace_event_kind kind);
/* One readable line (no newline), as `simuboost trace show` prints it. */
void trace_record__format(const struct trace_record *rec, char *out, size_t outlen);

/* ---- writing ------------------------------------------------------------ */

struct trace_writer;
/* Starts the trace of `interval` at path; nothing appears at path until
 * trace_writer__commit. */
struct trace_writer *trace_writer__create(const char *path, uint32_t interval, char *err,
					  size_t errlen);
/* Appends a record; its icount is the writer's (ignored in rec). A memory
 * or event record belongs to the last instruction appended. -1 with err on
 * a bad record (size, kind), which is left out, or once writing failed,
 * after which the writer only aborts: its own thread encodes and writes
 * records after the call returns, and a failure there (a full disk) shows
 * at a later call or at commit. */
int trace_writer__append(struct trace_writer *w, const struct trace_record *rec, char *err,
			 size_t errlen);
/* An instruction, as a block holds them. */
struct trace_insn {
	uint64_t pc;
	uint8_t size, cpl;
};
/* A block: instructions that run one after the other, each at the pc
 * where the one before ends, as a translator makes them; at most 4096. A
 * trace file defines it once per chunk, and a run of its instructions
 * costs a record however many they are. It is used by one writer at a
 * time, which notes in it the chunk that defines it, and lives until that
 * writer's commit or abort: the writer's thread encodes runs after
 * trace_writer__append_blocks has returned. */
struct trace_block;
struct trace_block *trace_block__new(const struct trace_insn *insns, unsigned n, char *err,
				     size_t errlen);
void trace_block__free(struct trace_block *b);
/* Instructions from..to-1 of a block. */
struct trace_block_run {
	struct trace_block *block;
	unsigned from, to;
};
/* A memory access, after the instruction it numbers (see below). */
struct trace_access {
	uint64_t vaddr, paddr, value;
	uint32_t insn;
	uint8_t size;           /* 1, 2, 4 or 8 */
	bool write;
};
/* Appends the instructions of runs[0..nruns), in order, each followed by
 * its memory accesses: acc[0..m), in order, acc[k].insn numbering its
 * instruction among all the runs' (from 0). The records that
 * trace_writer__append of each would make, for the writer's busiest
 * caller, in far fewer bytes: a run of a block is one record. The runs
 * are checked here; the accesses in the writer's thread, so a bad one,
 * like a failed write, fails a later call or the commit, which names its
 * record. */
int trace_writer__append_blocks(struct trace_writer *w, const struct trace_block_run *runs,
				unsigned nruns, const struct trace_access *acc, unsigned m,
				char *err, size_t errlen);
uint64_t trace_writer__icount(const struct trace_writer *w);
/* Writes the last chunk, the index and the footer, syncs, and publishes
 * the file at its path. Frees the writer, also on error. */
int trace_writer__commit(struct trace_writer *w, char *err, size_t errlen);
/* Drops everything written; path is untouched. */
void trace_writer__abort(struct trace_writer *w);

/* ---- reading ------------------------------------------------------------ */

struct trace_info {
	uint32_t interval;
	uint64_t instructions;  /* the icount after the last record */
	uint64_t records;
	uint64_t chunks;
	uint64_t raw_bytes;     /* the records as encoded, before lz4 */
	uint64_t file_bytes;
};

struct trace_reader;
/* Opens a committed trace and checks its header, footer and index. */
struct trace_reader *trace_reader__open(const char *path, char *err, size_t errlen);
/* The same over a trace held in memory (not copied), for the fuzzer. */
struct trace_reader *trace_reader__open_memory(const void *buf, size_t len, const char *name,
					       char *err, size_t errlen);
const struct trace_info *trace_reader__info(const struct trace_reader *r);
/* The next record: 1, 0 at the end, -1 with err on a corrupt chunk. */
int trace_reader__next(struct trace_reader *r, struct trace_record *rec, char *err,
		       size_t errlen);
/* Positions at the first record of the instruction numbered icount (or
 * at the end). */
int trace_reader__seek(struct trace_reader *r, uint64_t icount, char *err, size_t errlen);
void trace_reader__close(struct trace_reader *r);

/* ---- a whole run -------------------------------------------------------- */

/* The traces dir/NNNNNN.trace of intervals first..last-1 as one stream,
 * with icounts from the start of interval `first`. */
struct trace_run;
struct trace_run *trace_run__open(const char *dir, uint32_t first, uint32_t last, char *err,
				  size_t errlen);
int trace_run__next(struct trace_run *run, struct trace_record *rec, uint32_t *interval,
		    char *err, size_t errlen);
void trace_run__close(struct trace_run *run);
/* dir/NNNNNN.trace */
void trace__path(char *out, size_t outlen, const char *dir, uint32_t interval);

#endif
