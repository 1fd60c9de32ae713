/* trace/: write, commit, read back, seek, concatenate, and refuse damage. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "format.h"
#include "trace.h"

static char err[512];

struct fixture {
	char dir[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_trace.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/* Record i of a deterministic stream: mostly instructions in a loop, a
 * load or store every third, an event now and then. */
static struct trace_record sample(uint64_t i)
{
	struct trace_record r = { 0 };
	if (i % 3 == 1) {
		r.kind = TRACE_MEM;
		r.mem.vaddr = 0x7fff0000 + (i % 512) * 8;
		r.mem.paddr = 0x200000 + (i % 512) * 8;
		r.mem.value = i * 0x9e3779b97f4a7c15ull;
		r.mem.size = 8;
		r.mem.write = i % 2;
	} else if (i % 1000 == 750) {
		r.kind = TRACE_EVENT;
		r.event.kind = TRACE_EV_SYSCALL;
		r.event.a = i % 300;
		r.event.b = 0x401000 + i % 64;
		r.event.c = 0x9000;
		for (unsigned k = 0; k < 6; k++)
			r.event.args[k] = i * (k + 1);
	} else if (i % 1000 == 500) {
		r.kind = TRACE_EVENT;
		r.event.kind = TRACE_EV_INTERRUPT;
		r.event.a = 0x20;
		r.event.b = 0x401000 + i % 64;
	} else {
		r.kind = TRACE_INSN;
		r.insn.pc = 0x401000 + (i % 64) * 4;
		r.insn.size = 4;
		r.insn.cpl = i % 7 == 0 ? 0 : 3;
	}
	return r;
}

static void write_trace(const char *path, uint32_t interval, uint64_t n)
{
	struct trace_writer *w = trace_writer__create(path, interval, err, sizeof(err));
	assert_non_null(w);
	for (uint64_t i = 0; i < n; i++) {
		struct trace_record r = sample(i);
		assert_int_equal(trace_writer__append(w, &r, err, sizeof(err)), 0);
	}
	assert_int_equal(trace_writer__commit(w, err, sizeof(err)), 0);
}

static void assert_same(const struct trace_record *a, const struct trace_record *b)
{
	assert_int_equal(a->kind, b->kind);
	switch (a->kind) {
	case TRACE_INSN:
		assert_true(a->insn.pc == b->insn.pc);
		assert_int_equal(a->insn.size, b->insn.size);
		assert_int_equal(a->insn.cpl, b->insn.cpl);
		break;
	case TRACE_MEM:
		assert_true(a->mem.vaddr == b->mem.vaddr && a->mem.paddr == b->mem.paddr);
		assert_true(a->mem.value == b->mem.value);
		assert_int_equal(a->mem.size, b->mem.size);
		assert_int_equal(a->mem.write, b->mem.write);
		break;
	case TRACE_EVENT:
		assert_int_equal(a->event.kind, b->event.kind);
		assert_true(a->event.a == b->event.a && a->event.b == b->event.b &&
			    a->event.c == b->event.c);
		assert_memory_equal(a->event.args, b->event.args, sizeof(a->event.args));
		break;
	}
}

enum { N = 300000 }; /* several chunks */

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	char path[128];
	struct trace_record rec;
	uint64_t insns = 0;

	snprintf(path, sizeof(path), "%s/000003.trace", f->dir);
	write_trace(path, 3, N);
	struct trace_reader *r = trace_reader__open(path, err, sizeof(err));
	assert_non_null(r);
	const struct trace_info *info = trace_reader__info(r);
	assert_int_equal(info->interval, 3);
	assert_int_equal(info->records, N);
	assert_true(info->chunks > 3);
	/* instructions of a loop: 2 bytes each; accesses with random values
	 * and a changing page offset: 1 + 1 + 2 + 8 + 8 (vaddr and paddr do
	 * not keep their distance) */
	assert_true(info->raw_bytes < N / 3 * 20 + N * 2 / 3 * 2 + N / 100 * 75);
	assert_true(info->file_bytes < info->raw_bytes); /* lz4 on a loop */
	for (uint64_t i = 0; i < N; i++) {
		struct trace_record want = sample(i);
		assert_int_equal(trace_reader__next(r, &rec, err, sizeof(err)), 1);
		assert_same(&want, &rec);
		/* An instruction counts the ones before it; an access or event
		 * belongs to the last instruction. */
		if (rec.kind == TRACE_INSN)
			assert_true(rec.icount == insns++);
		else
			assert_true(rec.icount == insns - 1);
	}
	assert_int_equal(trace_reader__next(r, &rec, err, sizeof(err)), 0);
	assert_true(info->instructions == insns);
	trace_reader__close(r);
	/* no temporary left behind */
	strcat(path, ".tmp");
	assert_int_equal(access(path, F_OK), -1);
}

/* Memory records are encoded against the chunk's previous access: every
 * size, forward and backward steps, a paddr that keeps or changes its
 * distance, extreme addresses, and values as wide as their access. */
static void test_memory_encoding(void **state)
{
	struct fixture *f = *state;
	static const struct { uint64_t vaddr, paddr, value; uint8_t size; bool write; } acc[] = {
		{ 0x1000, 0x1000, 0xab, 1, false },
		{ 0x1008, 0x1008, 0xabcd, 2, true },
		{ 0x0ff0, 0x0ff0, 0xdeadbeef, 4, false },
		{ 0x7fff8000, 0x3f000, 0x0123456789abcdefull, 8, true },
		{ 0x7fff8008, 0x3f008, 0, 8, false },
		{ 0xffffffffffffff00ull, 0x10, 0xff, 1, true },
		{ 0, 0xfffffffffffff000ull, UINT64_MAX, 8, false },
	};
	char path[128];
	snprintf(path, sizeof(path), "%s/000000.trace", f->dir);
	struct trace_writer *w = trace_writer__create(path, 0, err, sizeof(err));
	struct trace_record insn = { .kind = TRACE_INSN, .insn = { .pc = 0x400000, .size = 3 } };
	assert_int_equal(trace_writer__append(w, &insn, err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(acc) / sizeof(acc[0]); i++) {
		struct trace_record m = { .kind = TRACE_MEM,
					  .mem = { .vaddr = acc[i].vaddr, .paddr = acc[i].paddr,
						   .value = acc[i].value, .size = acc[i].size,
						   .write = acc[i].write } };
		assert_int_equal(trace_writer__append(w, &m, err, sizeof(err)), 0);
	}
	/* refused, and the writer goes on */
	struct trace_record wide = { .kind = TRACE_MEM, .mem = { .value = 0x100, .size = 1 } };
	assert_int_not_equal(trace_writer__append(w, &wide, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "wider than its access"));
	assert_int_equal(trace_writer__commit(w, err, sizeof(err)), 0);
	struct trace_reader *r = trace_reader__open(path, err, sizeof(err));
	struct trace_record rec;
	assert_int_equal(trace_reader__next(r, &rec, err, sizeof(err)), 1);
	for (size_t i = 0; i < sizeof(acc) / sizeof(acc[0]); i++) {
		assert_int_equal(trace_reader__next(r, &rec, err, sizeof(err)), 1);
		assert_int_equal(rec.kind, TRACE_MEM);
		assert_true(rec.mem.vaddr == acc[i].vaddr && rec.mem.paddr == acc[i].paddr);
		assert_true(rec.mem.value == acc[i].value);
		assert_int_equal(rec.mem.size, acc[i].size);
		assert_int_equal(rec.mem.write, acc[i].write);
	}
	assert_int_equal(trace_reader__next(r, &rec, err, sizeof(err)), 0);
	/* 11 + 7 accesses: none above 2 + 10 + 8 + 8 bytes */
	assert_true(trace_reader__info(r)->raw_bytes <= 11 + 7 * 28);
	trace_reader__close(r);
}

static void test_seek(void **state)
{
	struct fixture *f = *state;
	char path[128];
	struct trace_record rec;

	snprintf(path, sizeof(path), "%s/000000.trace", f->dir);
	write_trace(path, 0, N);
	struct trace_reader *r = trace_reader__open(path, err, sizeof(err));
	assert_non_null(r);
	uint64_t total = trace_reader__info(r)->instructions;
	const uint64_t targets[] = { 0, 1, 2, 1000, 87381, 87382, total / 2, total - 1 };
	for (size_t t = 0; t < sizeof(targets) / sizeof(targets[0]); t++) {
		assert_int_equal(trace_reader__seek(r, targets[t], err, sizeof(err)), 0);
		assert_int_equal(trace_reader__next(r, &rec, err, sizeof(err)), 1);
		assert_int_equal(rec.kind, TRACE_INSN);
		assert_true(rec.icount == targets[t]);
	}
	assert_int_equal(trace_reader__seek(r, total, err, sizeof(err)), 0);
	assert_int_equal(trace_reader__next(r, &rec, err, sizeof(err)), 0);
	/* back to the start: the very first record again */
	assert_int_equal(trace_reader__seek(r, 0, err, sizeof(err)), 0);
	assert_int_equal(trace_reader__next(r, &rec, err, sizeof(err)), 1);
	struct trace_record first = sample(0);
	assert_same(&first, &rec);
	trace_reader__close(r);
}

static void test_run_concatenates(void **state)
{
	struct fixture *f = *state;
	char path[128];
	uint64_t per[3] = { 10, 0, 40000 }, total_records = 0, last_icount = 0, insns = 0;
	struct trace_record rec;
	uint32_t interval;

	for (uint32_t k = 0; k < 3; k++) {
		trace__path(path, sizeof(path), f->dir, k);
		write_trace(path, k, per[k]);
	}
	struct trace_run *run = trace_run__open(f->dir, 0, 3, err, sizeof(err));
	assert_non_null(run);
	int rc;
	while ((rc = trace_run__next(run, &rec, &interval, err, sizeof(err))) == 1) {
		total_records++;
		if (rec.kind == TRACE_INSN) {
			assert_true(rec.icount == insns);
			insns++;
		}
		assert_true(rec.icount >= last_icount);
		last_icount = rec.icount;
	}
	assert_int_equal(rc, 0);
	assert_true(total_records == per[0] + per[1] + per[2]);
	trace_run__close(run);
	/* a missing interval is named when the stream reaches it */
	assert_null(trace_run__open(f->dir, 3, 4, err, sizeof(err)));
	assert_non_null(strstr(err, "000003.trace"));
	run = trace_run__open(f->dir, 2, 4, err, sizeof(err));
	assert_non_null(run);
	while ((rc = trace_run__next(run, &rec, NULL, err, sizeof(err))) == 1)
		;
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, "000003.trace"));
	trace_run__close(run);
}

static void test_writer_refuses(void **state)
{
	struct fixture *f = *state;
	char path[128];
	const struct trace_record bad[] = {
		{ .kind = TRACE_INSN, .insn = { .pc = 1, .size = 0 } },
		{ .kind = TRACE_INSN, .insn = { .pc = 1, .size = 16 } },
		{ .kind = TRACE_INSN, .insn = { .pc = 1, .size = 1, .cpl = 4 } },
		{ .kind = TRACE_MEM, .mem = { .size = 3 } },
		{ .kind = TRACE_EVENT, .event = { .kind = TRACE_EV__COUNT } },
		{ .kind = 9 },
	};

	snprintf(path, sizeof(path), "%s/bad.trace", f->dir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct trace_writer *w = trace_writer__create(path, 0, err, sizeof(err));
		assert_non_null(w);
		assert_int_equal(trace_writer__append(w, &bad[i], err, sizeof(err)), -1);
		assert_non_null(strstr(err, "record 0"));
		trace_writer__abort(w);
		assert_int_equal(access(path, F_OK), -1);
	}
	/* an aborted trace leaves nothing, a missing directory is named */
	snprintf(path, sizeof(path), "%s/no/such/dir.trace", f->dir);
	assert_null(trace_writer__create(path, 0, err, sizeof(err)));
	assert_non_null(strstr(err, "dir.trace.tmp"));
}

/* A write that fails (here: past the file size limit, as a full disk
 * would) in the writer's thread, after its appends returned, fails a later
 * append or the commit, with the file named; nothing appears at path. */
static void test_write_failure_reported(void **state)
{
	struct fixture *f = *state;
	char path[128];
	struct rlimit was, small = { 64 * 1024, 0 };

	snprintf(path, sizeof(path), "%s/000004.trace", f->dir);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &was), 0);
	small.rlim_max = was.rlim_max;
	void (*handler)(int) = signal(SIGXFSZ, SIG_IGN); /* write() fails, EFBIG */
	struct trace_writer *w = trace_writer__create(path, 4, err, sizeof(err));
	assert_non_null(w);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	int rc = 0;
	for (uint64_t i = 0; i < 20 * (uint64_t)N && rc == 0; i++) {
		struct trace_record r = sample(i);
		rc = trace_writer__append(w, &r, err, sizeof(err));
	}
	if (rc == 0)
		rc = trace_writer__commit(w, err, sizeof(err));
	else
		trace_writer__abort(w);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &was), 0);
	signal(SIGXFSZ, handler);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, "000004.trace.tmp: write"));
	assert_int_equal(access(path, F_OK), -1);
}

static void *slurp(const char *path, size_t *len);

/* The blocks append_as_blocks made: they live until the writer's commit. */
static struct trace_block **made;
static size_t nmade, made_cap;

static void free_made(void)
{
	for (size_t b = 0; b < nmade; b++)
		trace_block__free(made[b]);
	free(made);
	made = NULL;
	nmade = made_cap = 0;
}

/* ins[0..ni) with acc[0..na) through trace_writer__append_blocks: a
 * block for each stretch of instructions that follow one another. */
static void append_as_blocks(struct trace_writer *w, const struct trace_insn *ins, unsigned ni,
			     const struct trace_access *acc, unsigned na)
{
	struct trace_block_run runs[64] = { 0 };
	unsigned nb = 0;
	for (unsigned i = 0, start = 0; i < ni; i++) {
		if (i + 1 < ni && ins[i + 1].pc == ins[i].pc + ins[i].size)
			continue;
		if (nmade == made_cap) {
			made_cap = made_cap ? 2 * made_cap : 1024;
			made = realloc(made, made_cap * sizeof(*made));
			assert_non_null(made);
		}
		made[nmade] = trace_block__new(&ins[start], i + 1 - start, err, sizeof(err));
		assert_non_null(made[nmade]);
		runs[nb++] = (struct trace_block_run){ made[nmade++], 0, i + 1 - start };
		start = i + 1;
	}
	assert_int_equal(trace_writer__append_blocks(w, runs, nb, acc, na, err, sizeof(err)), 0);
}

/* The two traces read back as the same records, with the same icounts;
 * returns the raw bytes of each, in a and b. */
static void assert_same_records(const char *a_path, const char *b_path, uint64_t *a_raw,
				uint64_t *b_raw)
{
	struct trace_reader *a = trace_reader__open(a_path, err, sizeof(err));
	struct trace_reader *b = trace_reader__open(b_path, err, sizeof(err));
	struct trace_record ra, rb;
	int rc;
	assert_non_null(a);
	assert_non_null(b);
	while ((rc = trace_reader__next(a, &ra, err, sizeof(err))) == 1) {
		assert_int_equal(trace_reader__next(b, &rb, err, sizeof(err)), 1);
		assert_same(&ra, &rb);
		assert_true(ra.icount == rb.icount);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(trace_reader__next(b, &rb, err, sizeof(err)), 0);
	assert_true(trace_reader__info(a)->records == trace_reader__info(b)->records);
	assert_true(trace_reader__info(a)->instructions == trace_reader__info(b)->instructions);
	*a_raw = trace_reader__info(a)->raw_bytes;
	*b_raw = trace_reader__info(b)->raw_bytes;
	trace_reader__close(a);
	trace_reader__close(b);
}

/* Records through trace_writer__append_blocks read back as those through
 * trace_writer__append: the sample stream in batches of varying length
 * (events one by one, accesses after a batch's last run too), and a loop
 * of one block, whole or cut short, over many chunks, in a fraction of
 * the bytes. */
static void test_append_blocks_equals_append(void **state)
{
	struct fixture *f = *state;
	char one[128], runs[128];
	struct trace_insn ins[64];
	struct trace_access acc[64];
	unsigned ni = 0, na = 0;

	snprintf(one, sizeof(one), "%s/one.trace", f->dir);
	snprintf(runs, sizeof(runs), "%s/runs.trace", f->dir);
	write_trace(one, 5, N);
	struct trace_writer *w = trace_writer__create(runs, 5, err, sizeof(err));
	assert_non_null(w);
	for (uint64_t i = 0; i < N; i++) {
		struct trace_record r = sample(i);
		bool flush = r.kind == TRACE_EVENT || ni == 64 || na == 64 || i % 97 == 0;
		if (flush && (ni || na)) {
			append_as_blocks(w, ins, ni, acc, na);
			ni = na = 0;
		}
		if (r.kind == TRACE_INSN)
			ins[ni++] = (struct trace_insn){ r.insn.pc, r.insn.size, r.insn.cpl };
		else if (r.kind == TRACE_MEM && ni)
			acc[na++] = (struct trace_access){ r.mem.vaddr, r.mem.paddr, r.mem.value,
							   ni - 1, r.mem.size, r.mem.write };
		else /* an event, or an access whose instruction went before */
			assert_int_equal(trace_writer__append(w, &r, err, sizeof(err)), 0);
	}
	append_as_blocks(w, ins, ni, acc, na);
	assert_int_equal(trace_writer__commit(w, err, sizeof(err)), 0);
	free_made();
	uint64_t one_raw, runs_raw;
	assert_same_records(one, runs, &one_raw, &runs_raw);

	/* the loop: 20 instructions of 3 bytes, a load at 4 and 9, a store at
	 * 9; every 7th run stops at instruction 12, and runs go to the writer
	 * three at a time */
	struct trace_insn loop[20];
	for (unsigned i = 0; i < 20; i++)
		loop[i] = (struct trace_insn){ 0x400000 + 3 * i, 3, 3 };
	struct trace_block *b = trace_block__new(loop, 20, err, sizeof(err));
	assert_non_null(b);
	struct trace_writer *wa = trace_writer__create(one, 6, err, sizeof(err));
	struct trace_writer *wb = trace_writer__create(runs, 6, err, sizeof(err));
	assert_non_null(wa);
	assert_non_null(wb);
	struct trace_block_run batch[3];
	struct trace_access bacc[9];
	unsigned nr = 0, nacc = 0, insns = 0;
	for (unsigned run = 0; run < 60000; run++) {
		unsigned to = run % 7 ? 20 : 12;
		batch[nr++] = (struct trace_block_run){ b, 0, to };
		for (unsigned i = 0; i < to; i++) {
			struct trace_record r = { .kind = TRACE_INSN,
						  .insn = { loop[i].pc, loop[i].size, loop[i].cpl } };
			assert_int_equal(trace_writer__append(wa, &r, err, sizeof(err)), 0);
			for (unsigned k = 0; k < (i == 4 ? 1u : i == 9 ? 2u : 0u); k++) {
				struct trace_access a = { 0x7000 + run % 64 * 8, 0x3000 + run % 64 * 8,
							  run * 0x9e3779b9ull, insns + i, 8,
							  k == 1 };
				struct trace_record m = { .kind = TRACE_MEM,
							  .mem = { a.vaddr, a.paddr, a.value, 8,
								   a.write } };
				assert_int_equal(trace_writer__append(wa, &m, err, sizeof(err)), 0);
				bacc[nacc++] = a;
			}
		}
		insns += to;
		if (nr == 3) {
			assert_int_equal(trace_writer__append_blocks(wb, batch, nr, bacc, nacc, err,
								     sizeof(err)), 0);
			nr = nacc = insns = 0;
		}
	}
	assert_int_equal(trace_writer__append_blocks(wb, batch, nr, bacc, nacc, err, sizeof(err)), 0);
	assert_true(trace_writer__icount(wa) > 1000000);
	assert_int_equal(trace_writer__icount(wa), trace_writer__icount(wb));
	assert_int_equal(trace_writer__commit(wa, err, sizeof(err)), 0);
	assert_int_equal(trace_writer__commit(wb, err, sizeof(err)), 0);
	assert_same_records(one, runs, &one_raw, &runs_raw);
	/* per run: 2 bytes, not 2 per instruction; accesses the same */
	assert_true(runs_raw * 2 < one_raw);

	/* refused: an access before its instruction, a bad size, a value too
	 * wide, accesses out of order (checked in the writer's thread: the
	 * commit fails, and publishes nothing), a run outside its block (at
	 * once); a block of a bad instruction or one not where the one
	 * before ends. The error names the record. */
	const struct trace_access bad[] = {
		{ .vaddr = 8, .paddr = 8, .insn = 20, .size = 8 },
		{ .vaddr = 8, .paddr = 8, .insn = 0, .size = 3 },
		{ .vaddr = 8, .paddr = 8, .value = 0x100, .insn = 0, .size = 1 },
	};
	const struct trace_access unordered[] = { { .insn = 5, .size = 8 }, { .insn = 4, .size = 8 } };
	const char *why[] = { "record 20: memory access before its instruction",
			      "record 1: memory access size not 1, 2, 4 or 8",
			      "record 1: memory value wider than its access",
			      "record 6: memory accesses out of order",
			      "record 0: instructions outside their block" };
	char refused[160];
	snprintf(refused, sizeof(refused), "%s/refused.trace", f->dir);
	for (unsigned k = 0; k < 5; k++) {
		w = trace_writer__create(refused, 0, err, sizeof(err));
		assert_non_null(w);
		const struct trace_block_run whole = { b, 0, 20 }, beyond = { b, 3, 21 };
		int rc = k < 3 ? trace_writer__append_blocks(w, &whole, 1, &bad[k], 1, err,
							     sizeof(err)) :
			 k == 3 ? trace_writer__append_blocks(w, &whole, 1, unordered, 2, err,
							      sizeof(err)) :
				  trace_writer__append_blocks(w, &beyond, 1, NULL, 0, err, sizeof(err));
		if (k < 4) {
			assert_int_equal(rc, 0);
			assert_int_equal(trace_writer__commit(w, err, sizeof(err)), -1);
			assert_int_equal(access(refused, F_OK), -1);
		} else {
			assert_int_equal(rc, -1);
			assert_int_equal(trace_writer__icount(w), 0);
			trace_writer__abort(w);
		}
		assert_non_null(strstr(err, why[k]));
	}
	trace_block__free(b);
	const struct trace_insn bad_size = { 0x1000, 0, 3 }, bad_cpl = { 0x1000, 2, 4 };
	const struct trace_insn apart[2] = { { 0x1000, 2, 3 }, { 0x1003, 2, 3 } };
	assert_null(trace_block__new(&bad_size, 1, err, sizeof(err)));
	assert_non_null(strstr(err, "instruction 0: instruction size not 1..15"));
	assert_null(trace_block__new(&bad_cpl, 1, err, sizeof(err)));
	assert_non_null(strstr(err, "privilege level above 3"));
	assert_null(trace_block__new(apart, 2, err, sizeof(err)));
	assert_non_null(strstr(err, "instruction 1: not where the one before ends"));
}

/* Appends a run of b and its accesses through append_blocks to wb, and
 * the same records one by one to wa: acc[k].insn numbers the instruction
 * from the run's first. */
static void append_both(struct trace_writer *wa, struct trace_writer *wb, struct trace_block *b,
			const struct trace_insn *insns, unsigned from, unsigned to,
			const struct trace_access *acc, unsigned m)
{
	const struct trace_block_run run = { b, from, to };
	unsigned k = 0;
	for (unsigned i = from; i < to; i++) {
		struct trace_record r = { .kind = TRACE_INSN,
					  .insn = { insns[i].pc, insns[i].size, insns[i].cpl } };
		assert_int_equal(trace_writer__append(wa, &r, err, sizeof(err)), 0);
		for (; k < m && acc[k].insn == i - from; k++) {
			struct trace_record a = { .kind = TRACE_MEM,
						  .mem = { acc[k].vaddr, acc[k].paddr, acc[k].value,
							   acc[k].size, acc[k].write } };
			assert_int_equal(trace_writer__append(wa, &a, err, sizeof(err)), 0);
		}
	}
	assert_int_equal(trace_writer__append_blocks(wb, &run, 1, acc, m, err, sizeof(err)), 0);
}

/* Runs whose accesses need more than a chunk: a whole block, 30 accesses
 * each of its 512 instructions, goes over chunks in parts; one
 * instruction with 40000 accesses fills chunks with them alone; an access
 * appended alone after a run belongs to its last instruction. Seeks land
 * inside each. */
static void test_append_blocks_fills_chunks(void **state)
{
	struct fixture *f = *state;
	char one[128], runs[128];
	struct trace_insn insns[512];
	for (unsigned i = 0; i < 512; i++)
		insns[i] = (struct trace_insn){ 0x10000 + 2 * i, 2, 0 };
	struct trace_block *b = trace_block__new(insns, 512, err, sizeof(err));
	assert_non_null(b);
	enum { M = 40000 };
	struct trace_access *acc = calloc(M, sizeof(*acc));
	assert_non_null(acc);
	snprintf(one, sizeof(one), "%s/one.trace", f->dir);
	snprintf(runs, sizeof(runs), "%s/runs.trace", f->dir);
	struct trace_writer *wa = trace_writer__create(one, 1, err, sizeof(err));
	struct trace_writer *wb = trace_writer__create(runs, 1, err, sizeof(err));
	assert_non_null(wa);
	assert_non_null(wb);
	for (unsigned k = 0; k < 512 * 30; k++)
		acc[k] = (struct trace_access){ 0x7000 + k % 100 * 8, 0x5000 + k % 100 * 8,
						k * 0x9e3779b97f4a7c15ull, k / 30, 8, k % 3 == 0 };
	append_both(wa, wb, b, insns, 0, 512, acc, 512 * 30);
	for (unsigned k = 0; k < M; k++)
		acc[k] = (struct trace_access){ 0x9000 + k % 7 * 8, 0x9000 + k % 7 * 8,
						k * 0x9e3779b97f4a7c15ull, 0, 8, false };
	append_both(wa, wb, b, insns, 5, 6, acc, M);
	append_both(wa, wb, b, insns, 0, 512, NULL, 0);
	struct trace_record last = { .kind = TRACE_MEM, .mem = { 0x8000, 0x8000, 1, 1, true } };
	assert_int_equal(trace_writer__append(wa, &last, err, sizeof(err)), 0);
	assert_int_equal(trace_writer__append(wb, &last, err, sizeof(err)), 0);
	assert_int_equal(trace_writer__commit(wa, err, sizeof(err)), 0);
	assert_int_equal(trace_writer__commit(wb, err, sizeof(err)), 0);
	uint64_t one_raw, runs_raw;
	assert_same_records(one, runs, &one_raw, &runs_raw);

	struct trace_reader *r = trace_reader__open(runs, err, sizeof(err));
	assert_non_null(r);
	assert_true(trace_reader__info(r)->chunks >= 4);
	assert_int_equal(trace_reader__info(r)->instructions, 512 + 1 + 512);
	struct trace_record rec;
	const uint64_t targets[] = { 300, 511, 512, 513, 1024 };
	for (size_t t = 0; t < sizeof(targets) / sizeof(targets[0]); t++) {
		assert_int_equal(trace_reader__seek(r, targets[t], err, sizeof(err)), 0);
		assert_int_equal(trace_reader__next(r, &rec, err, sizeof(err)), 1);
		assert_int_equal(rec.kind, TRACE_INSN);
		assert_true(rec.icount == targets[t]);
		uint64_t pc = targets[t] < 512 ? targets[t] : targets[t] == 512 ? 5 : targets[t] - 513;
		assert_true(rec.insn.pc == 0x10000 + 2 * pc);
	}
	trace_reader__close(r);
	trace_block__free(b);
	free(acc);
}

static void *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	*len = (size_t)ftell(fp);
	rewind(fp);
	void *buf = malloc(*len);
	assert_int_equal(fread(buf, 1, *len, fp), *len);
	fclose(fp);
	return buf;
}

/* Reads everything; returns -1 with err on the first problem. */
static int read_all(const void *buf, size_t len)
{
	struct trace_reader *r = trace_reader__open_memory(buf, len, "t.trace", err, sizeof(err));
	struct trace_record rec;
	int rc;
	if (!r)
		return -1;
	while ((rc = trace_reader__next(r, &rec, err, sizeof(err))) == 1)
		;
	trace_reader__close(r);
	return rc;
}

/* Every prefix of a trace, and every flipped bit pattern, is refused with
 * a message: one written record by record, and one in runs of blocks. */
static void test_every_truncation_and_flip(void **state)
{
	struct fixture *f = *state;
	char path[2][128];
	size_t len;

	snprintf(path[0], sizeof(path[0]), "%s/small.trace", f->dir);
	write_trace(path[0], 1, 3000);
	snprintf(path[1], sizeof(path[1]), "%s/blocks.trace", f->dir);
	struct trace_writer *w = trace_writer__create(path[1], 1, err, sizeof(err));
	struct trace_insn ins[64];
	struct trace_access acc[64];
	unsigned ni = 0, na = 0;
	assert_non_null(w);
	for (uint64_t i = 0; i < 3000; i++) {
		struct trace_record r = sample(i);
		if (r.kind == TRACE_INSN && ni < 64)
			ins[ni++] = (struct trace_insn){ r.insn.pc, r.insn.size, r.insn.cpl };
		else if (r.kind == TRACE_MEM && ni && na < 64)
			acc[na++] = (struct trace_access){ r.mem.vaddr, r.mem.paddr, r.mem.value,
							   ni - 1, r.mem.size, r.mem.write };
		if (r.kind == TRACE_EVENT || ni == 64 || na == 64) {
			append_as_blocks(w, ins, ni, acc, na);
			ni = na = 0;
		}
		if (r.kind == TRACE_EVENT)
			assert_int_equal(trace_writer__append(w, &r, err, sizeof(err)), 0);
	}
	append_as_blocks(w, ins, ni, acc, na);
	assert_int_equal(trace_writer__commit(w, err, sizeof(err)), 0);
	free_made();
	for (unsigned t = 0; t < 2; t++) {
		uint8_t *buf = slurp(path[t], &len);
		assert_int_equal(read_all(buf, len), 0);
		for (size_t cut = 0; cut < len; cut++) {
			err[0] = '\0';
			assert_int_equal(read_all(buf, cut), -1);
			assert_non_null(strstr(err, "t.trace"));
		}
		for (size_t i = 0; i < len; i++) {
			buf[i] ^= 0x10;
			err[0] = '\0';
			assert_int_equal(read_all(buf, len), -1);
			assert_true(strlen(err) > 0);
			buf[i] ^= 0x10;
		}
		free(buf);
	}
}

static void test_corrupt_chunk_named(void **state)
{
	struct fixture *f = *state;
	char path[128];
	size_t len;

	snprintf(path, sizeof(path), "%s/big.trace", f->dir);
	write_trace(path, 2, N);
	uint8_t *buf = slurp(path, &len);
	/* a byte inside the second chunk's compressed data */
	uint64_t ioff = trace__get64(buf + len - TRACE_FOOTER_SIZE + 8);
	uint64_t second = trace__get64(buf + ioff + 16 + TRACE_INDEX_ENTRY);
	buf[second + TRACE_CHUNK_HDR_SIZE + 5] ^= 1;
	assert_int_equal(read_all(buf, len), -1);
	assert_non_null(strstr(err, "chunk 1"));
	assert_non_null(strstr(err, "checksum mismatch"));
	free(buf);
}

static void test_empty_and_format(void **state)
{
	struct fixture *f = *state;
	char path[128], line[200];
	struct trace_record rec;

	snprintf(path, sizeof(path), "%s/empty.trace", f->dir);
	write_trace(path, 5, 0);
	struct trace_reader *r = trace_reader__open(path, err, sizeof(err));
	assert_non_null(r);
	assert_int_equal(trace_reader__info(r)->chunks, 0);
	assert_int_equal(trace_reader__next(r, &rec, err, sizeof(err)), 0);
	trace_reader__close(r);

	rec = (struct trace_record){ .kind = TRACE_INSN, .icount = 7,
				     .insn = { .pc = 0x401000, .size = 3, .cpl = 3 } };
	trace_record__format(&rec, line, sizeof(line));
	assert_string_equal(line, "           7 insn  pc 0x401000 size 3 cpl 3");
	rec = (struct trace_record){ .kind = TRACE_EVENT, .icount = 9,
				     .event = { .kind = TRACE_EV_PIO_READ, .a = 0x3f8, .c = 0x41, .size = 1 } };
	trace_record__format(&rec, line, sizeof(line));
	assert_string_equal(line, "           9 pio-read addr 0x3f8 size 1 value 0x41");
	assert_string_equal(trace_event_kind__name(TRACE_EV__COUNT), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_encoding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seek, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_concatenates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_failure_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_blocks_equals_append, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_blocks_fills_chunks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_truncation_and_flip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_chunk_named, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_and_format, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
