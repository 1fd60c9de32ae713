/* The nondeterminism log: landmark hash, names and readable lines, the
 * writer/reader round trip of every event kind, and every way a log file
 * can be damaged or malformed, each refused with its own message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "checkpoint.h"
#include "store-priv.h"

static char err[1024];

#define HDR 32u
#define SUM 8u

/* ---- helpers ----------------------------------------------------------------------- */

static const uint8_t console_bytes[] = "ls -l\r\n\"q\"\\\x01\xff";
static uint8_t dma_bytes[300];

/* One event of every kind, with values that use every field's range: a
 * wrapping time delta, 64-bit rips, halted and not. */
static size_t sample_events(struct ckpt_event *ev)
{
	size_t n = 0;

	for (size_t i = 0; i < sizeof(dma_bytes); i++)
		dma_bytes[i] = (uint8_t)(i * 7 + 1);
	ev[n++] = (struct ckpt_event){ .kind = CKPT_EV_PIO_READ, .guest_time_ns = 1203456789,
		.at = { .sync_count = 0, .rip = 0x401234 }, .addr = 0x40, .size = 1,
		.value = 0x3c };
	ev[n++] = (struct ckpt_event){ .kind = CKPT_EV_PIO_WRITE, .guest_time_ns = 1203456790,
		.at = { .sync_count = 1, .rip = 0x401240 }, .addr = 0xffff, .size = 4,
		.value = 0xdeadbeef };
	ev[n++] = (struct ckpt_event){ .kind = CKPT_EV_MMIO_READ, .guest_time_ns = 5,
		.at = { .sync_count = 2, .rip = 0xffffffff81000000ull },
		.addr = 0xfffffffffffffull, .size = 8, .value = UINT64_MAX };
	ev[n++] = (struct ckpt_event){ .kind = CKPT_EV_MMIO_WRITE, .guest_time_ns = UINT64_MAX,
		.at = { .sync_count = 3, .rip = 1 }, .addr = 0xfee000b0, .size = 3,
		.value = 0xabcdef };
	ev[n++] = (struct ckpt_event){ .kind = CKPT_EV_IRQ, .guest_time_ns = 0,
		.at = { .sync_count = 4, .rip = 0x401000, .reg_hash = 0x9f3c00112233aabbull,
			.flags = CKPT_LM_HALTED, .gpr = { [CKPT_RAX] = 1, [CKPT_RSP] = 0x7ffff000,
			[CKPT_R15] = UINT64_MAX }, .cr3 = 0x1000 }, .value = 0x20 };
	ev[n++] = (struct ckpt_event){ .kind = CKPT_EV_CONSOLE_IN, .guest_time_ns = 7000000000,
		.at = { .sync_count = 4, .rip = 0x401002 }, .size = sizeof(console_bytes) - 1,
		.data = console_bytes };
	ev[n++] = (struct ckpt_event){ .kind = CKPT_EV_DMA, .guest_time_ns = 7000000001,
		.at = { .gpr = { [CKPT_RDI] = 0xffffffff81000000ull } }, .addr = 0x100000,
		.size = sizeof(dma_bytes), .data = dma_bytes };
	ev[n++] = (struct ckpt_event){ .kind = CKPT_EV_IRQ, .guest_time_ns = 7000000002,
		.at = { .sync_count = 3, .rip = 0x401003, .reg_hash = UINT64_MAX }, .value = 0xff };
	ev[n++] = (struct ckpt_event){ .kind = CKPT_EV_STOP, .guest_time_ns = 8000000000,
		.at = { .sync_count = 4, .rip = 0x402000, .reg_hash = 1 } };
	return n;
}

static void *encode(uint32_t interval, const struct ckpt_event *ev, size_t n, size_t *len)
{
	struct ckpt_log_writer *w = ckpt_log_writer__new(interval);
	void *buf;

	assert_non_null(w);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ckpt_log_writer__append(w, &ev[i]), 0);
	assert_int_equal(ckpt_log_writer__count(w), n);
	assert_int_equal(ckpt_log_writer__finish(w, &buf, len), 0);
	return buf;
}

static void *sample_log(uint32_t interval, size_t *len)
{
	struct ckpt_event ev[16];
	size_t n = sample_events(ev);

	return encode(interval, ev, n, len);
}

static void assert_event_equal(const struct ckpt_event *a, const struct ckpt_event *b)
{
	assert_int_equal(a->kind, b->kind);
	assert_true(a->guest_time_ns == b->guest_time_ns);
	assert_true(a->at.sync_count == b->at.sync_count);
	assert_true(a->at.rip == b->at.rip);
	assert_true(a->at.reg_hash == b->at.reg_hash);
	assert_int_equal(a->at.flags, b->at.flags);
	assert_memory_equal(a->at.gpr, b->at.gpr, sizeof(a->at.gpr));
	assert_true(a->at.cr3 == b->at.cr3);
	assert_true(a->addr == b->addr);
	assert_int_equal(a->size, b->size);
	assert_true(a->value == b->value);
	if (a->kind == CKPT_EV_CONSOLE_IN || a->kind == CKPT_EV_DMA) {
		assert_non_null(b->data);
		assert_memory_equal(a->data, b->data, a->size);
	} else {
		assert_null(b->data);
	}
}

/* Parse must fail with a message containing `want`. */
static void refused(const void *buf, size_t len, uint32_t interval, const char *want)
{
	struct ckpt_log *log = (struct ckpt_log *)1;

	err[0] = '\0';
	assert_int_equal(ckpt_log__parse(buf, len, interval, &log, err, sizeof(err)), -1);
	assert_null(log);
	if (!strstr(err, want))
		fail_msg("expected '%s' in: %s", want, err);
}

/* A frame around a hand-made payload, with a correct checksum, to reach
 * the event decoder with content the writer would never produce. */
static uint8_t *frame(const uint8_t *payload, size_t plen, uint64_t count, size_t *len)
{
	uint8_t *p = malloc(HDR + plen + SUM);

	memcpy(p, "SBLOG\0\0\0", 8);
	ckpt__put_le32(p + 8, CKPT_FORMAT_VERSION);
	ckpt__put_le32(p + 12, 0);
	ckpt__put_le64(p + 16, count);
	ckpt__put_le64(p + 24, plen);
	memcpy(p + HDR, payload, plen);
	ckpt__put_le64(p + HDR + plen, XXH3_64bits(p, HDR + plen));
	*len = HDR + plen + SUM;
	return p;
}

static void refused_payload(const uint8_t *payload, size_t plen, uint64_t count,
			    const char *want)
{
	size_t len;
	uint8_t *p = frame(payload, plen, count, &len);

	refused(p, len, 0, want);
	free(p);
}

/* ---- the landmark hash -------------------------------------------------------------- */

static void test_reg_hash(void **state)
{
	uint64_t gpr[CKPT_GPR__COUNT];
	uint8_t raw[17 * 8];
	uint64_t h;

	(void)state;
	for (int i = 0; i < CKPT_GPR__COUNT; i++)
		gpr[i] = 0x0102030405060708ull * (uint64_t)(i + 1);
	/* The definition: the 16 GPRs then RFLAGS, little-endian, RF, TF and
	 * the arithmetic flags cleared. */
	for (int i = 0; i < CKPT_GPR__COUNT; i++)
		ckpt__put_le64(raw + 8 * i, gpr[i]);
	ckpt__put_le64(raw + 128, 0x202);
	h = ckpt_landmark__reg_hash(gpr, 0x246);
	assert_true(h == XXH3_64bits(raw, sizeof(raw)));
	/* RF, TF, CF, PF, AF, ZF, SF, OF do not count; IF, DF and every
	 * register do. */
	assert_true(ckpt_landmark__reg_hash(gpr, 0x246 | 1u << 16 | 1u << 8) == h);
	assert_true(ckpt_landmark__reg_hash(gpr, 0x246 ^ CKPT_RFLAGS_CARRIED) == h);
	assert_true(ckpt_landmark__reg_hash(gpr, 0x246 ^ 1u << 9) != h);
	assert_true(ckpt_landmark__reg_hash(gpr, 0x246 ^ 1u << 10) != h);
	/* The landmark carries the arithmetic flags and RF, and gives them
	 * back. */
	for (uint64_t i = 0; i < 0x2000; i++) {
		uint64_t f = (i & 0xfff) | (i & 0x1000) << 4;
		uint32_t lm = ckpt_landmark__pack_rflags(f);
		assert_int_equal(lm & ~CKPT_LM_RFLAGS_MASK, 0);
		assert_true(ckpt_landmark__unpack_rflags(lm) == (f & CKPT_RFLAGS_CARRIED));
	}
	for (int i = 0; i < CKPT_GPR__COUNT; i++) {
		gpr[i] ^= 1ull << 63;
		assert_true(ckpt_landmark__reg_hash(gpr, 0x246) != h);
		gpr[i] ^= 1ull << 63;
	}
}

/* ---- names and lines ----------------------------------------------------------------- */

static void test_kind_names(void **state)
{
	static const char *const names[] = { NULL, "pio-read", "pio-write", "mmio-read",
		"mmio-write", "irq", "console-in", "dma", "stop" };

	(void)state;
	for (int k = 1; k < CKPT_EV__COUNT; k++)
		assert_string_equal(ckpt_event_kind__name((enum ckpt_event_kind)k), names[k]);
	assert_string_equal(ckpt_event_kind__name((enum ckpt_event_kind)0), "unknown");
	assert_string_equal(ckpt_event_kind__name(CKPT_EV__COUNT), "unknown");
}

static void test_format(void **state)
{
	struct ckpt_event ev[16];
	char line[512];
	static const char *const want[] = {
		"t=1.203456s pio-read port 0x40 size 1 value 0x3c at rip 0x401234 sync 0",
		"t=1.203456s pio-write port 0xffff size 4 value 0xdeadbeef at rip 0x401240 sync 1",
		"t=0.000000s mmio-read addr 0xfffffffffffff size 8 value 0xffffffffffffffff"
		" at rip 0xffffffff81000000 sync 2",
		"t=18446744073.709551s mmio-write addr 0xfee000b0 size 3 value 0xabcdef"
		" at rip 0x1 sync 3",
		"t=0.000000s irq vector 0x20 at sync 4 rip 0x401000 regs 0x9f3c00112233aabb"
		" (halted)",
		"t=7.000000s console-in 13 bytes \"ls -l\\r\\n\\\"q\\\"\\\\\\x01\\xff\"",
		"t=7.000000s dma addr 0x100000 300 bytes",
		"t=7.000000s irq vector 0xff at sync 3 rip 0x401003 regs 0xffffffffffffffff",
		"t=8.000000s stop at sync 4 rip 0x402000 regs 0x0000000000000001",
	};
	size_t n = sample_events(ev);

	(void)state;
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++) {
		ckpt_event__format(&ev[i], line, sizeof(line));
		assert_string_equal(line, want[i]);
	}
	/* A short buffer: cut, still terminated. */
	ckpt_event__format(&ev[0], line, 10);
	assert_string_equal(line, "t=1.20345");
	/* Long console input: cut with "...", the quote closed, within bounds. */
	{
		uint8_t big[400];
		struct ckpt_event c = { .kind = CKPT_EV_CONSOLE_IN, .size = sizeof(big),
					.data = big };
		char small[64];

		memset(big, 'a', sizeof(big));
		ckpt_event__format(&c, small, sizeof(small));
		assert_true(strlen(small) < sizeof(small));
		assert_non_null(strstr(small, "...\""));
		assert_int_equal(strncmp(small, "t=0.000000s console-in 400 bytes \"aaa", 37), 0);
	}
}

/* ---- round trips ------------------------------------------------------------------------ */

static void test_round_trip(void **state)
{
	struct ckpt_event ev[16];
	size_t n = sample_events(ev), len;
	void *buf = encode(42, ev, n, &len);
	struct ckpt_log *log;

	(void)state;
	if (ckpt_log__parse(buf, len, 42, &log, err, sizeof(err)) != 0)
		fail_msg("parse: %s", err);
	/* The events' data lives in the log, not in the caller's buffer. */
	memset(buf, 0, len);
	free(buf);
	assert_int_equal(ckpt_log__count(log), n);
	for (size_t i = 0; i < n; i++)
		assert_event_equal(&ev[i], ckpt_log__event(log, i));
	assert_null(ckpt_log__event(log, n));
	ckpt_log__free(log);
}

static void test_empty_log(void **state)
{
	size_t len;
	void *buf = encode(0, NULL, 0, &len);
	struct ckpt_log *log;

	(void)state;
	assert_int_equal(len, HDR + SUM);
	assert_int_equal(ckpt_log__parse(buf, len, 0, &log, err, sizeof(err)), 0);
	assert_int_equal(ckpt_log__count(log), 0);
	assert_null(ckpt_log__event(log, 0));
	ckpt_log__free(log);
	free(buf);
}

/* A long interval of accesses and interrupts: compact, and exact. */
static void test_many_events(void **state)
{
	enum { N = 20000 };
	struct ckpt_event *ev = calloc(N, sizeof(*ev));
	struct ckpt_log *log;
	uint64_t accesses = 0, t = 1000;
	size_t len;
	void *buf;

	(void)state;
	for (size_t i = 0; i < N; i++) {
		t += 1000 + i % 7;
		if (i % 10 == 9) {
			ev[i] = (struct ckpt_event){ .kind = CKPT_EV_IRQ, .guest_time_ns = t,
				.at = { accesses, 0x401000 + i, 0x1234567890abcdefull * i, 0 },
				.value = 0x20 + i % 16 };
		} else {
			ev[i] = (struct ckpt_event){ .kind = CKPT_EV_PIO_READ, .guest_time_ns = t,
				.at = { .sync_count = accesses++, .rip = 0x401000 + i % 32 },
				.addr = 0x3f8 + i % 8, .size = 1, .value = i & 0xff };
		}
	}
	buf = encode(7, ev, N, &len);
	/* Accesses are well under the 48 bytes of a fixed-width record; an
	 * interrupt adds its 16 raw registers. */
	assert_true(len < (size_t)N * 16 + N / 10 * (CKPT_GPR__COUNT + 1) * 8);
	assert_int_equal(ckpt_log__parse(buf, len, 7, &log, err, sizeof(err)), 0);
	assert_int_equal(ckpt_log__count(log), N);
	for (size_t i = 0; i < N; i++)
		assert_event_equal(&ev[i], ckpt_log__event(log, i));
	ckpt_log__free(log);
	free(buf);
	free(ev);
}

/* ---- damage ---------------------------------------------------------------------------------- */

static void test_every_truncation(void **state)
{
	size_t len;
	uint8_t *buf = sample_log(3, &len);
	char want[128];

	(void)state;
	for (size_t l = 0; l < len; l++) {
		if (l < HDR + SUM)
			snprintf(want, sizeof(want), "log: truncated (expected at least 40 bytes, "
				 "found %zu)", l);
		else
			snprintf(want, sizeof(want), "log: truncated (expected %zu bytes, found %zu)",
				 len, l);
		refused(buf, l, 3, want);
	}
	free(buf);
}

static void test_every_bit_flip(void **state)
{
	size_t len;
	uint8_t *buf = sample_log(3, &len);

	(void)state;
	for (size_t i = 0; i < len; i++) {
		for (int b = 0; b < 8; b++) {
			const char *want = "checksum mismatch";

			if (i < 8)
				want = "bad magic";
			else if (i < 12)
				want = "unknown format version";
			else if (i < 16)
				want = "wrong interval";
			else if (i >= 24 && i < 32)
				/* A payload length's bit set claims more bytes
				 * than there are; one cleared, fewer. */
				want = (buf[i] >> b & 1) ? "trailing bytes" : "truncated";
			buf[i] ^= (uint8_t)(1u << b);
			refused(buf, len, 3, want);
			buf[i] ^= (uint8_t)(1u << b);
		}
	}
	free(buf);
}

static void test_header_fields(void **state)
{
	size_t len;
	uint8_t *buf = sample_log(3, &len), *big;

	(void)state;
	refused(buf, len, 4, "log: wrong interval: the log of interval 3, expected 4");
	refused("SBLOX", 5, 3, "log: bad magic");
	refused("SBL", 3, 3, "log: truncated (expected at least 40 bytes, found 3)");
	/* One byte too many. */
	big = malloc(len + 1);
	memcpy(big, buf, len);
	big[len] = 0;
	refused(big, len + 1, 3, "log: 1 trailing bytes after the checksum");
	free(big);
	/* The next version with a matching checksum is still unknown. */
	char want[128];
	snprintf(want, sizeof(want), "log: unknown format version %u (this build reads version %u)",
		 CKPT_FORMAT_VERSION + 1, CKPT_FORMAT_VERSION);
	ckpt__put_le32(buf + 8, CKPT_FORMAT_VERSION + 1);
	ckpt__put_le64(buf + len - SUM, XXH3_64bits(buf, len - SUM));
	refused(buf, len, 3, want);
	free(buf);
}

/* ---- malformed events under a valid checksum ------------------------------------------------- */

/* The register hash, the 16 GPRs and CR3 of a landmark event, all zero. */
#define Z8 0, 0, 0, 0, 0, 0, 0, 0
#define LM_REGS Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8, Z8

static void test_event_checks(void **state)
{
	(void)state;
	/* kind time sync rip flags hash | kind fields */
	{
		const uint8_t p[] = { 9, 0, 0, 0, 0, 0, 0, 0 };
		refused_payload(p, sizeof(p), 1, "event 0 (payload offset 0): unknown event kind 9");
	}
	{
		const uint8_t p[] = { 0, 0, 0, 0, 0, 0, 0, 0 };
		refused_payload(p, sizeof(p), 1, "unknown event kind 0");
	}
	{	/* pio-read size 3 */
		const uint8_t p[] = { 1, 0, 0, 0, 0, 0, 0x40, 3, 0 };
		refused_payload(p, sizeof(p), 1, "pio-read: size 3 (must be 1, 2 or 4)");
	}
	{	/* pio size 8 */
		const uint8_t p[] = { 2, 0, 0, 0, 0, 0, 0x40, 8, 0 };
		refused_payload(p, sizeof(p), 1, "pio-write: size 8 (must be 1, 2 or 4)");
	}
	{	/* mmio size 0 and 9 */
		const uint8_t p[] = { 3, 0, 0, 0, 0, 0, 0x40, 0, 0 };
		const uint8_t q[] = { 4, 0, 0, 0, 0, 0, 0x40, 9, 0 };
		refused_payload(p, sizeof(p), 1, "mmio-read: size 0 (must be 1 to 8)");
		refused_payload(q, sizeof(q), 1, "mmio-write: size 9 (must be 1 to 8)");
	}
	{	/* port 0x10000 */
		const uint8_t p[] = { 1, 0, 0, 0, 0, 0, 0x80, 0x80, 0x04, 1, 0 };
		refused_payload(p, sizeof(p), 1, "pio-read: port 0x10000 beyond 0xffff");
	}
	{	/* value 0x100 in one byte */
		const uint8_t p[] = { 1, 0, 0, 0, 0, 0, 0x40, 1, 0x80, 0x02 };
		refused_payload(p, sizeof(p), 1, "pio-read: value 0x100 wider than 1 byte");
	}
	{	/* mmio address 2^52 */
		const uint8_t p[] = { 3, 0, 0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
				      0x80, 0x08, 4, 0 };
		refused_payload(p, sizeof(p), 1, "mmio-read: address 0x10000000000000 beyond 52 bits");
	}
	{	/* access sync count 1 as the first access */
		const uint8_t p[] = { 1, 0, 2, 0, 0, 0, 0x40, 1, 0 };
		refused_payload(p, sizeof(p), 1, "pio-read: sync count 1, expected 0");
	}
	{	/* an access while halted */
		const uint8_t p[] = { 1, 0, 0, 0, 1, 0, 0x40, 1, 0 };
		refused_payload(p, sizeof(p), 1, "pio-read: an access cannot happen while halted");
	}
	{	/* an access with RFLAGS bits in its landmark flags */
		const uint8_t p[] = { 1, 0, 0, 0, 0x80, 0, 0x40, 1, 0 };
		refused_payload(p, sizeof(p), 1, "pio-read: landmark flags 0x80 on an access");
	}
	{	/* irq landmark beyond the accesses seen */
		const uint8_t p[] = { 5, 0, 2, 0, 0, LM_REGS, 0x20 };
		refused_payload(p, sizeof(p), 1, "irq: landmark after 1 accesses, only 0 happened");
	}
	{	/* irq cut inside the register hash */
		const uint8_t p[] = { 5, 0, 0, 0, 0, 1, 2, 3 };
		refused_payload(p, sizeof(p), 1, "payload ends inside the register hash");
	}
	{	/* console-in with 5 bytes claimed, 2 present */
		const uint8_t p[] = { 6, 0, 0, 0, 0, 0, 0, 5, 'a', 'b' };
		refused_payload(p, sizeof(p), 1,
				"event 0 (payload offset 0): 5 data bytes, only 2 left in the payload");
	}
	{	/* dma length beyond 32 bits */
		const uint8_t p[] = { 7, 0, 0, 0, 0, LM_REGS, 0, 0x80, 0x80, 0x80, 0x80, 0x10 };
		refused_payload(p, sizeof(p), 1, "data length 4294967296 beyond 32 bits");
	}
	{	/* dma reaching past 52 bits */
		const uint8_t p[] = { 7, 0, 0, 0, 0, LM_REGS, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
				      0xff, 0x07, 2, 'a', 'b' };
		refused_payload(p, sizeof(p), 1, "dma: 2 bytes at 0xfffffffffffff beyond 52 bits");
	}
	{	/* varints: 11 bytes, overflowing, not shortest */
		const uint8_t p[] = { 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
				      0xff, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
		const uint8_t q[] = { 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
				      0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
		const uint8_t r[] = { 8, 0x80, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
		refused_payload(p, sizeof(p), 1, "time: varint overflows 64 bits");
		refused_payload(q, sizeof(q), 1, "time: varint overflows 64 bits");
		refused_payload(r, sizeof(r), 1, "time: varint not in its shortest form");
	}
	{	/* stop then irq */
		const uint8_t p[] = { 8, 0, 0, 0, 0, LM_REGS, 5, 0, 0, 0, 0, LM_REGS, 0x20 };
		refused_payload(p, sizeof(p), 2,
				"event 1 (payload offset 149): irq: after the stop event, which must be the last event");
	}
	{	/* counts against what the payload holds */
		const uint8_t dma[] = { 7, 0, 0, 0, 0, LM_REGS, 0, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
		const uint8_t two[] = { 6, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0 };
		const uint8_t cut[] = { 6, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 1, 2, 3 };
		refused_payload(dma, sizeof(dma), 2, "log: event count mismatch: the header says "
				"2 events, the payload holds 1");
		refused_payload(dma, sizeof(dma), 0, "log: event count mismatch: 161 payload bytes "
				"after the 0 events the header announces");
		refused_payload(two, sizeof(two), 1, "log: event count mismatch: 8 payload bytes "
				"after the 1 events the header announces");
		refused_payload(two, sizeof(two), 3, "log: event count mismatch: the header says "
				"3 events, 16 payload bytes hold at most 2");
		refused_payload(two, sizeof(two), UINT64_MAX,
				"the header says 18446744073709551615 events");
		refused_payload(cut, sizeof(cut), 2, "log: event 1 (payload offset 8): payload ends "
				"inside the register hash");
	}
}

static void test_writer_refuses(void **state)
{
	struct ckpt_log_writer *w = ckpt_log_writer__new(0);
	struct ckpt_event bad[] = {
		{ .kind = 0 },
		{ .kind = CKPT_EV__COUNT },
		{ .kind = CKPT_EV_PIO_READ, .size = 3 },
		{ .kind = CKPT_EV_PIO_READ, .size = 1, .value = 0x100 },
		{ .kind = CKPT_EV_PIO_READ, .size = 1, .at.sync_count = 5 },
		{ .kind = CKPT_EV_IRQ, .value = 256 },
		{ .kind = CKPT_EV_IRQ, .at.flags = 0x100 },
		{ .kind = CKPT_EV_PIO_READ, .size = 1, .at.gpr[CKPT_RBX] = 1 },
		{ .kind = CKPT_EV_PIO_READ, .size = 1, .at.cr3 = 0x1000 },
		{ .kind = CKPT_EV_CONSOLE_IN, .size = 3, .data = NULL },
	};
	struct ckpt_event ok = { .kind = CKPT_EV_PIO_READ, .size = 1 };
	struct ckpt_event stop = { .kind = CKPT_EV_STOP, .at.sync_count = 1 };
	struct ckpt_log *log;
	void *buf;
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		assert_int_equal(ckpt_log_writer__append(w, &bad[i]), -1);
		assert_int_equal(errno, EINVAL);
	}
	assert_int_equal(ckpt_log_writer__count(w), 0);
	assert_int_equal(ckpt_log_writer__append(w, &ok), 0);
	assert_int_equal(ckpt_log_writer__append(w, &stop), 0);
	/* Nothing after the stop. */
	ok.at.sync_count = 1;
	assert_int_equal(ckpt_log_writer__append(w, &ok), -1);
	assert_int_equal(ckpt_log_writer__count(w), 2);
	/* The refusals left no trace: the file is the two good events. */
	assert_int_equal(ckpt_log_writer__finish(w, &buf, &len), 0);
	assert_int_equal(ckpt_log__parse(buf, len, 0, &log, err, sizeof(err)), 0);
	assert_int_equal(ckpt_log__count(log), 2);
	assert_int_equal(ckpt_log__event(log, 1)->kind, CKPT_EV_STOP);
	ckpt_log__free(log);
	free(buf);
	ckpt_log_writer__free(NULL);
}

/* ---- from a recording ------------------------------------------------------------------------- */

static const struct ckpt_info info = {
	.memory_bytes = 4 * CKPT_PAGE_SIZE,
	.interval_ns = 1000000000,
	.mode = "cow",
	.cpu_model = "kvm64",
	.config_path = "vm.cfg",
	.config_text = "memory = \"16K\";\n",
	.created_by = "simuboost test",
};

static void commit(struct ckpt_store *st, uint32_t k, void *log, size_t len)
{
	struct ckpt_txn *tx = ckpt_txn__begin(st, k, err, sizeof(err));
	struct ckpt_state s = { .guest_time_ns = k };

	assert_non_null(tx);
	if (log)
		assert_int_equal(ckpt_txn__set_log(tx, log, len, err, sizeof(err)), 0);
	assert_int_equal(ckpt_txn__set_state(tx, &s, err, sizeof(err)), 0);
	if (ckpt_txn__commit(tx, err, sizeof(err)) != 0)
		fail_msg("commit %u: %s", k, err);
}

static void test_load(void **state)
{
	char tmp[] = "/tmp/simuboost-log-XXXXXX", dir[64], path[96], cmd[256], want[128];
	struct ckpt_event ev[16];
	size_t n = sample_events(ev), len;
	struct ckpt_store *st;
	struct ckpt_log *log;
	void *buf;

	(void)state;
	assert_non_null(mkdtemp(tmp));
	snprintf(dir, sizeof(dir), "%s/rec", tmp);
	st = ckpt_store__create(dir, &info, err, sizeof(err));
	assert_non_null(st);
	commit(st, 0, NULL, 0);
	buf = encode(0, ev, n, &len);
	commit(st, 1, buf, len);
	buf = encode(1, ev, 2, &len);
	commit(st, 2, buf, len);

	if (ckpt_log__load(st, 0, &log, err, sizeof(err)) != 0)
		fail_msg("load: %s", err);
	assert_int_equal(ckpt_log__count(log), n);
	for (size_t i = 0; i < n; i++)
		assert_event_equal(&ev[i], ckpt_log__event(log, i));
	ckpt_log__free(log);
	assert_int_equal(ckpt_log__load(st, 1, &log, err, sizeof(err)), 0);
	assert_int_equal(ckpt_log__count(log), 2);
	ckpt_log__free(log);

	/* Interval 1's file under interval 0's name: the header says so. */
	snprintf(cmd, sizeof(cmd), "cp %s/000001.log %s/000000.log", dir, dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(ckpt_log__load(st, 0, &log, err, sizeof(err)), -1);
	assert_null(log);
	assert_string_equal(err, "000000.log: wrong interval: the log of interval 1, expected 0");
	/* Truncated: named, with both sizes. */
	snprintf(path, sizeof(path), "%s/000001.log", dir);
	assert_int_equal(truncate(path, 40), 0);
	assert_int_equal(ckpt_log__load(st, 1, &log, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "000001.log: truncated (expected %zu bytes, found 40)", len);
	assert_string_equal(err, want);
	/* Missing. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(ckpt_log__load(st, 1, &log, err, sizeof(err)), -1);
	assert_string_equal(err, "000001.log: open: No such file or directory");

	ckpt_store__close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reg_hash),
		cmocka_unit_test(test_kind_names),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_empty_log),
		cmocka_unit_test(test_many_events),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_every_bit_flip),
		cmocka_unit_test(test_header_fields),
		cmocka_unit_test(test_event_checks),
		cmocka_unit_test(test_writer_refuses),
		cmocka_unit_test(test_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
