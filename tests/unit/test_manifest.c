/* Manifest encoding and parsing: an exact round trip, and every way a
 * damaged or hostile manifest must be refused (without reading out of
 * bounds: this runs under ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "store-priv.h"

#define INDEX 5u
#define NPAGES 40u
/* Payload offsets, from the layout in manifest.c. */
#define OFF_PAGE_COUNT 60u
#define OFF_CPU 68u
#define OFF_MSR_COUNT (OFF_CPU + 16 * 8 + 2 * 8 + 8 * 23 + 2 * 10 + 7 * 8 + 6 * 8)

static char err[1024];

static void make_cpu(struct ckpt_cpu_state *c)
{
	memset(c, 0, sizeof(*c));
	for (int i = 0; i < CKPT_GPR__COUNT; i++)
		c->gpr[i] = 0x0102030405060708ull * (uint64_t)(i + 1);
	c->rip = 0xfffffffffffffff0ull;
	c->rflags = 0x202;
	for (int i = 0; i < CKPT_SEG__COUNT; i++)
		c->seg[i] = (struct ckpt_segment){ .base = ~0ull - (uint64_t)i,
			.limit = 0xffffffffu - (uint32_t)i, .selector = (uint16_t)(0xfff0 + i),
			.type = 0xb, .present = 1, .dpl = 3, .db = 1, .s = 1, .l = 1, .g = 1,
			.avl = 1, .unusable = 0xff };
	c->gdt = (struct ckpt_dtable){ 0x123456789abcdef0ull, 0xffff };
	c->idt = (struct ckpt_dtable){ 0x0fedcba987654321ull, 0x0fff };
	c->cr0 = 1, c->cr2 = 2, c->cr3 = 3, c->cr4 = 4, c->cr8 = 8;
	c->efer = 0x500, c->apic_base = 0xfee00d00;
	for (int i = 0; i < 4; i++)
		c->dr[i] = 0x1000u + (unsigned)i;
	c->dr6 = 0xffff0ff0, c->dr7 = 0x400;
	c->msr_count = CKPT_MAX_MSRS;
	for (uint32_t i = 0; i < CKPT_MAX_MSRS; i++)
		c->msrs[i] = (struct ckpt_msr){ 0xc0000000u + i, ~0ull / (i + 1) };
	c->fcw = 0x037f, c->fsw = 0xffff, c->fop = 0x07ff, c->ftw = 0xa5;
	c->fip = ~1ull, c->fdp = ~2ull, c->mxcsr = 0xffbf;
	for (int i = 0; i < 8; i++)
		for (int j = 0; j < 16; j++)
			c->st[i][j] = (uint8_t)(i * 16 + j);
	for (int i = 0; i < 16; i++)
		for (int j = 0; j < 16; j++)
			c->xmm[i][j] = (uint8_t)(0xff - i * 16 - j);
	c->exception_injected = 1, c->exception_nr = 13, c->exception_has_error = 1;
	c->exception_error = 0xdeadbeef;
	c->interrupt_injected = 1, c->interrupt_nr = 0x20, c->interrupt_soft = 1;
	c->interrupt_shadow = 3;
	c->nmi_injected = 1, c->nmi_pending = 1, c->nmi_masked = 1, c->halted = 1;
}

/* Zero pages, pages stored by this checkpoint and pages of earlier packs. */
static struct ckpt_manifest *make_manifest(void)
{
	struct ckpt_manifest *m = calloc(1, sizeof(*m));

	m->index = INDEX;
	m->guest_time_ns = 0x1122334455667788ull;
	m->downtime_ns = 999;
	m->flags = CKPT_FINAL;
	m->exit_status = -1;
	make_cpu(&m->cpu);
	m->device_state_len = 300;
	m->device_state = malloc(m->device_state_len);
	for (size_t i = 0; i < m->device_state_len; i++)
		m->device_state[i] = (uint8_t)(i * 7);
	m->page_count = NPAGES;
	m->pages = calloc(NPAGES, sizeof(*m->pages));
	for (uint64_t i = 0; i < NPAGES; i++) {
		struct ckpt_page_ref *p = &m->pages[i];

		p->gpn = i * 3 + 1;
		p->hash = (struct ckpt_hash){ .lo = i * 0x9e3779b97f4a7c15ull, .hi = ~i };
		if (i % 4 == 0) {
			p->flags = CKPT_PAGE_ZERO;
			m->zero_pages++;
		} else if (i % 4 == 1) {
			p->pack = (uint32_t)(i % INDEX);
			p->offset = CKPT_ENV_SIZE + i * 100;
			p->stored_len = 100;
			m->dedup_pages++;
		} else {
			p->pack = INDEX;
			p->offset = CKPT_ENV_SIZE + i * 4120;
			p->stored_len = i % 4 == 2 ? CKPT_PAGE_SIZE : 77;
			m->stored_pages++;
			m->stored_bytes += p->stored_len;
		}
	}
	return m;
}

static uint8_t *encode(const struct ckpt_manifest *m, size_t *len)
{
	void *buf;

	assert_int_equal(ckpt_manifest__encode(m, &buf, len), 0);
	return buf;
}

/* Rewrites the envelope for the payload as it is now, so the damage under
 * test reaches the payload parser instead of the checksum. */
static void reseal(uint8_t *buf, size_t len)
{
	ckpt_env__encode(buf, CKPT_KIND_MANIFEST, INDEX, len - CKPT_ENV_SIZE,
			 XXH3_64bits(buf + CKPT_ENV_SIZE, len - CKPT_ENV_SIZE));
}

static int parse(const uint8_t *buf, size_t len, struct ckpt_manifest **out)
{
	err[0] = '\0';
	return ckpt_manifest__parse(buf, len, INDEX, out, err, sizeof(err));
}

static void expect_error(const uint8_t *buf, size_t len, const char *needle)
{
	struct ckpt_manifest *m = (void *)1;

	assert_int_equal(parse(buf, len, &m), -1);
	assert_null(m);
	if (!strstr(err, needle))
		fail_msg("expected \"%s\" in \"%s\"", needle, err);
	assert_non_null(strstr(err, "000005.manifest: "));
}

static void test_roundtrip(void **state)
{
	struct ckpt_manifest *m = make_manifest(), *back;
	size_t len;
	uint8_t *buf = encode(m, &len);

	(void)state;
	if (parse(buf, len, &back) != 0)
		fail_msg("parse: %s", err);
	assert_int_equal(back->index, m->index);
	assert_int_equal(back->guest_time_ns, m->guest_time_ns);
	assert_int_equal(back->downtime_ns, m->downtime_ns);
	assert_int_equal(back->flags, m->flags);
	assert_int_equal(back->exit_status, -1);
	assert_memory_equal(&back->cpu, &m->cpu, sizeof(m->cpu));
	assert_int_equal(back->device_state_len, m->device_state_len);
	assert_memory_equal(back->device_state, m->device_state, m->device_state_len);
	assert_int_equal(back->page_count, m->page_count);
	for (uint64_t i = 0; i < NPAGES; i++) {
		assert_int_equal(back->pages[i].gpn, m->pages[i].gpn);
		assert_true(ckpt_hash__eq(&back->pages[i].hash, &m->pages[i].hash));
		assert_int_equal(back->pages[i].flags, m->pages[i].flags);
		assert_int_equal(back->pages[i].pack, m->pages[i].pack);
		assert_int_equal(back->pages[i].offset, m->pages[i].offset);
		assert_int_equal(back->pages[i].stored_len, m->pages[i].stored_len);
	}
	assert_int_equal(back->zero_pages, m->zero_pages);
	assert_int_equal(back->dedup_pages, m->dedup_pages);
	assert_int_equal(back->stored_pages, m->stored_pages);
	assert_int_equal(back->stored_bytes, m->stored_bytes);

	/* Encoding is deterministic: the parsed manifest encodes to the same bytes. */
	size_t len2;
	uint8_t *buf2 = encode(back, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(buf2, buf, len);
	/* MSRs beyond msr_count are not stored and come back zero. */
	m->cpu.msr_count = 2;
	free(buf2);
	free(buf);
	buf = encode(m, &len);
	assert_int_equal(len, len2 - (CKPT_MAX_MSRS - 2) * 12);
	ckpt_manifest__free(back);
	assert_int_equal(parse(buf, len, &back), 0);
	assert_int_equal(back->cpu.msr_count, 2);
	assert_int_equal(back->cpu.msrs[1].value, m->cpu.msrs[1].value);
	assert_int_equal(back->cpu.msrs[2].index, 0);
	assert_int_equal(back->cpu.msrs[2].value, 0);

	ckpt_manifest__free(back);
	ckpt_manifest__free(m);
	free(buf);
}

static void test_empty_manifest(void **state)
{
	struct ckpt_manifest m = { .index = INDEX }, *back;
	size_t len;
	uint8_t *buf = encode(&m, &len);

	(void)state;
	assert_int_equal(parse(buf, len, &back), 0);
	assert_int_equal(back->page_count, 0);
	assert_null(back->pages);
	assert_null(back->device_state);
	ckpt_manifest__free(back);
	free(buf);
}

static void test_every_truncation(void **state)
{
	struct ckpt_manifest *m = make_manifest(), *back;
	size_t len;
	uint8_t *buf = encode(m, &len), *cut;

	(void)state;
	for (size_t n = 0; n < len; n++) {
		/* The file cut short as a crash or a copy would. */
		cut = malloc(n ? n : 1);
		memcpy(cut, buf, n);
		back = (void *)1;
		assert_int_equal(parse(cut, n, &back), -1);
		assert_null(back);
		assert_non_null(strstr(err, "truncated"));
		/* Cut and resealed: the payload parser sees the short payload. */
		if (n >= CKPT_ENV_SIZE) {
			reseal(cut, n);
			assert_int_equal(parse(cut, n, &back), -1);
			assert_null(back);
		}
		free(cut);
	}
	/* One byte too many. */
	cut = calloc(1, len + 1);
	memcpy(cut, buf, len);
	expect_error(cut, len + 1, "length mismatch");
	reseal(cut, len + 1);
	expect_error(cut, len + 1, "garbage after");
	free(cut);
	ckpt_manifest__free(m);
	free(buf);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_random_corruption(void **state)
{
	struct ckpt_manifest *m = make_manifest(), *back;
	size_t len;
	uint8_t *buf = encode(m, &len), *bad = malloc(len);
	uint64_t seed = 0x1234567887654321ull;
	int resealed_ok = 0;

	(void)state;
	for (int round = 0; round < 3000; round++) {
		int flips = 1 + (int)(xorshift(&seed) % 4);

		memcpy(bad, buf, len);
		for (int i = 0; i < flips; i++) {
			size_t at = (size_t)(xorshift(&seed) % len);
			bad[at] ^= (uint8_t)(1u << (xorshift(&seed) % 8));
		}
		if (memcmp(bad, buf, len) == 0)
			continue; /* the flips cancelled out */
		/* Any change is caught: checksum, or a header field's own check. */
		back = (void *)1;
		assert_int_equal(parse(bad, len, &back), -1);
		assert_null(back);
		/* Resealed, the payload parser decides; it must not crash, and
		 * what it accepts must be self-consistent. */
		if (memcmp(bad, buf, CKPT_ENV_SIZE) == 0) {
			reseal(bad, len);
			if (parse(bad, len, &back) == 0) {
				resealed_ok++;
				for (uint64_t i = 1; i < back->page_count; i++)
					assert_true(back->pages[i].gpn > back->pages[i - 1].gpn);
				assert_true(back->cpu.msr_count <= CKPT_MAX_MSRS);
				ckpt_manifest__free(back);
			}
		}
	}
	/* Register bytes accept any value: some resealed damage must parse. */
	assert_true(resealed_ok > 0);
	free(bad);
	ckpt_manifest__free(m);
	free(buf);
}

static void test_envelope_errors(void **state)
{
	struct ckpt_manifest *m = make_manifest(), *back;
	size_t len;
	uint8_t *buf = encode(m, &len);

	(void)state;
	buf[0] = 'X';
	expect_error(buf, len, "bad magic");
	buf[0] = 'S';
	ckpt__put_le32(buf + 4, CKPT_FORMAT_VERSION + 1);
	char want[64];
	snprintf(want, sizeof(want), "unknown format version %u", CKPT_FORMAT_VERSION + 1);
	expect_error(buf, len, want);
	ckpt__put_le32(buf + 4, CKPT_FORMAT_VERSION);
	ckpt__put_le32(buf + 8, CKPT_KIND_PACK);
	expect_error(buf, len, "is a pack file");
	ckpt__put_le32(buf + 8, CKPT_KIND_MANIFEST);
	assert_int_equal(ckpt_manifest__parse(buf, len, 6, &back, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "000006.manifest: wrong index: belongs to checkpoint 5"));
	buf[len - 1] ^= 1;
	expect_error(buf, len, "checksum mismatch");
	ckpt_manifest__free(m);
	free(buf);
}

static void test_hostile_fields(void **state)
{
	struct ckpt_manifest *m = make_manifest();
	size_t len, off_dev;
	uint8_t *buf = encode(m, &len), *bad = malloc(len);
	uint8_t *p;

	(void)state;
	p = bad + CKPT_ENV_SIZE;
	/* The device-state length sits right after the MSRs. */
	off_dev = OFF_MSR_COUNT + 4 + CKPT_MAX_MSRS * 12 + 2 * 3 + 1 + 8 * 2 + 4 + 4 + 128 + 256 +
		  3 + 4 + 4 + 4;
	assert_int_equal(ckpt__get_le64(buf + CKPT_ENV_SIZE + off_dev), 300);
	assert_int_equal(ckpt__get_le32(buf + CKPT_ENV_SIZE + OFF_MSR_COUNT), CKPT_MAX_MSRS);
	assert_int_equal(ckpt__get_le64(buf + CKPT_ENV_SIZE + OFF_PAGE_COUNT), NPAGES);

#define DAMAGE(stmt, needle)                       \
	do {                                       \
		memcpy(bad, buf, len);             \
		stmt;                              \
		reseal(bad, len);                  \
		expect_error(bad, len, needle);    \
	} while (0)

	DAMAGE(ckpt__put_le32(p + OFF_MSR_COUNT, CKPT_MAX_MSRS + 1), "33 MSRs");
	DAMAGE(ckpt__put_le32(p + OFF_MSR_COUNT, UINT32_MAX), "MSRs, at most 32");
	/* Absurd lengths are refused before any allocation (ASan would fail
	 * a multi-exabyte malloc). */
	DAMAGE(ckpt__put_le64(p + off_dev, UINT64_MAX), "device state of");
	DAMAGE(ckpt__put_le64(p + off_dev, 301 + NPAGES * 44), "device state of");
	DAMAGE(ckpt__put_le64(p + OFF_PAGE_COUNT, UINT64_MAX), "page entries need more than");
	DAMAGE(ckpt__put_le64(p + OFF_PAGE_COUNT, NPAGES + 1), "page entries need");
	DAMAGE(ckpt__put_le64(p + OFF_PAGE_COUNT, NPAGES - 1), "garbage after");
	DAMAGE(ckpt__put_le32(p, INDEX + 1), "wrong index: payload says checkpoint 6");
	DAMAGE(ckpt__put_le32(p + 20, 0x80), "unknown flags 0x80");
	DAMAGE(ckpt__put_le64(p + 28, 0), "zero pages listed");
	DAMAGE(ckpt__put_le64(p + 36, 0), "statistics do not match");

	/* Page entries: 44 bytes each, at the end. */
	size_t e0 = len - CKPT_ENV_SIZE - NPAGES * 44;
#define ENTRY(i, field) (p + e0 + (size_t)(i) * 44 + (field))
	DAMAGE(ckpt__put_le64(ENTRY(3, 0), 0), "page 0x0: entries not sorted");
	DAMAGE(ckpt__put_le64(ENTRY(3, 0), m->pages[2].gpn), "duplicated");
	DAMAGE(ckpt__put_le32(ENTRY(1, 24), 4), "unknown flags 0x4");
	DAMAGE(ckpt__put_le32(ENTRY(0, 28), 1), "zero page with a stored location");
	DAMAGE(ckpt__put_le32(ENTRY(1, 28), INDEX + 1), "refers to pack 6, later than");
	DAMAGE(ckpt__put_le32(ENTRY(2, 40), 0), "impossible location");
	DAMAGE(ckpt__put_le32(ENTRY(2, 40), 5000), "impossible location");
	DAMAGE(ckpt__put_le64(ENTRY(2, 32), 3), "impossible location");
	/* An own-pack entry turned zero: counts disagree with the header. */
	DAMAGE((ckpt__put_le32(ENTRY(2, 24), CKPT_PAGE_ZERO), ckpt__put_le32(ENTRY(2, 28), 0),
		ckpt__put_le64(ENTRY(2, 32), 0), ckpt__put_le32(ENTRY(2, 40), 0)),
	       "zero pages listed");
#undef ENTRY
#undef DAMAGE
	free(bad);
	ckpt_manifest__free(m);
	free(buf);
}

/* The x87/SSE fields sit where FXSAVE puts them, nothing else of the image
 * is written, and they read back unchanged. */
static void test_fxsave_image(void **state)
{
	struct ckpt_cpu_state c, back;
	uint8_t img[512];
	uint16_t w;
	uint32_t d;
	uint64_t q;

	(void)state;
	make_cpu(&c);
	c.fcw = 0x037f, c.fsw = 0x3800, c.ftw = 0xa5, c.fop = 0x7ff;
	c.fip = 0x1122334455667788ull, c.fdp = 0x99aabbccddeeff00ull;
	c.mxcsr = 0x1f80, c.mxcsr_mask = 0x2ffff;
	for (int i = 0; i < 8; i++)
		memset(c.st[i], 0x10 + i, 16);
	for (int i = 0; i < 16; i++)
		memset(c.xmm[i], 0x40 + i, 16);
	memset(img, 0xee, sizeof(img));
	ckpt_cpu_state__put_fxsave(&c, img);
	memcpy(&w, img + 0, 2);
	assert_int_equal(w, 0x037f);
	assert_int_equal(img[4], 0xa5);
	memcpy(&q, img + 8, 8);
	assert_true(q == 0x1122334455667788ull);
	memcpy(&d, img + 28, 4);
	assert_int_equal(d, 0x2ffff);
	assert_int_equal(img[32 + 16 * 7], 0x17);
	assert_int_equal(img[160 + 16 * 15 + 15], 0x4f);
	assert_int_equal(img[5], 0xee); /* reserved byte after the tag word */
	for (size_t i = 416; i < sizeof(img); i++)
		assert_int_equal(img[i], 0xee);
	memset(&back, 0, sizeof(back));
	ckpt_cpu_state__get_fxsave(&back, img);
	assert_int_equal(back.fsw, c.fsw);
	assert_int_equal(back.fop, c.fop);
	assert_true(back.fdp == c.fdp);
	assert_int_equal(back.mxcsr, c.mxcsr);
	assert_memory_equal(back.st, c.st, sizeof(c.st));
	assert_memory_equal(back.xmm, c.xmm, sizeof(c.xmm));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_fxsave_image),
		cmocka_unit_test(test_empty_manifest),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_random_corruption),
		cmocka_unit_test(test_envelope_errors),
		cmocka_unit_test(test_hostile_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
