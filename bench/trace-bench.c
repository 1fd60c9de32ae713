/* The trace library's speed against its ceilings, on one set of records
 * and one set of bytes, in one run:
 *   - the writer (trace_writer__create, __append of every record,
 *     __commit) to a temporary file: records/s and MiB/s of raw bytes
 *     (the records as encoded, before lz4), pinned to one core with its
 *     thread (which encodes, compresses and writes), and with that thread
 *     free to use a second core;
 *   - the compression ratio, raw bytes / file bytes;
 *   - the same records through trace_writer__append_blocks, in batches
 *     as the replay makes them (blocks from runs of instructions that
 *     follow one another);
 *   - the reader's scan of both files, every record through
 *     trace_reader__next, on one core;
 *   - memcpy, LZ4_compress_default and LZ4_decompress_safe over the very
 *     raw bytes the writer produced, chunk by chunk as the writer and the
 *     reader do (the chunks are taken out of the file through the layout
 *     in trace/format.h; the rest uses only the public trace.h).
 * Every measurement is repeated until it has taken at least 0.5 s
 * (CLOCK_MONOTONIC); the table gives the mean.
 *
 *   trace-bench [TRACE|-] [MAX_RECORDS]
 * TRACE: a committed trace whose first MAX_RECORDS records (default 30e6)
 * are loaded; "-" or none: a synthetic stream of MAX_RECORDS records. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <lz4.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "trace.h"
#include "trace/format.h"

#define MIN_SECONDS 0.5
#define MIB (1024.0 * 1024.0)

static double now(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *err)
{
	fprintf(stderr, "trace-bench: %s%s%s\n", what, err ? ": " : "", err ? err : "");
	exit(1);
}

static void *xmalloc(size_t len)
{
	void *p = malloc(len ? len : 1);
	if (!p)
		die("out of memory", NULL);
	memset(p, 0, len); /* touched: page faults are not what is measured */
	return p;
}

/* ---- the records -------------------------------------------------------- */

static struct trace_record *load(const char *path, size_t max, size_t *n, uint64_t *total)
{
	char err[512];
	struct trace_reader *r = trace_reader__open(path, err, sizeof(err));
	if (!r)
		die(path, err);
	*total = trace_reader__info(r)->records;
	size_t cap = *total < max ? (size_t)*total : max;
	struct trace_record *v = xmalloc(cap * sizeof(*v));
	int rc = 0;
	*n = 0;
	while (*n < cap && (rc = trace_reader__next(r, &v[*n], err, sizeof(err))) == 1)
		(*n)++;
	if (rc < 0)
		die(path, err);
	trace_reader__close(r);
	return v;
}

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

/* A program's shape: 64 basic blocks of 3..12 instructions of 1..7 bytes;
 * a block is mostly followed by the next one (a loop over them) and now
 * and then by any other. About every other instruction accesses memory:
 * its stack (8 bytes, near a slowly moving stack pointer) or an array it
 * walks (4 or 8 bytes); a third of those are stores; values are mostly
 * small. Every ~100,000
 * instructions a system call (and its return), every ~1,000,000 a timer
 * interrupt. Deterministic. */
static struct trace_record *synthesize(size_t count)
{
	struct trace_record *v = xmalloc(count * sizeof(*v));
	uint64_t x = 88172645463325252ull, block_pc[64], sp = 0x7ffc0000f000, arr = 0x601000;
	uint8_t block_len[64];
	for (unsigned b = 0; b < 64; b++) {
		block_pc[b] = 0x401000 + (xorshift(&x) % 0x40000);
		block_len[b] = (uint8_t)(3 + xorshift(&x) % 10);
	}
	unsigned block = 0, pos = 0;
	uint64_t pc = block_pc[0], insns = 0;
	size_t i = 0;
#define PADDR(va) ((((va) >> 12) * 0x9e3779b1u & 0xffff) << 12 | ((va) & 0xfff))
	while (i < count) {
		struct trace_record *r = &v[i++];
		uint64_t h = xorshift(&x);
		r->kind = TRACE_INSN;
		r->insn.pc = pc;
		r->insn.size = (uint8_t)(1 + (pc * 0x9e3779b97f4a7c15ull >> 61) % 7);
		r->insn.cpl = 3;
		insns++;
		pc += r->insn.size;
		if (++pos == block_len[block]) {
			block = h % 8 ? (block + 1) % 64 : (unsigned)(h >> 8) % 64;
			pos = 0;
			pc = block_pc[block];
		}
		if (i < count && (h >> 16) % 2) {
			struct trace_record *m = &v[i++];
			bool stack = (h >> 17) % 5 < 3;
			m->kind = TRACE_MEM;
			if (stack) {
				sp += (h >> 20) % 64 == 0 ? ((h >> 26) % 2 ? 64 : (uint64_t)-64) : 0;
				m->mem.vaddr = sp - 8 * ((h >> 30) % 8);
				m->mem.size = 8;
			} else {
				arr = 0x601000 + (arr - 0x601000 + 8) % (1 << 20);
				m->mem.vaddr = arr;
				m->mem.size = (h >> 34) % 2 ? 8 : 4;
			}
			m->mem.paddr = PADDR(m->mem.vaddr);
			m->mem.value = (h >> 35) % 16 ? (h >> 40) % 1000 : h;
			if (m->mem.size == 4)
				m->mem.value &= 0xffffffff;
			m->mem.write = (h >> 38) % 3 == 0;
		}
		if (i < count && insns % 100000 == 0) {
			struct trace_record *e = &v[i++];
			e->kind = TRACE_EVENT;
			e->event.kind = TRACE_EV_SYSCALL;
			e->event.a = h % 300, e->event.b = pc, e->event.c = 0x1234000;
			for (unsigned k = 0; k < 6; k++)
				e->event.args[k] = xorshift(&x) % 4096;
			if (i < count) {
				e = &v[i++];
				e->kind = TRACE_EVENT;
				e->event.kind = TRACE_EV_SYSRET;
				e->event.b = pc, e->event.c = 0x1234000;
			}
		}
		if (i < count && insns % 1000000 == 0) {
			struct trace_record *e = &v[i++];
			e->kind = TRACE_EVENT;
			e->event.kind = TRACE_EV_INTERRUPT;
			e->event.a = 0x20, e->event.b = pc;
		}
	}
#undef PADDR
	return v;
}

/* ---- the measurements --------------------------------------------------- */

/* The records as the replay hands them over: blocks of instructions that
 * follow one another (one per distinct start and length), runs of them
 * with their accesses in batches (trace_writer__append_blocks), events one
 * by one. */
#define BATCH_RUNS 1024
#define BATCH_ACCESSES 2048
struct batch {
	size_t first_run, nruns, first_acc, nacc; /* in runs[] and acc[] */
	const struct trace_record *single; /* after them, or NULL */
};
struct blocks {
	struct trace_block **block;     /* the distinct ones, by start and length */
	uint64_t *pc;
	unsigned *len;
	size_t nblocks;
	struct trace_block_run *runs;
	struct trace_access *acc;
	struct batch *batch;
	size_t nbatch;
};

struct ctx {
	const struct trace_record *recs;
	size_t n;
	char path[PATH_MAX];
	uint64_t sum;                   /* of what the reader returned */
	/* the raw bytes, chunk by chunk */
	uint8_t *raw, *copy, *file, *out;
	size_t raw_len, nchunks, lz4_bytes;
	uint32_t *raw_off, *raw_size;   /* of each chunk, in raw */
	size_t *comp_off;               /* of each chunk's lz4 bytes, in file */
	uint32_t *comp_size;
	struct blocks blocks;
};

struct result {
	double wall, cpu;               /* per run */
	double caller;                  /* of that, the calling thread's (not the writer's own) */
	unsigned runs;
};

static struct result repeat(void (*fn)(struct ctx *), struct ctx *c)
{
	struct result r = { 0 };
	double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID), w;
	double t0 = now(CLOCK_THREAD_CPUTIME_ID);
	do {
		fn(c);
		r.runs++;
	} while ((w = now(CLOCK_MONOTONIC) - w0) < MIN_SECONDS);
	r.wall = w / r.runs;
	r.cpu = (now(CLOCK_PROCESS_CPUTIME_ID) - c0) / r.runs;
	r.caller = (now(CLOCK_THREAD_CPUTIME_ID) - t0) / r.runs;
	return r;
}

static void run_writer(struct ctx *c)
{
	char err[512];
	struct trace_writer *w = trace_writer__create(c->path, 0, err, sizeof(err));
	if (!w)
		die("writer", err);
	for (size_t i = 0; i < c->n; i++)
		if (trace_writer__append(w, &c->recs[i], err, sizeof(err)) != 0)
			die("writer", err);
	if (trace_writer__commit(w, err, sizeof(err)) != 0)
		die("writer", err);
}

static void run_writer_blocks(struct ctx *c)
{
	char err[512];
	const struct blocks *b = &c->blocks;
	struct trace_writer *w = trace_writer__create(c->path, 0, err, sizeof(err));
	if (!w)
		die("writer", err);
	for (size_t i = 0; i < b->nbatch; i++) {
		const struct batch *t = &b->batch[i];
		if (trace_writer__append_blocks(w, b->runs + t->first_run, (unsigned)t->nruns,
						b->acc + t->first_acc, (unsigned)t->nacc, err,
						sizeof(err)) != 0 ||
		    (t->single && trace_writer__append(w, t->single, err, sizeof(err)) != 0))
			die("writer", err);
	}
	if (trace_writer__commit(w, err, sizeof(err)) != 0)
		die("writer", err);
}

/* The block of n instructions at insns, made once. */
static struct trace_block *block_of(struct blocks *b, const struct trace_insn *insns,
				    unsigned n, size_t cap)
{
	uint64_t h = (insns[0].pc * 0x9e3779b97f4a7c15ull ^ n) % cap;
	for (;; h = (h + 1) % cap) {
		struct trace_block *x = b->block[h];
		if (!x)
			break;
		if (b->pc[h] == insns[0].pc && b->len[h] == n)
			return x;
	}
	char err[256];
	if (!(b->block[h] = trace_block__new(insns, n, err, sizeof(err))))
		die("block", err);
	b->pc[h] = insns[0].pc;
	b->len[h] = n;
	if (++b->nblocks * 2 > cap)
		die("too many distinct blocks", NULL);
	return b->block[h];
}

static void make_blocks(struct ctx *c)
{
	struct blocks *b = &c->blocks;
	size_t cap = 1 << 20;
	b->block = xmalloc(cap * sizeof(*b->block));
	b->pc = xmalloc(cap * sizeof(*b->pc));
	b->len = xmalloc(cap * sizeof(*b->len));
	b->runs = xmalloc(c->n * sizeof(*b->runs));
	b->acc = xmalloc(c->n * sizeof(*b->acc));
	b->batch = xmalloc((c->n + 1) * sizeof(*b->batch));
	struct trace_insn *ins = xmalloc(c->n * sizeof(*ins));
	size_t nruns = 0, nacc = 0, ni = 0, start = 0;
	uint32_t batch_insns = 0;
	struct batch *t = &b->batch[0];
	*t = (struct batch){ 0 };
#define CLOSE_RUN() do { if (ni > start) { \
		b->runs[nruns++] = (struct trace_block_run){ \
			block_of(b, &ins[start], (unsigned)(ni - start), cap), 0, \
			(unsigned)(ni - start) }; \
		t->nruns++; batch_insns += (uint32_t)(ni - start); start = ni; } } while (0)
#define CLOSE_BATCH(rec) do { t->single = (rec); t = &b->batch[++b->nbatch]; \
		*t = (struct batch){ .first_run = nruns, .first_acc = nacc }; \
		batch_insns = 0; } while (0)
	for (size_t i = 0; i < c->n; i++) {
		const struct trace_record *r = &c->recs[i];
		if (r->kind == TRACE_INSN) {
			/* a translator's blocks end at a jump, and hold 512 at most */
			if (ni > start && (r->insn.pc != ins[ni - 1].pc + ins[ni - 1].size ||
					   ni - start == 512))
				CLOSE_RUN();
			if (t->nruns >= BATCH_RUNS - 1 || t->nacc >= BATCH_ACCESSES) {
				CLOSE_RUN();
				CLOSE_BATCH(NULL);
			}
			ins[ni++] = (struct trace_insn){ r->insn.pc, r->insn.size, r->insn.cpl };
		} else if (r->kind == TRACE_MEM && batch_insns + (ni - start) > 0) {
			b->acc[nacc++] = (struct trace_access){
				r->mem.vaddr, r->mem.paddr, r->mem.value,
				batch_insns + (uint32_t)(ni - start) - 1, r->mem.size, r->mem.write };
			t->nacc++;
		} else { /* an event, or an access whose instruction went before */
			CLOSE_RUN();
			CLOSE_BATCH(r);
		}
	}
	CLOSE_RUN();
	CLOSE_BATCH(NULL);
#undef CLOSE_RUN
#undef CLOSE_BATCH
	free(ins);
}

static void run_reader(struct ctx *c)
{
	char err[512];
	struct trace_record rec;
	int rc;
	struct trace_reader *r = trace_reader__open(c->path, err, sizeof(err));
	if (!r)
		die("reader", err);
	while ((rc = trace_reader__next(r, &rec, err, sizeof(err))) == 1)
		c->sum += rec.icount + rec.kind;
	if (rc < 0)
		die("reader", err);
	trace_reader__close(r);
}

static void run_memcpy(struct ctx *c)
{
	memcpy(c->copy, c->raw, c->raw_len);
	__asm__ volatile("" : : "r"(c->copy) : "memory");
}

/* as the writer: each chunk into one reused output buffer */
static void run_lz4_compress(struct ctx *c)
{
	int cap = LZ4_compressBound(TRACE_CHUNK_RAW_MAX);
	c->lz4_bytes = 0;
	for (size_t k = 0; k < c->nchunks; k++) {
		int len = LZ4_compress_default((const char *)c->raw + c->raw_off[k], (char *)c->out,
					       (int)c->raw_size[k], cap);
		if (len <= 0)
			die("LZ4_compress_default failed", NULL);
		c->lz4_bytes += (size_t)len;
	}
}

/* as the reader: each of the file's chunks into one reused buffer */
static void run_lz4_decompress(struct ctx *c)
{
	for (size_t k = 0; k < c->nchunks; k++)
		if (LZ4_decompress_safe((const char *)c->file + c->comp_off[k], (char *)c->out,
					(int)c->comp_size[k], TRACE_CHUNK_RAW_MAX) != (int)c->raw_size[k])
			die("LZ4_decompress_safe failed", NULL);
}

/* The file's chunks (trace/format.h): their compressed bytes where they
 * lie, and their raw bytes decompressed back to back. */
static void split_chunks(struct ctx *c, const struct trace_info *info)
{
	FILE *f = fopen(c->path, "rb");
	if (!f)
		die(c->path, strerror(errno));
	c->file = xmalloc(info->file_bytes);
	if (fread(c->file, 1, info->file_bytes, f) != info->file_bytes)
		die(c->path, "short read");
	fclose(f);
	c->nchunks = info->chunks;
	c->raw_len = info->raw_bytes;
	c->raw = xmalloc(c->raw_len);
	c->copy = xmalloc(c->raw_len);
	c->out = xmalloc((size_t)LZ4_compressBound(TRACE_CHUNK_RAW_MAX));
	c->raw_off = xmalloc(c->nchunks * sizeof(*c->raw_off));
	c->raw_size = xmalloc(c->nchunks * sizeof(*c->raw_size));
	c->comp_off = xmalloc(c->nchunks * sizeof(*c->comp_off));
	c->comp_size = xmalloc(c->nchunks * sizeof(*c->comp_size));
	size_t off = TRACE_HDR_SIZE, raw_at = 0;
	for (size_t k = 0; k < c->nchunks; k++) {
		const uint8_t *h = c->file + off;
		if (off + TRACE_CHUNK_HDR_SIZE > info->file_bytes || memcmp(h, TRACE_CHUNK_MAGIC, 4))
			die(c->path, "chunk header not where expected");
		c->raw_size[k] = trace__get32(h + 4);
		c->comp_size[k] = trace__get32(h + 8);
		c->comp_off[k] = off + TRACE_CHUNK_HDR_SIZE;
		c->raw_off[k] = (uint32_t)raw_at;
		if (raw_at + c->raw_size[k] > c->raw_len ||
		    LZ4_decompress_safe((const char *)c->file + c->comp_off[k],
					(char *)c->raw + raw_at, (int)c->comp_size[k],
					(int)c->raw_size[k]) != (int)c->raw_size[k])
			die(c->path, "chunk does not decompress");
		raw_at += c->raw_size[k];
		off = c->comp_off[k] + c->comp_size[k];
	}
	if (raw_at != c->raw_len)
		die(c->path, "chunks' raw bytes differ from the footer's count");
}

static void row(const char *name, struct result r, double records, double raw_mib,
		double memcpy_mibs, double lz4_mibs, const char *note)
{
	double mibs = raw_mib / r.wall;
	printf("%-44s %7.3f %5u", name, r.wall, r.runs);
	if (records > 0)
		printf(" %11.4g", records / r.wall);
	else
		printf(" %11s", "-");
	printf(" %10.0f %9.3f", mibs, mibs / memcpy_mibs);
	if (lz4_mibs > 0)
		printf(" %8.3f", mibs / lz4_mibs);
	else
		printf(" %8s", "-");
	printf("  %s\n", note);
}

static struct trace_info file_info(const char *path)
{
	char err[512];
	struct trace_reader *r = trace_reader__open(path, err, sizeof(err));
	if (!r)
		die("reader", err);
	struct trace_info info = *trace_reader__info(r);
	trace_reader__close(r);
	return info;
}

int main(int argc, char **argv)
{
	const char *trace = argc > 1 && strcmp(argv[1], "-") ? argv[1] : NULL;
	size_t max = argc > 2 ? (size_t)strtoull(argv[2], NULL, 0) : 30000000;
	struct ctx c = { 0 };
	uint64_t total = 0;
	char dir[PATH_MAX];

	/* one core for everything (the writer's thread inherits it) */
	cpu_set_t all, one;
	if (sched_getaffinity(0, sizeof(all), &all) != 0)
		die("sched_getaffinity", strerror(errno));
	int cpu = 0;
	while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &all))
		cpu++;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);

	struct trace_record *recs = trace ? load(trace, max, &c.n, &total)
					  : synthesize(c.n = max);
	c.recs = recs;
	size_t kinds[4] = { 0 }, fixed = 0;
	for (size_t i = 0; i < c.n; i++) {
		kinds[recs[i].kind]++;
		/* format 2's fixed-size records: the usual measure of a trace's
		 * raw volume */
		fixed += recs[i].kind == TRACE_INSN ? TRACE_INSN_SIZE
			 : recs[i].kind == TRACE_EVENT && recs[i].event.kind == TRACE_EV_SYSCALL
				 ? TRACE_SYSCALL_SIZE
				 : TRACE_EVENT_SIZE; /* a v2 access or an event */
	}
	snprintf(dir, sizeof(dir), "%s/trace-bench.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		die(dir, strerror(errno));
	snprintf(c.path, sizeof(c.path), "%s/000000.trace", dir);

	/* the writer, free then on one core, after a run that warms the
	 * allocator and the file system; the file of the last run stays */
	make_blocks(&c);
	run_writer(&c);
	struct result w2 = repeat(run_writer, &c);
	struct result b2 = repeat(run_writer_blocks, &c);
	if (sched_setaffinity(0, sizeof(one), &one) != 0)
		die("sched_setaffinity", strerror(errno));
	struct result w1 = repeat(run_writer, &c);
	struct trace_info info_rec = file_info(c.path);
	struct result rd_rec = repeat(run_reader, &c);
	/* last: its file, as a replay writes them, is the one measured */
	struct result b1 = repeat(run_writer_blocks, &c);
	struct trace_info info = file_info(c.path);
	struct result rd = repeat(run_reader, &c);
	split_chunks(&c, &info);
	unlink(c.path);
	rmdir(dir);
	struct result mc = repeat(run_memcpy, &c);
	struct result lc = repeat(run_lz4_compress, &c);
	struct result ld = repeat(run_lz4_decompress, &c);

	double mib = (double)c.raw_len / MIB, n = (double)c.n;
	double memcpy_mibs = mib / mc.wall, lc_mibs = mib / lc.wall, ld_mibs = mib / ld.wall;
	if (trace)
		printf("records: %s, first %zu of %" PRIu64 "\n", trace, c.n, total);
	else
		printf("records: synthetic, %zu\n", c.n);
	printf("  %zu instructions, %zu memory accesses (%.2f per instruction), %zu events\n",
	       kinds[TRACE_INSN], kinds[TRACE_MEM],
	       kinds[TRACE_INSN] ? (double)kinds[TRACE_MEM] / (double)kinds[TRACE_INSN] : 0.0,
	       kinds[TRACE_EVENT]);
	double mib_rec = (double)info_rec.raw_bytes / MIB;
	printf("  raw (encoded, before lz4), as a replay writes them (append_blocks): %.1f MiB, "
	       "%.2f bytes/record, in %zu chunks; file %.1f MiB\n", mib, (double)c.raw_len / n,
	       c.nchunks, (double)info.file_bytes / MIB);
	printf("  written record by record (append): %.1f MiB raw, file %.1f MiB\n", mib_rec,
	       (double)info_rec.file_bytes / MIB);
	printf("  compression ratio raw/file %.2fx (LZ4_compress_default here: %.2fx)\n",
	       (double)c.raw_len / (double)info.file_bytes,
	       (double)c.raw_len / (double)c.lz4_bytes);
	printf("  as fixed-size records (11/27/75 bytes, format 2) %.1f MiB\n\n",
	       (double)fixed / MIB);
	printf("%-44s %7s %5s %11s %10s %9s %8s\n", "one core unless said; over the raw bytes",
	       "s/run", "runs", "records/s", "MiB/s raw", "x memcpy", "x lz4");
	row("memcpy (ceiling)", mc, 0, mib, memcpy_mibs, 0, "");
	row("LZ4_compress_default, per chunk", lc, 0, mib, memcpy_mibs, 0, "");
	row("LZ4_decompress_safe, per chunk", ld, 0, mib, memcpy_mibs, 0, "");
	char note[160];
	snprintf(note, sizeof(note), "CPU %.3f s/run; x lz4 = vs compress", w1.cpu);
	row("writer: create, append, commit (fsync)", w1, n, mib_rec, memcpy_mibs, lc_mibs, note);
	snprintf(note, sizeof(note), "CPU %.3f s/run, the caller's thread %.3f", w2.cpu,
		 w2.caller);
	row("writer, its thread on a 2nd core", w2, n, mib_rec, memcpy_mibs, lc_mibs, note);
	snprintf(note, sizeof(note), "CPU %.3f s/run; %zu blocks", b1.cpu, c.blocks.nblocks);
	row("writer: append_blocks, as the replay", b1, n, mib, memcpy_mibs, lc_mibs, note);
	snprintf(note, sizeof(note), "CPU %.3f s/run, the caller's thread %.3f", b2.cpu,
		 b2.caller);
	row("append_blocks, its thread on a 2nd core", b2, n, mib, memcpy_mibs, lc_mibs, note);
	double gibs = mib / rd.wall / 1024, fixed_gibs = (double)fixed / MIB / rd.wall / 1024;
	snprintf(note, sizeof(note), "x lz4 = vs decompress; %.2f GiB/s", gibs);
	row("reader scan: a replay's file", rd, n, mib, memcpy_mibs, ld_mibs, note);
	snprintf(note, sizeof(note), "%.2f GiB/s", mib_rec / rd_rec.wall / 1024);
	row("reader scan: the file appended record-wise", rd_rec, n, mib_rec, memcpy_mibs, 0, note);
	printf("\nreader target >= 1 GiB/s of raw events on one core, a replay's file: %.2f GiB/s "
	       "as fixed-size records (the raw events): %s; %.2f GiB/s of its encoded bytes\n",
	       fixed_gibs, fixed_gibs >= 1 ? "met" : "NOT met", gibs);
	printf("(reader checksum %" PRIu64 ")\n", c.sum & 0xffff);
	free(recs), free(c.raw), free(c.copy), free(c.file), free(c.out);
	free(c.raw_off), free(c.raw_size), free(c.comp_off), free(c.comp_size);
	return 0;
}
