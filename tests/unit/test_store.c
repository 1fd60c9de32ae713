/* The checkpoint store end to end: a four-checkpoint recording with zero
 * pages, duplicates within and across checkpoints, logs; reopened, read,
 * materialized and verified; then damaged in the ways a disk or a crash
 * damages it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "store-priv.h"

#define NPAGES 64u
#define NCKPT 4u
#define PG CKPT_PAGE_SIZE

struct fixture {
	char tmp[64];
	char dir[96];
	/* guest RAM expected at each checkpoint */
	uint8_t *ram[NCKPT];
	struct ckpt_cpu_state cpu[NCKPT];
};

static char err[1024];

/* ---- contents ------------------------------------------------------------------- */

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Content `id`: every third one random (lz4 cannot shrink it, stored raw),
 * the others compressible text. */
static void content(uint8_t *page, unsigned id)
{
	if (id % 3 == 0) {
		uint64_t s = 0x9e3779b97f4a7c15ull * (id + 1);
		for (unsigned i = 0; i < PG; i += 8) {
			uint64_t v = xorshift(&s);
			memcpy(page + i, &v, 8);
		}
	} else {
		for (unsigned i = 0; i < PG; i += 32)
			snprintf((char *)page + i, 32, "content %u at %u ......................",
				 id, i);
	}
}

static void cpu_state(struct ckpt_cpu_state *c, unsigned seed)
{
	memset(c, 0, sizeof(*c));
	for (int i = 0; i < CKPT_GPR__COUNT; i++)
		c->gpr[i] = 0x1111111100000000ull * (seed + 1) + (uint64_t)i;
	c->rip = 0xffffffff81000000ull + seed;
	c->rflags = 0x246;
	for (int i = 0; i < CKPT_SEG__COUNT; i++) {
		c->seg[i] = (struct ckpt_segment){ .base = 0x1000u * (unsigned)i + seed,
			.limit = 0xfffff, .selector = (uint16_t)(8 * i), .type = (uint8_t)(3 + i),
			.present = 1, .dpl = (uint8_t)(i & 3), .db = 1, .s = 1, .l = i == 1,
			.g = 1, .avl = (uint8_t)(i & 1), .unusable = i == CKPT_LDT };
	}
	c->gdt = (struct ckpt_dtable){ .base = 0x5000, .limit = 0x1f };
	c->idt = (struct ckpt_dtable){ .base = 0x7000 + seed, .limit = 0xfff };
	c->cr0 = 0x80050033;
	c->cr2 = 0xdead0000 + seed;
	c->cr3 = 0x9000;
	c->cr4 = 0x6f0;
	c->cr8 = 2;
	c->efer = 0xd01;
	c->apic_base = 0xfee00900;
	c->dr[0] = 1, c->dr[1] = 2, c->dr[2] = 3, c->dr[3] = 4;
	c->dr6 = 0xffff0ff0;
	c->dr7 = 0x400;
	c->msr_count = 3;
	c->msrs[0] = (struct ckpt_msr){ 0xc0000081, 0x0023001000000000ull };
	c->msrs[1] = (struct ckpt_msr){ 0xc0000082, 0xffffffff81a00000ull + seed };
	c->msrs[2] = (struct ckpt_msr){ 0x277, 0x0007040600070406ull };
	c->fcw = 0x37f;
	c->fsw = 0x3800;
	c->fop = 0x7ff;
	c->ftw = 0x80;
	c->fip = 0x401000;
	c->fdp = 0x602000;
	c->mxcsr = 0x1f80;
	c->st[7][0] = 0x12;
	c->st[7][9] = 0x3f;
	c->xmm[1][0] = (uint8_t)seed;
	c->xmm[15][15] = 0xee;
	c->exception_injected = 1;
	c->exception_nr = 14;
	c->exception_has_error = 1;
	c->exception_error = 0x2;
	c->interrupt_shadow = 1;
	c->nmi_masked = 1;
	c->halted = (uint8_t)(seed & 1);
}

/* ---- building the recording -------------------------------------------------------- */

struct write {
	uint64_t gpn;
	int id;                     /* -1: zero page */
};

static const struct ckpt_info the_info = {
	.memory_bytes = NPAGES * PG,
	.interval_ns = 1000000000,
	.mode = "cow",
	.cpu_model = "kvm64,-tsc",
	.config_path = "/tmp/vm.cfg",
	.config_text = "memory = \"256K\";\n",
	.created_by = "simuboost test",
};

/* Checkpoint 1..3 writes; checkpoint 0 is every page, see ckpt0_id(). */
static const struct write ckpt_writes[NCKPT][4] = {
	[1] = { { 3, 100 }, { 5, 101 }, { 9, -1 }, { UINT64_MAX, 0 } },
	/* 10: checkpoint 0's content 1; 12: checkpoint 1's content 100 */
	[2] = { { 12, 100 }, { 10, 1 }, { 11, 102 }, { UINT64_MAX, 0 } },
	/* 3: checkpoint 0's content 3 again, after checkpoint 1 changed it */
	[3] = { { 0, 103 }, { 3, 3 }, { 63, -1 }, { UINT64_MAX, 0 } },
};

static int ckpt0_id(uint64_t gpn)
{
	if (gpn % 8 == 0)
		return -1;
	return gpn == 2 ? 1 : (int)gpn; /* 1 and 2: the same content */
}

static void add(struct ckpt_txn *tx, uint8_t *ram, uint64_t gpn, int id)
{
	uint8_t page[PG];

	memset(page, 0, PG);
	if (id >= 0)
		content(page, (unsigned)id);
	memcpy(ram + gpn * PG, page, PG);
	assert_int_equal(ckpt_txn__add_page(tx, gpn, page, err, sizeof(err)), 0);
}

static void set_state(struct ckpt_txn *tx, struct fixture *f, uint32_t k)
{
	char dev[64];
	struct ckpt_state s = {
		.guest_time_ns = 1000000000ull * k + 17,
		.downtime_ns = 12345 + k,
		.flags = k == NCKPT - 1 ? CKPT_FINAL : 0,
		.exit_status = k == NCKPT - 1 ? -3 : 0,
		.device_state = dev,
		.device_state_len = 10 + k,
	};

	for (size_t i = 0; i < sizeof(dev); i++)
		dev[i] = (char)(k * 31 + i);
	cpu_state(&f->cpu[k], k);
	s.cpu = f->cpu[k];
	assert_int_equal(ckpt_txn__set_state(tx, &s, err, sizeof(err)), 0);
}

/* A real log (verify parses it): a port read, an interrupt and the stop. */
static void *log_bytes(uint32_t interval, size_t *len)
{
	struct ckpt_log_writer *w = ckpt_log_writer__new(interval);
	struct ckpt_event ev[] = {
		{ .kind = CKPT_EV_PIO_READ, .guest_time_ns = 10, .at = { .rip = 0x1000 },
		  .addr = 0x3fd, .size = 1, .value = 0x60 },
		{ .kind = CKPT_EV_IRQ, .guest_time_ns = 20,
		  .at = { .sync_count = 1, .rip = 0x1010, .reg_hash = 0x1234 }, .value = 0x20 },
		{ .kind = CKPT_EV_STOP, .guest_time_ns = 30 + interval,
		  .at = { .sync_count = 1, .rip = 0x1020, .reg_hash = 0x5678 } },
	};
	void *buf;

	assert_non_null(w);
	for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++)
		assert_int_equal(ckpt_log_writer__append(w, &ev[i]), 0);
	assert_int_equal(ckpt_log_writer__finish(w, &buf, len), 0);
	return buf;
}

static void set_log(struct ckpt_txn *tx, uint32_t interval)
{
	size_t len;
	void *log = log_bytes(interval, &len);

	assert_int_equal(ckpt_txn__set_log(tx, log, len, err, sizeof(err)), 0);
}

static void build(struct fixture *f)
{
	struct ckpt_store *st = ckpt_store__create(f->dir, &the_info, err, sizeof(err));
	struct ckpt_txn *tx;

	assert_non_null(st);
	for (uint32_t k = 0; k < NCKPT; k++) {
		f->ram[k] = calloc(NPAGES, PG);
		if (k)
			memcpy(f->ram[k], f->ram[k - 1], NPAGES * PG);
		tx = ckpt_txn__begin(st, k, err, sizeof(err));
		assert_non_null(tx);
		if (k == 0) {
			/* Descending: the manifest must come out sorted anyway. */
			for (uint64_t g = NPAGES; g-- > 0;)
				add(tx, f->ram[0], g, ckpt0_id(g));
		} else {
			for (const struct write *w = ckpt_writes[k]; w->gpn != UINT64_MAX; w++)
				add(tx, f->ram[k], w->gpn, w->id);
			set_log(tx, k - 1);
		}
		set_state(tx, f, k);
		if (ckpt_txn__commit(tx, err, sizeof(err)) != 0)
			fail_msg("commit %u: %s", k, err);
		assert_int_equal(ckpt_store__count(st), k + 1);
	}
	ckpt_store__close(st);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	strcpy(f->tmp, "/tmp/simuboost-store-XXXXXX");
	assert_non_null(mkdtemp(f->tmp));
	snprintf(f->dir, sizeof(f->dir), "%s/rec", f->tmp);
	build(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->tmp);
	assert_int_equal(system(cmd), 0);
	for (unsigned k = 0; k < NCKPT; k++)
		free(f->ram[k]);
	free(f);
	return 0;
}

static struct ckpt_store *reopen(struct fixture *f)
{
	struct ckpt_store *st = ckpt_store__open(f->dir, err, sizeof(err));

	if (!st)
		fail_msg("open: %s", err);
	return st;
}

static char *path(struct fixture *f, const char *name)
{
	static char p[256];

	snprintf(p, sizeof(p), "%s/%s", f->dir, name);
	return p;
}

static bool exists(struct fixture *f, const char *name)
{
	return access(path(f, name), F_OK) == 0;
}

static void flip_bit(struct fixture *f, const char *name, off_t off, int bit)
{
	int fd = open(path(f, name), O_RDWR);
	uint8_t b;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, off), 1);
	b ^= (uint8_t)(1u << bit);
	assert_int_equal(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

static const struct ckpt_page_ref *find_ref(const struct ckpt_manifest *m, uint64_t gpn)
{
	for (uint64_t i = 0; i < m->page_count; i++)
		if (m->pages[i].gpn == gpn)
			return &m->pages[i];
	return NULL;
}

struct problems {
	int n;
	char lines[32][512];
};

static void collect(void *opaque, const char *problem)
{
	struct problems *p = opaque;

	if (p->n < 32)
		snprintf(p->lines[p->n], sizeof(p->lines[0]), "%s", problem);
	p->n++;
}

static bool reported(const struct problems *p, const char *needle)
{
	for (int i = 0; i < p->n && i < 32; i++)
		if (strstr(p->lines[i], needle))
			return true;
	return false;
}

static long verify(struct ckpt_store *st, struct problems *p)
{
	memset(p, 0, sizeof(*p));
	long n = ckpt_store__verify(st, collect, p, err, sizeof(err));
	assert_int_equal(n, p->n);
	return n;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_reopen_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct ckpt_store *st = reopen(f);
	const struct ckpt_info *in = ckpt_store__info(st);

	assert_int_equal(ckpt_store__count(st), NCKPT);
	assert_string_equal(ckpt_store__dir(st), f->dir);
	assert_int_equal(in->memory_bytes, NPAGES * PG);
	assert_int_equal(in->interval_ns, 1000000000);
	assert_string_equal(in->mode, "cow");
	assert_string_equal(in->cpu_model, "kvm64,-tsc");
	assert_string_equal(in->config_path, "/tmp/vm.cfg");
	assert_string_equal(in->config_text, "memory = \"256K\";\n");
	assert_string_equal(in->created_by, "simuboost test");

	for (uint32_t k = 0; k < NCKPT; k++) {
		struct ckpt_manifest *m;
		uint8_t page[PG];

		if (ckpt_manifest__load(st, k, &m, err, sizeof(err)) != 0)
			fail_msg("load %u: %s", k, err);
		assert_int_equal(m->index, k);
		assert_int_equal(m->guest_time_ns, 1000000000ull * k + 17);
		assert_int_equal(m->downtime_ns, 12345 + k);
		assert_int_equal(m->flags, k == NCKPT - 1 ? CKPT_FINAL : 0);
		assert_int_equal(m->exit_status, k == NCKPT - 1 ? -3 : 0);
		assert_memory_equal(&m->cpu, &f->cpu[k], sizeof(m->cpu));
		assert_int_equal(m->cpu.msrs[1].value, 0xffffffff81a00000ull + k);
		assert_int_equal(m->cpu.seg[CKPT_LDT].unusable, 1);
		assert_int_equal(m->device_state_len, 10 + k);
		for (size_t i = 0; i < m->device_state_len; i++)
			assert_int_equal(m->device_state[i], (uint8_t)(k * 31 + i));
		assert_int_equal(m->page_count, k ? 3 : NPAGES);
		for (uint64_t i = 0; i < m->page_count; i++) {
			const struct ckpt_page_ref *r = &m->pages[i];

			if (i)
				assert_true(r->gpn > m->pages[i - 1].gpn);
			if (ckpt_store__read_page(st, r, page, err, sizeof(err)) != 0)
				fail_msg("read %u/%llx: %s", k, (unsigned long long)r->gpn, err);
			assert_memory_equal(page, f->ram[k] + r->gpn * PG, PG);
		}
		ckpt_manifest__free(m);
	}
	ckpt_store__close(st);
}

static void test_dedup_and_zero(void **state)
{
	struct fixture *f = *state;
	struct ckpt_store *st = reopen(f);
	struct ckpt_manifest *m[NCKPT];
	const struct ckpt_page_ref *a, *b, *c;
	struct stat sb;

	for (uint32_t k = 0; k < NCKPT; k++)
		assert_int_equal(ckpt_manifest__load(st, k, &m[k], err, sizeof(err)), 0);
	/* 0: 8 zero pages, gpn 2 repeats gpn 1, 55 contents */
	assert_int_equal(m[0]->zero_pages, 8);
	assert_int_equal(m[0]->dedup_pages, 1);
	assert_int_equal(m[0]->stored_pages, NPAGES - 8 - 1);
	assert_true(m[0]->stored_bytes > 0);
	/* Compressible pages shrink: fewer bytes than the raw pages. */
	assert_true(m[0]->stored_bytes < (NPAGES - 9) * PG);
	assert_int_equal(m[1]->zero_pages, 1);
	assert_int_equal(m[1]->dedup_pages, 0);
	assert_int_equal(m[1]->stored_pages, 2);
	assert_int_equal(m[2]->zero_pages, 0);
	assert_int_equal(m[2]->dedup_pages, 2);
	assert_int_equal(m[2]->stored_pages, 1);
	assert_int_equal(m[3]->zero_pages, 1);
	assert_int_equal(m[3]->dedup_pages, 1);
	assert_int_equal(m[3]->stored_pages, 1);

	/* Content 1: checkpoint 0's gpn 1 and 2 and checkpoint 2's gpn 10 share one record. */
	a = find_ref(m[0], 1);
	b = find_ref(m[0], 2);
	c = find_ref(m[2], 10);
	assert_true(a && b && c);
	assert_int_equal(a->pack, 0);
	assert_int_equal(b->pack, 0);
	assert_int_equal(c->pack, 0);
	assert_int_equal(a->offset, b->offset);
	assert_int_equal(a->offset, c->offset);
	assert_true(ckpt_hash__eq(&a->hash, &c->hash));
	/* Content 100 stored by checkpoint 1, referenced by 2. */
	assert_int_equal(find_ref(m[2], 12)->pack, 1);
	assert_int_equal(find_ref(m[2], 12)->offset, find_ref(m[1], 3)->offset);
	/* Content 3 overwritten in 1 and back in 3: checkpoint 0's record. */
	assert_int_equal(find_ref(m[3], 3)->pack, 0);
	assert_int_equal(find_ref(m[3], 3)->offset, find_ref(m[0], 3)->offset);
	/* Content 3 is random: raw; content 1 is text: lz4. */
	assert_int_equal(find_ref(m[0], 3)->stored_len, PG);
	assert_true(a->stored_len < PG / 4);

	/* Zero pages are listed but not stored. */
	a = find_ref(m[0], 8);
	assert_non_null(a);
	assert_int_equal(a->flags, CKPT_PAGE_ZERO);
	assert_int_equal(a->stored_len, 0);
	uint8_t page[PG];
	memset(page, 0xaa, PG);
	assert_int_equal(ckpt_store__read_page(st, a, page, err, sizeof(err)), 0);
	for (unsigned i = 0; i < PG; i++)
		assert_int_equal(page[i], 0);

	/* A pack only where something new was stored; its size is the records. */
	assert_int_equal(stat(path(f, "000000.pack"), &sb), 0);
	assert_int_equal((uint64_t)sb.st_size, CKPT_ENV_SIZE + m[0]->stored_bytes +
			 m[0]->stored_pages * CKPT_REC_HDR_SIZE);
	assert_true(exists(f, "000002.pack"));
	for (uint32_t k = 0; k < NCKPT; k++)
		ckpt_manifest__free(m[k]);
	/* Logs: interval N's log lands with checkpoint N+1, as given. */
	assert_true(exists(f, "000000.log"));
	assert_true(exists(f, "000002.log"));
	assert_false(exists(f, "000003.log"));
	void *buf, *want;
	size_t len, want_len;
	int dirfd = open(f->dir, O_RDONLY | O_DIRECTORY);
	assert_int_equal(ckpt_file__read(dirfd, "000001.log", &buf, &len, err, sizeof(err)), 0);
	want = log_bytes(1, &want_len);
	assert_int_equal(len, want_len);
	assert_memory_equal(buf, want, len);
	free(want);
	free(buf);
	close(dirfd);
	ckpt_store__close(st);
}

static void test_materialize(void **state)
{
	struct fixture *f = *state;
	struct ckpt_store *st = reopen(f);
	uint8_t *ram = malloc(NPAGES * PG);

	for (uint32_t k = 0; k < NCKPT; k++) {
		memset(ram, 0x5a, NPAGES * PG);
		if (ckpt_store__materialize(st, k, ram, err, sizeof(err)) != 0)
			fail_msg("materialize %u: %s", k, err);
		assert_memory_equal(ram, f->ram[k], NPAGES * PG);
	}
	assert_int_equal(ckpt_store__materialize(st, NCKPT, ram, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "checkpoint 4: not in the recording"));
	free(ram);
	ckpt_store__close(st);
}

static void test_verify_intact(void **state)
{
	struct fixture *f = *state;
	struct ckpt_store *st = reopen(f);
	struct problems p;

	if (verify(st, &p) != 0)
		fail_msg("verify: %s", p.lines[0]);
	ckpt_store__close(st);
}

static void test_pack_bitflip(void **state)
{
	struct fixture *f = *state;
	struct ckpt_store *st = reopen(f);
	struct ckpt_manifest *m0, *m2;
	const struct ckpt_page_ref *r;
	struct problems p;
	uint8_t page[PG], *ram = malloc(NPAGES * PG);

	assert_int_equal(ckpt_manifest__load(st, 0, &m0, err, sizeof(err)), 0);
	assert_int_equal(ckpt_manifest__load(st, 2, &m2, err, sizeof(err)), 0);
	r = find_ref(m0, 1);
	flip_bit(f, "000000.pack", (off_t)(r->offset + CKPT_REC_HDR_SIZE + r->stored_len / 2), 3);

	assert_int_equal(ckpt_store__read_page(st, r, page, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "checkpoint 0: page 0x1: 000000.pack at offset"));
	/* Through checkpoint 2's manifest the message names checkpoint 2. */
	assert_int_equal(ckpt_store__materialize(st, 2, ram, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "checkpoint 2: page 0xa: "));
	/* Other pages still read. */
	assert_int_equal(ckpt_store__read_page(st, find_ref(m0, 4), page, err, sizeof(err)), 0);
	assert_int_equal(ckpt_store__materialize(st, 1, ram, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "checkpoint 0: page 0x"));

	assert_true(verify(st, &p) >= 4);
	assert_true(reported(&p, "checkpoint 0: page 0x1: "));
	assert_true(reported(&p, "checkpoint 0: page 0x2: "));
	assert_true(reported(&p, "checkpoint 2: page 0xa: "));
	assert_true(reported(&p, "000000.pack: checksum mismatch"));
	ckpt_manifest__free(m0);
	ckpt_manifest__free(m2);
	free(ram);
	ckpt_store__close(st);
}

static void test_record_header_damage(void **state)
{
	struct fixture *f = *state;
	struct ckpt_store *st = reopen(f);
	struct ckpt_manifest *m;
	uint8_t page[PG];
	struct problems p;

	assert_int_equal(ckpt_manifest__load(st, 1, &m, err, sizeof(err)), 0);
	/* The record's own hash no longer matches what the manifest wants. */
	flip_bit(f, "000001.pack", (off_t)find_ref(m, 5)->offset + 2, 0);
	assert_int_equal(ckpt_store__read_page(st, find_ref(m, 5), page, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "checkpoint 1: page 0x5: "));
	assert_non_null(strstr(err, "manifest wants"));
	assert_true(verify(st, &p) >= 1);
	assert_true(reported(&p, "checkpoint 1: page 0x5: "));
	ckpt_manifest__free(m);
	ckpt_store__close(st);
}

static void test_manifest_bitflip(void **state)
{
	struct fixture *f = *state;
	struct ckpt_store *st;
	struct ckpt_manifest *m;
	struct problems p;

	flip_bit(f, "000001.manifest", CKPT_ENV_SIZE + 100, 5);
	st = reopen(f);
	assert_int_equal(ckpt_store__count(st), NCKPT); /* existence is enough to count */
	assert_int_equal(ckpt_manifest__load(st, 1, &m, err, sizeof(err)), -1);
	assert_null(m);
	assert_non_null(strstr(err, "000001.manifest: checksum mismatch"));
	assert_int_equal(verify(st, &p), 1);
	assert_true(reported(&p, "000001.manifest: checksum mismatch"));
	ckpt_store__close(st);
}

static void test_manifest_truncated(void **state)
{
	struct fixture *f = *state;
	struct ckpt_store *st;
	struct ckpt_manifest *m;
	struct stat sb;
	uint8_t *ram = malloc(NPAGES * PG);

	assert_int_equal(stat(path(f, "000002.manifest"), &sb), 0);
	assert_int_equal(truncate(path(f, "000002.manifest"), sb.st_size / 2), 0);
	st = reopen(f);
	assert_int_equal(ckpt_manifest__load(st, 2, &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "000002.manifest: truncated"));
	assert_int_equal(ckpt_store__materialize(st, 3, ram, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "000002.manifest: truncated"));
	/* Earlier checkpoints do not depend on it. */
	assert_int_equal(ckpt_store__materialize(st, 1, ram, err, sizeof(err)), 0);
	assert_memory_equal(ram, f->ram[1], NPAGES * PG);

	assert_int_equal(truncate(path(f, "000002.manifest"), 7), 0);
	assert_int_equal(ckpt_manifest__load(st, 2, &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "000002.manifest: truncated: 7 bytes"));
	free(ram);
	ckpt_store__close(st);
}

static void test_log_problems(void **state)
{
	struct fixture *f = *state;
	struct ckpt_store *st = reopen(f);
	struct problems p;
	struct stat sb;

	assert_int_equal(unlink(path(f, "000000.log")), 0);
	assert_int_equal(stat(path(f, "000001.log"), &sb), 0);
	assert_int_equal(truncate(path(f, "000001.log"), sb.st_size - 1), 0);
	flip_bit(f, "000002.log", sb.st_size / 2, 2);
	assert_int_equal(verify(st, &p), 3);
	assert_true(reported(&p, "interval 0: 000000.log: No such file"));
	assert_true(reported(&p, "interval 1: 000001.log"));
	assert_true(reported(&p, "interval 2: 000002.log"));
	/* Logs are not needed to rebuild RAM. */
	uint8_t *ram = malloc(NPAGES * PG);
	assert_int_equal(ckpt_store__materialize(st, 3, ram, err, sizeof(err)), 0);
	assert_memory_equal(ram, f->ram[3], NPAGES * PG);
	free(ram);
	ckpt_store__close(st);
}

static void touch(struct fixture *f, const char *name, const char *text)
{
	FILE *fp = fopen(path(f, name), "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void test_leftovers_gap_and_append(void **state)
{
	struct fixture *f = *state;
	struct ckpt_store *st;
	struct ckpt_txn *tx;
	struct ckpt_manifest *m;
	struct problems p;
	uint8_t page[PG], *ram = malloc(NPAGES * PG);

	/* An interrupted commit of checkpoint 4. */
	touch(f, "000004.pack.tmp", "half a pack");
	touch(f, "000004.manifest.tmp", "half a manifest");
	touch(f, "000003.log.tmp", "half a log");
	st = reopen(f);
	assert_int_equal(ckpt_store__count(st), NCKPT);
	assert_int_equal(verify(st, &p), 0);

	/* Appending to the reopened recording still deduplicates. */
	tx = ckpt_txn__begin(st, NCKPT, err, sizeof(err));
	assert_non_null(tx);
	content(page, 101); /* checkpoint 1's */
	assert_int_equal(ckpt_txn__add_page(tx, 20, page, err, sizeof(err)), 0);
	content(page, 200);
	assert_int_equal(ckpt_txn__add_page(tx, 21, page, err, sizeof(err)), 0);
	assert_int_equal(ckpt_txn__add_page(tx, 22, page, err, sizeof(err)), 0);
	set_log(tx, 3);
	set_state(tx, f, 0);
	assert_int_equal(ckpt_txn__commit(tx, err, sizeof(err)), 0);
	assert_int_equal(ckpt_store__count(st), NCKPT + 1);
	assert_false(exists(f, "000004.pack.tmp"));
	assert_false(exists(f, "000004.manifest.tmp"));
	assert_int_equal(ckpt_manifest__load(st, NCKPT, &m, err, sizeof(err)), 0);
	assert_int_equal(m->dedup_pages, 2);
	assert_int_equal(m->stored_pages, 1);
	assert_int_equal(find_ref(m, 20)->pack, 1);
	ckpt_manifest__free(m);
	ckpt_store__close(st);

	st = reopen(f);
	assert_int_equal(ckpt_store__count(st), NCKPT + 1);
	if (verify(st, &p) != 0)
		fail_msg("verify: %s", p.lines[0]);
	assert_int_equal(ckpt_store__materialize(st, NCKPT, ram, err, sizeof(err)), 0);
	content(page, 101);
	assert_memory_equal(ram + 20 * PG, page, PG);
	assert_memory_equal(ram + 3 * PG, f->ram[3] + 3 * PG, PG);
	ckpt_store__close(st);

	/* A gap ends the recording: 0, 1, (2 missing), 3, 4 is two checkpoints. */
	char moved[256];
	snprintf(moved, sizeof(moved), "%s", path(f, "moved"));
	assert_int_equal(rename(path(f, "000002.manifest"), moved), 0);
	st = reopen(f);
	assert_int_equal(ckpt_store__count(st), 2);
	assert_int_equal(ckpt_manifest__load(st, 3, &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "checkpoint 3: not in the recording"));
	if (verify(st, &p) != 0)
		fail_msg("verify: %s", p.lines[0]);
	ckpt_store__close(st);
	free(ram);
}

static struct ckpt_txn *begin_next(struct ckpt_store *st, uint32_t k)
{
	struct ckpt_txn *tx = ckpt_txn__begin(st, k, err, sizeof(err));

	if (!tx)
		fail_msg("begin %u: %s", k, err);
	return tx;
}

static void assert_no_files_of(struct fixture *f, uint32_t k)
{
	static const char *const ext[] = { "manifest", "pack", "manifest.tmp", "pack.tmp" };
	char name[CKPT_NAME_MAX];

	for (size_t i = 0; i < 4; i++) {
		ckpt_file__name(name, k, ext[i]);
		if (exists(f, name))
			fail_msg("%s is left over", name);
	}
	ckpt_file__name(name, k - 1, "log");
	assert_false(exists(f, name));
	ckpt_file__name(name, k - 1, "log.tmp");
	assert_false(exists(f, name));
}

static void test_commit_failures(void **state)
{
	struct fixture *f = *state;
	struct ckpt_store *st = reopen(f);
	struct ckpt_txn *tx;
	struct ckpt_manifest *m;
	struct problems p;
	uint8_t page[PG];

	/* Out of order. */
	assert_null(ckpt_txn__begin(st, NCKPT + 1, err, sizeof(err)));
	assert_non_null(strstr(err, "checkpoint 5: out of order"));
	assert_null(ckpt_txn__begin(st, 2, err, sizeof(err)));

	/* Caller mistakes in add_page and set_log. */
	tx = begin_next(st, NCKPT);
	assert_null(ckpt_txn__begin(st, NCKPT, err, sizeof(err)));
	assert_non_null(strstr(err, "still being written"));
	content(page, 300);
	assert_int_equal(ckpt_txn__add_page(tx, 7, page, err, sizeof(err)), 0);
	assert_int_equal(ckpt_txn__add_page(tx, 7, page, err, sizeof(err)), -1);
	assert_string_equal(err, "checkpoint 4: page 0x7: added twice");
	assert_int_equal(ckpt_txn__add_page(tx, NPAGES, page, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "checkpoint 4: page 0x40: beyond guest memory"));
	/* No log for index > 0: refused, and nothing of checkpoint 4 stays. */
	set_state(tx, f, 1);
	assert_int_equal(ckpt_txn__commit(tx, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "log of interval 3 is missing"));
	assert_int_equal(ckpt_store__count(st), NCKPT);
	assert_no_files_of(f, NCKPT);

	/* No state. */
	tx = begin_next(st, NCKPT);
	set_log(tx, 3);
	assert_int_equal(ckpt_txn__commit(tx, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no CPU and device state"));
	assert_no_files_of(f, NCKPT);

	/* The manifest cannot be written, after pack and log were published:
	 * both must be removed again. */
	assert_int_equal(mkdir(path(f, "000004.manifest.tmp"), 0755), 0);
	tx = begin_next(st, NCKPT);
	content(page, 301);
	assert_int_equal(ckpt_txn__add_page(tx, 7, page, err, sizeof(err)), 0);
	set_log(tx, 3);
	set_state(tx, f, 1);
	assert_int_equal(ckpt_txn__commit(tx, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "000004.manifest: open: Is a directory"));
	assert_int_equal(ckpt_store__count(st), NCKPT);
	assert_int_equal(rmdir(path(f, "000004.manifest.tmp")), 0);
	assert_no_files_of(f, NCKPT);

	/* Aborted transaction: its pack goes, its contents are forgotten. */
	tx = begin_next(st, NCKPT);
	content(page, 302);
	assert_int_equal(ckpt_txn__add_page(tx, 8, page, err, sizeof(err)), 0);
	ckpt_txn__abort(tx);
	assert_no_files_of(f, NCKPT);

	/* The store is still usable, and the failed contents are stored anew
	 * rather than deduplicated against removed packs. */
	assert_int_equal(verify(st, &p), 0);
	tx = begin_next(st, NCKPT);
	content(page, 302);
	assert_int_equal(ckpt_txn__add_page(tx, 8, page, err, sizeof(err)), 0);
	content(page, 301);
	assert_int_equal(ckpt_txn__add_page(tx, 7, page, err, sizeof(err)), 0);
	set_log(tx, 3);
	set_state(tx, f, 1);
	assert_int_equal(ckpt_txn__commit(tx, err, sizeof(err)), 0);
	assert_int_equal(ckpt_manifest__load(st, NCKPT, &m, err, sizeof(err)), 0);
	assert_int_equal(m->stored_pages, 2);
	assert_int_equal(m->dedup_pages, 0);
	ckpt_manifest__free(m);
	assert_int_equal(verify(st, &p), 0);
	ckpt_store__close(st);

	st = reopen(f);
	assert_int_equal(ckpt_store__count(st), NCKPT + 1);
	assert_int_equal(verify(st, &p), 0);
	ckpt_store__close(st);
}

static void test_create_refuses(void **state)
{
	struct fixture *f = *state;
	struct ckpt_info bad = the_info;
	char dir[128];

	assert_null(ckpt_store__create(f->dir, &the_info, err, sizeof(err)));
	assert_non_null(strstr(err, "not empty"));
	snprintf(dir, sizeof(dir), "%s/other", f->tmp);
	bad.memory_bytes = 4097;
	assert_null(ckpt_store__create(dir, &bad, err, sizeof(err)));
	assert_non_null(strstr(err, "multiple of 4096"));
	snprintf(dir, sizeof(dir), "%s/none", f->tmp);
	assert_null(ckpt_store__open(dir, err, sizeof(err)));
	assert_non_null(strstr(err, "No such file"));

	/* A damaged recording.meta is refused with its name. */
	flip_bit(f, CKPT_META_NAME, CKPT_ENV_SIZE + 3, 1);
	assert_null(ckpt_store__open(f->dir, err, sizeof(err)));
	assert_non_null(strstr(err, "recording.meta: checksum mismatch"));
	flip_bit(f, CKPT_META_NAME, CKPT_ENV_SIZE + 3, 1);
	flip_bit(f, CKPT_META_NAME, 4, 6); /* the version's low byte */
	assert_null(ckpt_store__open(f->dir, err, sizeof(err)));
	char want[64];
	snprintf(want, sizeof(want), "recording.meta: unknown format version %u",
		 CKPT_FORMAT_VERSION ^ 0x40);
	assert_non_null(strstr(err, want));
}

static void test_enospc(void **state)
{
	struct fixture *f = *state;
	char mnt[128], dir[160];
	struct ckpt_info info = the_info;
	struct ckpt_store *st;
	struct ckpt_txn *tx;
	uint8_t page[PG];
	struct problems p;

	snprintf(mnt, sizeof(mnt), "%s/small", f->tmp);
	assert_int_equal(mkdir(mnt, 0755), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k") != 0) {
		rmdir(mnt);
		skip();
	}
	snprintf(dir, sizeof(dir), "%s/rec", mnt);
	info.memory_bytes = 256 * PG;
	st = ckpt_store__create(dir, &info, err, sizeof(err));
	assert_non_null(st);
	tx = ckpt_txn__begin(st, 0, err, sizeof(err));
	assert_non_null(tx);
	/* 256 random pages: 1 MiB that lz4 cannot shrink, in a 64 KiB file system. */
	for (uint64_t g = 0; g < 256; g++) {
		content(page, (unsigned)(3 * g + 3000));
		if (ckpt_txn__add_page(tx, g, page, err, sizeof(err)) != 0)
			break;
	}
	set_state(tx, f, 0);
	assert_int_equal(ckpt_txn__commit(tx, err, sizeof(err)), -1);
	assert_string_equal(err, "000000.pack: write: No space left on device");
	assert_int_equal(ckpt_store__count(st), 0);
	assert_int_equal(access(path(f, "../small/rec/000000.pack.tmp"), F_OK), -1);

	/* Space is back: a small checkpoint 0 commits. */
	tx = ckpt_txn__begin(st, 0, err, sizeof(err));
	content(page, 1);
	assert_int_equal(ckpt_txn__add_page(tx, 1, page, err, sizeof(err)), 0);
	set_state(tx, f, 0);
	if (ckpt_txn__commit(tx, err, sizeof(err)) != 0)
		fail_msg("commit: %s", err);
	assert_int_equal(verify(st, &p), 0);
	ckpt_store__close(st);
	assert_int_equal(umount(mnt), 0);
}

/* More packs than descriptors: the pack cache starts over instead of failing. */
static void test_few_descriptors(void **state)
{
	struct fixture *f = *state;
	struct ckpt_store *st = reopen(f);
	uint8_t *ram = malloc(NPAGES * PG);
	struct rlimit old, low;
	int fd[3];

	for (int i = 0; i < 3; i++)
		fd[i] = dup(0);
	for (int i = 0; i < 3; i++)
		close(fd[i]);
	if (fd[2] != fd[0] + 2)
		skip(); /* need three free descriptors in a row */
	/* Three descriptors: a manifest being read and two cached packs, while
	 * materializing checkpoint 3 needs packs 0..3. */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)fd[0] + 3;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	for (uint32_t k = 0; k < NCKPT; k++) {
		int rc = ckpt_store__materialize(st, k, ram, err, sizeof(err));

		if (rc != 0) {
			setrlimit(RLIMIT_NOFILE, &old);
			fail_msg("materialize %u: %s", k, err);
		}
		assert_memory_equal(ram, f->ram[k], NPAGES * PG);
	}
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	free(ram);
	ckpt_store__close(st);
}

static void test_cpu_print(void **state)
{
	struct fixture *f = *state;
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	ckpt_cpu_state__print(&f->cpu[1], out);
	fclose(out);
	assert_non_null(strstr(text, "rip 0xffffffff81000001"));
	assert_non_null(strstr(text, "rflags 0x00000246 [PF ZF IF]"));
	assert_non_null(strstr(text, "cs   sel=0x0008"));
	assert_non_null(strstr(text, "ldt  sel=0x0030"));
	assert_non_null(strstr(text, "unusable"));
	assert_non_null(strstr(text, "cr0 0x0000000080050033 [PE MP ET NE WP AM PG]"));
	assert_non_null(strstr(text, "efer 0xd01 [SCE LME LMA NXE]"));
	assert_non_null(strstr(text, "LSTAR"));
	assert_non_null(strstr(text, "PAT"));
	assert_non_null(strstr(text, "mxcsr 0x00001f80"));
	assert_non_null(strstr(text, "xmm1  0000000000000000_0000000000000001"));
	assert_non_null(strstr(text, "xmm15 ee"));
	assert_null(strstr(text, "xmm2 "));
	assert_non_null(strstr(text, "exception vector 14 (#PF) error 0x2"));
	assert_non_null(strstr(text, "halted"));
	free(text);
}

/* The file at path holds exactly want. */
static void assert_file_holds(const char *path, const char *want)
{
	char got[64] = { 0 };
	FILE *in = fopen(path, "rb");
	assert_non_null(in);
	assert_int_equal(fread(got, 1, sizeof(got) - 1, in), strlen(want));
	fclose(in);
	assert_string_equal(got, want);
}

/* ckpt_file__publish: the whole file or the old one, no temporary left,
 * and errors that name the path. */
static void test_publish(void **state)
{
	struct fixture *f = *state;
	char path[400];
	char name[256];

	snprintf(path, sizeof(path), "%s/result.json", f->tmp);
	assert_int_equal(ckpt_file__publish(path, "old", 3, err, sizeof(err)), 0);
	assert_int_equal(ckpt_file__publish(path, "{\"new\":1}", 9, err, sizeof(err)), 0);
	assert_file_holds(path, "{\"new\":1}");
	snprintf(path, sizeof(path), "%s/result.json.tmp", f->tmp);
	assert_int_equal(access(path, F_OK), -1);

	snprintf(path, sizeof(path), "%s/no-such-dir/x", f->tmp);
	assert_int_equal(ckpt_file__publish(path, "x", 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no-such-dir: No such file or directory"));
	/* 251 bytes, the most: NAME.tmp must fit in a file name too */
	memset(name, 'n', 251);
	name[251] = '\0';
	snprintf(path, sizeof(path), "%s/%s", f->tmp, name);
	assert_int_equal(ckpt_file__publish(path, "x", 1, err, sizeof(err)), 0);
	name[251] = 'n';
	name[252] = '\0';
	snprintf(path, sizeof(path), "%s/%s", f->tmp, name);
	assert_int_equal(ckpt_file__publish(path, "x", 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "the file name must be"));
}

/* ckpt_file__publish_part: nothing under the name until the last part;
 * a later part whose first is missing is refused. */
static void test_publish_in_parts(void **state)
{
	struct fixture *f = *state;
	char path[400], tmp[420];

	snprintf(path, sizeof(path), "%s/000003.trace", f->tmp);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(ckpt_file__publish_part(path, 0, "abcd", 4, false, err, sizeof(err)), 0);
	assert_int_equal(ckpt_file__publish_part(path, 4, "efgh", 4, false, err, sizeof(err)), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(ckpt_file__publish_part(path, 8, "ij", 2, true, err, sizeof(err)), 0);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_file_holds(path, "abcdefghij");

	snprintf(path, sizeof(path), "%s/000004.trace", f->tmp);
	assert_int_equal(ckpt_file__publish_part(path, 4, "efgh", 4, true, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "000004.trace.tmp: open: No such file or directory"));
	assert_int_equal(access(path, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_publish, setup, teardown),
		cmocka_unit_test_setup_teardown(test_publish_in_parts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedup_and_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(test_materialize, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_intact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pack_bitflip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_header_damage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_bitflip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_problems, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leftovers_gap_and_append, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enospc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_few_descriptors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cpu_print, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
