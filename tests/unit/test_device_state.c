/* Unit tests for device state save/restore (pic__save/restore, pit__...,
 * uart__..., devices__...).
 *
 * The main property: a device restored from a blob behaves exactly like the
 * device the blob was saved from. Each test drives an original into some
 * state through its ports, restores a fresh twin from it, then feeds both
 * the same pseudo-random operations at the same guest times and compares
 * everything observable: port reads, INT/IRQ callbacks, missed ticks,
 * deadlines, transmitted bytes. The other half: every malformed blob is
 * rejected with a message naming the device and the field, and the target
 * device does not change. */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "devices.h"

#define US 1000ull
#define MS 1000000ull
#define PIT_HZ 1193182ull
#define SEC 1000000000ull

/* ---- shared helpers */

static uint64_t rnd(uint64_t *s)
{
	/* xorshift64: deterministic, so a failure replays identically. */
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

struct blob {
	uint8_t *p;
	size_t n;
};

static void blob_free(struct blob *b)
{
	free(b->p);
	b->p = NULL;
	b->n = 0;
}

static void assert_err_has(const char *err, const char *needle)
{
	if (!strstr(err, needle)) {
		print_error("error message \"%s\" lacks \"%s\"\n", err, needle);
		fail();
	}
}

static void assert_blob_equal(const struct blob *a, const struct blob *b)
{
	assert_int_equal(a->n, b->n);
	assert_memory_equal(a->p, b->p, a->n);
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Generic access to the three devices, for the tests of malformed input. */
struct dev_ops {
	const char *name;
	size_t (*save)(const void *dev, uint8_t *buf, size_t cap);
	int (*restore)(void *dev, const uint8_t *buf, size_t len, char *err, size_t errlen);
};

static struct blob save_with(const struct dev_ops *ops, const void *dev)
{
	struct blob b;

	b.n = ops->save(dev, NULL, 0);
	assert_true(b.n > 6);
	b.p = malloc(b.n + 16);
	assert_non_null(b.p);
	memset(b.p, 0xcc, b.n + 16);
	assert_int_equal(ops->save(dev, b.p, b.n + 16), b.n);
	/* Never past the size it reported. */
	for (size_t i = b.n; i < b.n + 16; i++)
		assert_int_equal(b.p[i], 0xcc);
	return b;
}

/* ---- PIC */

static void pic_out(struct pic *pic, uint16_t port, uint8_t val)
{
	assert_true(pic__io(pic, port, true, &val));
}

static uint8_t pic_in(struct pic *pic, uint16_t port)
{
	uint8_t val = 0xa5;
	assert_true(pic__io(pic, port, false, &val));
	return val;
}

static void pic_init(struct pic *pic, uint8_t icw1, uint8_t icw4)
{
	pic_out(pic, 0x20, icw1);
	pic_out(pic, 0x21, 0x20);
	pic_out(pic, 0x21, 0x04);
	pic_out(pic, 0x21, icw4);
	pic_out(pic, 0xa0, icw1);
	pic_out(pic, 0xa1, 0x28);
	pic_out(pic, 0xa1, 0x02);
	pic_out(pic, 0xa1, icw4);
}

static void pic_pulse(struct pic *pic, unsigned irq)
{
	pic__set_irq(pic, irq, true);
	pic__set_irq(pic, irq, false);
}

/* Initialized, IRQ0 in service, IRQ1 and a slave IRQ latched behind it, a
 * masked request, a level-triggered slave line held high, an edge line held
 * high, a rotated slave priority and ISR selected for reads. */
static void pic_busy(struct pic *pic)
{
	pic_init(pic, 0x11, 0x01);
	pic_out(pic, 0x21, 0x20);          /* mask IRQ5 */
	pic_out(pic, 0xa1, 0x02);          /* mask IRQ9 */
	pic_out(pic, 0x4d1, 0x04);         /* IRQ10 level-triggered */
	pic__set_irq(pic, 10, true);
	pic_pulse(pic, 0);
	assert_true(pic__has_interrupt(pic));
	assert_int_equal(pic__ack(pic), 0x20);
	pic_pulse(pic, 1);
	pic_pulse(pic, 12);
	pic_pulse(pic, 5);
	pic__set_irq(pic, 3, true);
	pic_out(pic, 0xa0, 0xc4);          /* slave: IR4 lowest priority */
	pic_out(pic, 0x20, 0x0b);          /* master: reads return ISR */
	/* IRQ0 in service blocks the rest. */
	assert_false(pic__has_interrupt(pic));
	assert_int_equal(pic_in(pic, 0x20), 0x01);
}

/* One pseudo-random operation; returns what the guest or the vCPU loop
 * could observe. */
static unsigned pic_step(struct pic *pic, uint64_t r)
{
	static const uint16_t ports[] = { 0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1 };
	unsigned op = r % 16;
	r /= 16;
	uint8_t v = (uint8_t)r;
	r >>= 8;
	uint16_t cmd = (r & 1) ? 0xa0 : 0x20;
	r >>= 1;

	switch (op) {
	case 0:
	case 1:
	case 2:
		return pic_in(pic, ports[r % 6]);
	case 3:
	case 4:
	case 5:
		pic__set_irq(pic, v & 15, v & 0x10);
		break;
	case 6:
		pic_pulse(pic, v & 15);
		break;
	case 7:
	case 8:
		if (pic__has_interrupt(pic))
			return 0x100 | pic__ack(pic);
		break;
	case 9:
		pic_out(pic, cmd, 0x20);       /* non-specific EOI */
		break;
	case 10:
		pic_out(pic, cmd, v & 0xe7);   /* any OCW2 */
		break;
	case 11:
		pic_out(pic, cmd, (v & 0x67) | 0x08);   /* any OCW3 */
		break;
	case 12:
		pic_out(pic, (uint16_t)(cmd + 1), v);   /* IMR, or an ICW */
		break;
	case 13:
		pic_out(pic, (uint16_t)(0x4d0 + (r & 1)), v);
		break;
	case 14:
		/* Now and then start an initialization; case 12 finishes it
		 * (or not) later, so saves also see half-initialized chips. */
		if (v < 24)
			pic_out(pic, cmd, 0x10 | (v & 0x0b));
		break;
	default:
		break;
	}
	return 0x200 | pic__has_interrupt(pic);
}

static size_t pic_save_op(const void *dev, uint8_t *buf, size_t cap)
{
	return pic__save(dev, buf, cap);
}

static int pic_restore_op(void *dev, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	return pic__restore(dev, buf, len, err, errlen);
}

static const struct dev_ops pic_ops = { "pic", pic_save_op, pic_restore_op };

static struct pic *pic_twin(const struct pic *orig)
{
	struct blob b = save_with(&pic_ops, orig);
	struct pic *twin = pic__new();
	char err[256] = "";

	assert_non_null(twin);
	if (pic__restore(twin, b.p, b.n, err, sizeof(err)) != 0) {
		print_error("%s\n", err);
		fail();
	}
	/* Nothing is lost or normalized on the way. */
	struct blob again = save_with(&pic_ops, twin);
	assert_blob_equal(&b, &again);
	blob_free(&again);
	blob_free(&b);
	return twin;
}

static void pic_run_twins(struct pic *a, struct pic *b, uint64_t *seed, unsigned steps)
{
	for (unsigned i = 0; i < steps; i++) {
		uint64_t r = rnd(seed);
		unsigned va = pic_step(a, r), vb = pic_step(b, r);
		if (va != vb) {
			print_error("step %u (op %u): original 0x%x, restored 0x%x\n",
				    i, (unsigned)(r % 16), va, vb);
			fail();
		}
	}
}

static void test_pic_roundtrip_behaves_identically(void **state)
{
	(void)state;
	struct pic *a = pic__new();
	assert_non_null(a);
	pic_busy(a);

	struct pic *b = pic_twin(a);
	assert_int_equal(pic__has_interrupt(b), false);
	for (uint16_t port = 0x20; port <= 0x21; port++)
		assert_int_equal(pic_in(b, port), pic_in(a, port));

	/* The scripted part: EOI IRQ0, then IRQ1 and the slave come out in
	 * priority order with the same vectors. */
	for (struct pic *p = a;; p = b) {
		pic_out(p, 0x20, 0x20);
		assert_true(pic__has_interrupt(p));
		assert_int_equal(pic__ack(p), 0x21);
		pic_out(p, 0x20, 0x20);
		assert_true(pic__has_interrupt(p));
		assert_int_equal(pic__ack(p), 0x2a);     /* IRQ10, level, held high */
		assert_int_equal(pic_in(p, 0x20), 0x04);  /* ISR: cascade */
		pic_out(p, 0xa0, 0x0b);
		assert_int_equal(pic_in(p, 0xa0), 0x04);  /* slave ISR: IR2 */
		if (p == b)
			break;
	}

	uint64_t seed = 0x9e3779b97f4a7c15ull;
	pic_run_twins(a, b, &seed, 20000);
	pic__free(b);
	pic__free(a);
}

/* Restores a fresh twin at many points of a random run (including halfway
 * through initialization sequences and in poll mode). */
static void test_pic_restore_anywhere(void **state)
{
	(void)state;
	struct pic *a = pic__new();
	uint64_t seed = 12345;

	assert_non_null(a);
	pic_init(a, 0x11, 0x01);
	pic_out(a, 0x21, 0x00);
	pic_out(a, 0xa1, 0x00);
	for (unsigned round = 0; round < 400; round++) {
		struct pic *b = pic_twin(a);
		/* Varying lengths, so that the next save finds other states. */
		pic_run_twins(a, b, &seed, 1 + round % 61);
		pic__free(b);
	}
	pic__free(a);
}

static void test_pic_mid_initialization(void **state)
{
	(void)state;
	struct pic *a = pic__new();
	assert_non_null(a);
	pic_out(a, 0x20, 0x11);
	pic_out(a, 0x21, 0x40);  /* ICW2; ICW3 and ICW4 still to come */
	struct pic *b = pic_twin(a);

	for (struct pic *p = a;; p = b) {
		pic_out(p, 0x21, 0x04);
		pic_out(p, 0x21, 0x03);  /* auto-EOI */
		pic_out(p, 0x21, 0xfe);  /* this is now the IMR */
		assert_int_equal(pic_in(p, 0x21), 0xfe);
		pic_pulse(p, 0);
		assert_int_equal(pic__ack(p), 0x40);
		pic_out(p, 0x20, 0x0b);
		assert_int_equal(pic_in(p, 0x20), 0x00);  /* auto-EOI: nothing in service */
		if (p == b)
			break;
	}
	pic__free(b);
	pic__free(a);
}

/* ---- PIT */

struct irq_log {
	unsigned rises;
	unsigned falls;
	bool level;
};

static void irq_log_cb(void *opaque, bool level)
{
	struct irq_log *log = opaque;

	/* Only level changes may be signalled. */
	assert_int_not_equal(level, log->level);
	log->level = level;
	if (level)
		log->rises++;
	else
		log->falls++;
}

static uint64_t ref_ns(uint64_t tick)
{
	return (tick * SEC + PIT_HZ - 1) / PIT_HZ;
}

static void pit_out(struct pit *pit, uint16_t port, uint8_t val, uint64_t now)
{
	assert_true(pit__io(pit, port, true, &val, now));
}

static uint8_t pit_in(struct pit *pit, uint16_t port, uint64_t now)
{
	uint8_t val = 0xa5;
	assert_true(pit__io(pit, port, false, &val, now));
	return val;
}

static void pit_program(struct pit *pit, unsigned ch, unsigned mode, uint16_t count, uint64_t now)
{
	pit_out(pit, 0x43, (uint8_t)(ch << 6 | 0x30 | mode << 1), now);
	pit_out(pit, (uint16_t)(0x40 + ch), (uint8_t)count, now);
	pit_out(pit, (uint16_t)(0x40 + ch), (uint8_t)(count >> 8), now);
}

struct pit_rig {
	struct pit *pit;
	struct irq_log log;
};

static void pit_rig_init(struct pit_rig *r)
{
	memset(r, 0, sizeof(*r));
	r->pit = pit__new(irq_log_cb, &r->log);
	assert_non_null(r->pit);
}

/* Channel 0 periodic with a new count pending for the period end and edges
 * passed but not yet reported; channel 1 half-way through a lo/hi count
 * write; channel 2 gated on in mode 3 with a latched count half read.
 * Returns the guest time it got to. */
static uint64_t pit_busy(struct pit_rig *r)
{
	struct pit *pit = r->pit;

	pit_program(pit, 0, 2, 1193, 0);                /* edges every 1193 ticks */
	pit_out(pit, 0x61, 0x01, 10 * US);              /* channel 2 gate on */
	pit_program(pit, 2, 3, 5000, 20 * US);
	pit_program(pit, 1, 0, 3000, 30 * US);
	assert_int_equal(pit__advance(pit, 2500 * US), 1);
	assert_int_equal(r->log.rises, 1);
	/* A read syncs the counters; the edges at ticks 3579, 4772 and 5965
	 * have passed but stay unreported. */
	(void)pit_in(pit, 0x61, 5700 * US);
	assert_int_equal(pit__next_deadline(pit), ref_ns(3579));
	/* A new count, for the end of the current period (tick 7158). */
	pit_out(pit, 0x40, 0xd0, 5750 * US);
	pit_out(pit, 0x40, 0x07, 5750 * US);
	pit_out(pit, 0x43, 0x80, 5760 * US);           /* latch channel 2 */
	(void)pit_in(pit, 0x42, 5770 * US);             /* its LSB only */
	pit_out(pit, 0x41, 0x10, 5780 * US);            /* first byte of ch1's count */
	return 5800 * US;
}

static uint64_t pit_step(struct pit *pit, uint64_t r, uint64_t now)
{
	unsigned op = r % 12;
	r /= 12;
	uint8_t v = (uint8_t)r;
	r >>= 8;
	unsigned ch = r % 3;

	switch (op) {
	case 0:
	case 1:
		return 0x10000 | pit__advance(pit, now);
	case 2:
	case 3:
		return pit_in(pit, (uint16_t)(0x40 + ch), now);
	case 4:
		return pit_in(pit, 0x61, now);
	case 5:
		pit_out(pit, 0x61, v, now);
		break;
	case 6:
		/* Any control word for the channel, latch commands included. */
		pit_out(pit, 0x43, (uint8_t)(ch << 6 | (v & 0x3e)), now);
		break;
	case 7:
		pit_out(pit, 0x43, (uint8_t)(0xc0 | (v & 0x3e)), now);   /* read-back */
		break;
	case 8:
	case 9:
		pit_out(pit, (uint16_t)(0x40 + ch), v, now);
		break;
	case 10:
		return pit_in(pit, 0x43, now);
	default:
		break;
	}
	return pit__next_deadline(pit);
}

static size_t pit_save_op(const void *dev, uint8_t *buf, size_t cap)
{
	return pit__save(dev, buf, cap);
}

static int pit_restore_op(void *dev, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	return pit__restore(dev, buf, len, err, errlen);
}

static const struct dev_ops pit_ops = { "pit", pit_save_op, pit_restore_op };

static void pit_twin(struct pit_rig *twin, const struct pit_rig *orig)
{
	struct blob b = save_with(&pit_ops, orig->pit);
	char err[256] = "";

	pit_rig_init(twin);
	if (pit__restore(twin->pit, b.p, b.n, err, sizeof(err)) != 0) {
		print_error("%s\n", err);
		fail();
	}
	/* A PIT signals nothing when restored: pending edges wait for advance. */
	assert_int_equal(twin->log.rises, 0);
	struct blob again = save_with(&pit_ops, twin->pit);
	assert_blob_equal(&b, &again);
	blob_free(&again);
	blob_free(&b);
	assert_int_equal(pit__next_deadline(twin->pit), pit__next_deadline(orig->pit));
}

/* Same operations at the same times; `now` moves on by up to max_step. */
static void pit_run_twins(struct pit_rig *a, struct pit_rig *b, uint64_t *seed, uint64_t *now,
			  unsigned steps, uint64_t max_step)
{
	unsigned rises_a = a->log.rises, rises_b = b->log.rises;

	for (unsigned i = 0; i < steps; i++) {
		uint64_t r = rnd(seed);
		*now += (r >> 40) % max_step;
		uint64_t va = pit_step(a->pit, r, *now), vb = pit_step(b->pit, r, *now);
		if (va != vb) {
			print_error("step %u (op %u) at %llu ns: original 0x%llx, restored 0x%llx\n",
				    i, (unsigned)(r % 12), (unsigned long long)*now,
				    (unsigned long long)va, (unsigned long long)vb);
			fail();
		}
		assert_int_equal(a->log.rises - rises_a, b->log.rises - rises_b);
		assert_int_equal(a->log.level, b->log.level);
	}
}

static void test_pit_roundtrip_behaves_identically(void **state)
{
	(void)state;
	struct pit_rig a, b;
	pit_rig_init(&a);
	uint64_t now = pit_busy(&a);

	pit_twin(&b, &a);

	/* The half-read latch goes on with its MSB, then live counts. */
	assert_int_equal(pit_in(b.pit, 0x42, now), pit_in(a.pit, 0x42, now));
	/* The three pending edges fire at once, as one coalesced edge. */
	assert_int_equal(pit__advance(a.pit, now), 2);
	assert_int_equal(pit__advance(b.pit, now), 2);
	assert_int_equal(b.log.rises, 1);
	assert_int_equal(b.log.falls, 1);
	/* The reload happens at the period end, and the period changes. */
	assert_int_equal(pit__next_deadline(b.pit), ref_ns(7158));
	now = ref_ns(7158);
	assert_int_equal(pit__advance(a.pit, now), 0);
	assert_int_equal(pit__advance(b.pit, now), 0);
	assert_int_equal(b.log.rises, 2);
	assert_int_equal(pit__next_deadline(a.pit), ref_ns(9158));
	assert_int_equal(pit__next_deadline(b.pit), ref_ns(9158));

	/* Then edge for edge, at the original's times. */
	unsigned rises_a = a.log.rises, rises_b = b.log.rises;
	for (unsigned i = 0; i < 400; i++) {
		now += 137 * US;
		assert_int_equal(pit__advance(b.pit, now), pit__advance(a.pit, now));
		assert_int_equal(b.log.rises - rises_b, a.log.rises - rises_a);
		assert_int_equal(pit__next_deadline(b.pit), pit__next_deadline(a.pit));
		for (uint16_t port = 0x40; port <= 0x42; port++)
			assert_int_equal(pit_in(b.pit, port, now), pit_in(a.pit, port, now));
		assert_int_equal(pit_in(b.pit, 0x61, now), pit_in(a.pit, 0x61, now));
		if (i == 100) {
			/* Finish channel 1's count; gate channel 2 off. */
			pit_out(a.pit, 0x41, 0x02, now);
			pit_out(b.pit, 0x41, 0x02, now);
			pit_out(a.pit, 0x61, 0x00, now);
			pit_out(b.pit, 0x61, 0x00, now);
		}
	}

	uint64_t seed = 0xfeedface;
	pit_run_twins(&a, &b, &seed, &now, 20000, 2 * MS);
	pit__free(b.pit);
	pit__free(a.pit);
}

static void test_pit_restore_anywhere(void **state)
{
	(void)state;
	struct pit_rig a;
	uint64_t seed = 777, now = 0;

	pit_rig_init(&a);
	pit_program(a.pit, 0, 2, 1193, 0);
	for (unsigned round = 0; round < 400; round++) {
		struct pit_rig b;
		pit_twin(&b, &a);
		/* Short and long steps: mid-period and many periods at once;
		 * varying lengths, so that the next save finds other states. */
		pit_run_twins(&a, &b, &seed, &now, 1 + round % 41, round & 1 ? 300 * US : 5 * MS);
		pit__free(b.pit);
	}
	pit__free(a.pit);
}

/* ---- UART */

#define COM1 0x3f8

struct uart_rig {
	struct uart *uart;
	int out[2];   /* the UART writes out[1] */
	int in[2];    /* the UART reads in[0] */
	struct irq_log log;
};

static void uart_rig_init(struct uart_rig *r)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(pipe(r->out), 0);
	assert_int_equal(pipe(r->in), 0);
	fcntl(r->out[0], F_SETFL, O_NONBLOCK);
	r->uart = uart__new(r->out[1], r->in[0], irq_log_cb, &r->log);
	assert_non_null(r->uart);
}

static void uart_rig_free(struct uart_rig *r)
{
	uart__free(r->uart);
	for (unsigned i = 0; i < 2; i++) {
		close(r->out[i]);
		close(r->in[i]);
	}
}

static void uart_out(struct uart *u, unsigned reg, uint8_t val)
{
	assert_true(uart__io(u, (uint16_t)(COM1 + reg), true, &val));
}

static uint8_t uart_in(struct uart *u, unsigned reg)
{
	uint8_t val = 0xa5;
	assert_true(uart__io(u, (uint16_t)(COM1 + reg), false, &val));
	return val;
}

static void uart_feed(struct uart_rig *r, const void *p, size_t n)
{
	assert_int_equal(write(r->in[1], p, n), (ssize_t)n);
}

/* Takes what the UART has transmitted so far. */
static size_t uart_drain(struct uart_rig *r, uint8_t *buf, size_t cap)
{
	ssize_t n = read(r->out[0], buf, cap);
	return n > 0 ? (size_t)n : 0;
}

/* Input left in the original's fd is not device state; a twin must see the
 * same input, so move it to both. */
static void uart_share_input(struct uart_rig *a, struct uart_rig *b)
{
	uint8_t *buf = NULL;
	size_t n = 0;
	struct pollfd pfd = { .fd = a->in[0], .events = POLLIN };

	while (poll(&pfd, 1, 0) == 1) {
		buf = realloc(buf, n + 4096);
		assert_non_null(buf);
		ssize_t k = read(a->in[0], buf + n, 4096);
		assert_true(k > 0);
		n += (size_t)k;
	}
	if (n) {
		uart_feed(a, buf, n);
		uart_feed(b, buf, n);
	}
	free(buf);
}

/* Divisor programmed, FIFO on with a trigger of 4 holding received bytes,
 * interrupts on, scratch written, modem outputs set, two bytes sent. */
static void uart_busy(struct uart_rig *r)
{
	struct uart *u = r->uart;
	uint8_t junk[16];

	uart_out(u, 3, 0x80);
	uart_out(u, 0, 0x01);
	uart_out(u, 1, 0x02);
	uart_out(u, 3, 0x03);
	uart_out(u, 2, 0x47);
	uart_out(u, 1, 0x07);
	uart_out(u, 7, 0x5a);
	uart_out(u, 4, 0x0b);
	uart_out(u, 0, 'a');
	uart_out(u, 0, 'b');
	assert_int_equal(uart_drain(r, junk, sizeof(junk)), 2);
	uart_feed(r, "hello world", 11);
	assert_true(uart__poll_input(u));
	assert_int_equal(uart_in(u, 0), 'h');
	assert_true(r->log.level);
}

static unsigned uart_step(struct uart_rig *r, uint64_t v)
{
	struct uart *u = r->uart;
	unsigned op = v % 10;
	v /= 10;
	unsigned reg = v % 8;
	v /= 8;
	uint8_t val = (uint8_t)v;
	v >>= 8;

	switch (op) {
	case 0:
	case 1:
	case 2:
		return uart_in(u, reg);
	case 3:
	case 4:
		/* Keep loopback and DLAB on only part of the time. */
		if (reg == 4 && (v & 3))
			val &= ~0x10;
		if (reg == 3 && (v & 3))
			val &= ~0x80;
		uart_out(u, reg, val);
		break;
	case 5: {
		uint8_t bytes[6];
		size_t n = 1 + v % 6;
		for (size_t i = 0; i < n; i++)
			bytes[i] = (uint8_t)(val + i);
		uart_feed(r, bytes, n);
		return 0x100 | uart__poll_input(u);
	}
	case 6:
		return uart_in(u, 5);
	case 7:
		return uart_in(u, 2);
	case 8:
		uart_out(u, 0, val);
		break;
	default:
		return (unsigned)uart__tx_bytes(u);
	}
	return 0x200 | r->log.level;
}

static size_t uart_save_op(const void *dev, uint8_t *buf, size_t cap)
{
	return uart__save(dev, buf, cap);
}

static int uart_restore_op(void *dev, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	return uart__restore(dev, buf, len, err, errlen);
}

static const struct dev_ops uart_ops = { "uart", uart_save_op, uart_restore_op };

static void uart_twin(struct uart_rig *twin, struct uart_rig *orig)
{
	struct blob b = save_with(&uart_ops, orig->uart);
	char err[256] = "";
	uint8_t junk[4096];

	uart_rig_init(twin);
	uart_share_input(orig, twin);
	while (uart_drain(orig, junk, sizeof(junk)))
		;
	if (uart__restore(twin->uart, b.p, b.n, err, sizeof(err)) != 0) {
		print_error("%s\n", err);
		fail();
	}
	/* The IRQ line was re-driven to the original's level, with one
	 * change at most. */
	assert_int_equal(twin->log.level, orig->log.level);
	assert_int_equal(twin->log.rises, orig->log.level ? 1 : 0);
	assert_int_equal(twin->log.falls, 0);
	assert_int_equal(uart__tx_bytes(twin->uart), uart__tx_bytes(orig->uart));
	struct blob again = save_with(&uart_ops, twin->uart);
	assert_blob_equal(&b, &again);
	blob_free(&again);
	blob_free(&b);
}

static void uart_run_twins(struct uart_rig *a, struct uart_rig *b, uint64_t *seed, unsigned steps)
{
	unsigned rises_a = a->log.rises, rises_b = b->log.rises;
	unsigned falls_a = a->log.falls, falls_b = b->log.falls;

	for (unsigned i = 0; i < steps; i++) {
		uint64_t r = rnd(seed);
		unsigned va = uart_step(a, r), vb = uart_step(b, r);
		if (va != vb) {
			print_error("step %u (op %u): original 0x%x, restored 0x%x\n",
				    i, (unsigned)(r % 10), va, vb);
			fail();
		}
		assert_int_equal(a->log.level, b->log.level);
		assert_int_equal(a->log.rises - rises_a, b->log.rises - rises_b);
		assert_int_equal(a->log.falls - falls_a, b->log.falls - falls_b);
		if (i % 64 == 63 || i + 1 == steps) {
			uint8_t oa[4096], ob[4096];
			size_t na = uart_drain(a, oa, sizeof(oa)), nb = uart_drain(b, ob, sizeof(ob));
			assert_int_equal(na, nb);
			assert_memory_equal(oa, ob, na);
		}
	}
}

static void test_uart_roundtrip_behaves_identically(void **state)
{
	(void)state;
	struct uart_rig a, b;

	uart_rig_init(&a);
	uart_busy(&a);
	uart_twin(&b, &a);

	/* Every register reads the same, and the FIFO drains the same bytes
	 * with the same IIR/LSR sequence and IRQ changes. */
	for (unsigned i = 0; i < 12; i++) {
		for (unsigned reg = 0; reg < 8; reg++) {
			uint8_t va = uart_in(a.uart, reg), vb = uart_in(b.uart, reg);
			assert_int_equal(va, vb);
			assert_int_equal(a.log.level, b.log.level);
		}
	}
	assert_false(b.log.level);
	assert_int_equal(uart_in(b.uart, 7), 0x5a);

	/* Sending: the same bytes come out and the counts go on together. */
	uart_out(a.uart, 0, 'z');
	uart_out(b.uart, 0, 'z');
	uint8_t oa[8], ob[8];
	assert_int_equal(uart_drain(&a, oa, sizeof(oa)), 1);
	assert_int_equal(uart_drain(&b, ob, sizeof(ob)), 1);
	assert_int_equal(ob[0], 'z');
	assert_int_equal(uart__tx_bytes(b.uart), 3);

	uint64_t seed = 4242;
	uart_run_twins(&a, &b, &seed, 20000);
	uart_rig_free(&b);
	uart_rig_free(&a);
}

static void test_uart_dlab_and_loopback(void **state)
{
	(void)state;
	struct uart_rig a, b;

	uart_rig_init(&a);
	uart_busy(&a);
	/* Loopback with a full FIFO: an overrun is pending in LSR. */
	uart_out(a.uart, 4, 0x1f);
	for (unsigned i = 0; i < 10; i++)
		uart_out(a.uart, 0, (uint8_t)('0' + i));
	uart_out(a.uart, 3, 0x83);   /* DLAB on at the save */
	uart_twin(&b, &a);

	assert_int_equal(uart_in(b.uart, 0), 0x01);
	assert_int_equal(uart_in(b.uart, 1), 0x02);
	assert_int_equal(uart_in(b.uart, 5) & 0x03, 0x03);   /* DR and OE */
	assert_int_equal(uart_in(a.uart, 5) & 0x03, 0x03);
	uart_out(a.uart, 3, 0x03);
	uart_out(b.uart, 3, 0x03);
	for (unsigned i = 0; i < 17; i++)
		assert_int_equal(uart_in(b.uart, 0), uart_in(a.uart, 0));
	assert_int_equal(uart_in(b.uart, 6), uart_in(a.uart, 6));

	uint64_t seed = 99;
	uart_run_twins(&a, &b, &seed, 5000);
	uart_rig_free(&b);
	uart_rig_free(&a);
}

static void test_uart_restore_anywhere(void **state)
{
	(void)state;
	struct uart_rig a;
	uint64_t seed = 31337;

	uart_rig_init(&a);
	uart_out(a.uart, 1, 0x0f);
	for (unsigned round = 0; round < 400; round++) {
		struct uart_rig b;
		uart_twin(&b, &a);
		uart_run_twins(&a, &b, &seed, 1 + round % 41);
		uart_rig_free(&b);
	}
	uart_rig_free(&a);
}

/* Restoring a low-IRQ state into a UART that drives its line high lowers it. */
static void test_uart_restore_lowers_irq(void **state)
{
	(void)state;
	struct uart_rig quiet, busy;
	char err[256];

	uart_rig_init(&quiet);
	uart_rig_init(&busy);
	uart_busy(&busy);
	assert_true(busy.log.level);
	struct irq_log before = busy.log;
	struct blob b = save_with(&uart_ops, quiet.uart);
	assert_int_equal(uart__restore(busy.uart, b.p, b.n, err, sizeof(err)), 0);
	assert_false(busy.log.level);
	assert_int_equal(busy.log.falls, before.falls + 1);
	assert_int_equal(busy.log.rises, before.rises);
	assert_int_equal(uart_in(busy.uart, 2), 0x01);
	blob_free(&b);
	uart_rig_free(&busy);
	uart_rig_free(&quiet);
}

/* ---- malformed device blobs */

struct bad_ctx {
	const struct dev_ops *ops;
	void *target;
	const struct irq_log *log;   /* the target's IRQ log, or NULL */
};

/* Expects the restore of buf to fail naming `needle`, with the target and
 * its IRQ line left as they were. */
static void expect_rejected(const struct bad_ctx *c, const uint8_t *buf, size_t len, const char *needle)
{
	struct blob before = save_with(c->ops, c->target);
	struct irq_log log_before = c->log ? *c->log : (struct irq_log){ 0 };
	char err[256];

	memset(err, 0, sizeof(err));
	if (c->ops->restore(c->target, buf, len, err, sizeof(err)) != -1) {
		print_error("%s: a bad blob of %zu bytes was accepted (expected \"%s\")\n",
			    c->ops->name, len, needle);
		fail();
	}
	assert_true(strncmp(err, c->ops->name, strlen(c->ops->name)) == 0);
	assert_err_has(err, needle);
	struct blob after = save_with(c->ops, c->target);
	assert_blob_equal(&before, &after);
	if (c->log)
		assert_memory_equal(&log_before, c->log, sizeof(log_before));
	blob_free(&after);
	blob_free(&before);
}

/* Truncated at every length, one byte too long, wrong tag and version. */
static void check_framing(const struct bad_ctx *c, const struct blob *good)
{
	char name[64];

	for (size_t n = 0; n < good->n; n++) {
		/* A copy of exactly n bytes, so that ASan sees any overread. */
		uint8_t *p = malloc(n ? n : 1);
		assert_non_null(p);
		memcpy(p, good->p, n);
		expect_rejected(c, p, n, "truncated");
		free(p);
	}

	uint8_t *p = malloc(good->n + 1);
	assert_non_null(p);
	memcpy(p, good->p, good->n);
	p[good->n] = 0;
	expect_rejected(c, p, good->n + 1, "trailing");

	memcpy(p, good->p, good->n);
	p[4]++;
	expect_rejected(c, p, good->n, "version");
	memcpy(p, good->p, good->n);
	p[5] = 0xff;
	expect_rejected(c, p, good->n, "version");

	memcpy(p, good->p, good->n);
	p[0] ^= 0x20;
	snprintf(name, sizeof(name), "%s: tag", c->ops->name);
	expect_rejected(c, p, good->n, name);
	free(p);

	expect_rejected(c, NULL, 0, "truncated");

	/* Too small a buffer is left alone. */
	uint8_t small[8];
	memset(small, 0xcc, sizeof(small));
	assert_int_equal(c->ops->save(c->target, small, sizeof(small)), c->ops->save(c->target, NULL, 0));
	for (size_t i = 0; i < sizeof(small); i++)
		assert_int_equal(small[i], 0xcc);
}

struct patch {
	size_t off;
	unsigned width;
	uint64_t val;
};

/* Applies the patches to a copy and expects rejection naming `field`. */
static void check_patches(const struct bad_ctx *c, const struct blob *good, const struct patch *pt,
			  unsigned n, const char *field)
{
	uint8_t *p = malloc(good->n);

	assert_non_null(p);
	memcpy(p, good->p, good->n);
	for (unsigned i = 0; i < n; i++) {
		assert_true(pt[i].off + pt[i].width <= good->n);
		put_le(p + pt[i].off, pt[i].val, pt[i].width);
	}
	expect_rejected(c, p, good->n, field);
	free(p);
}

static void check_field(const struct bad_ctx *c, const struct blob *good, size_t off, unsigned width,
			uint64_t val, const char *field)
{
	struct patch pt = { off, width, val };
	check_patches(c, good, &pt, 1, field);
}

/* Every single-byte change is either rejected (device unchanged) or yields
 * a device that saves back to exactly the changed bytes, and that then runs
 * without tripping the sanitizers. */
static void check_mutations(const struct bad_ctx *c, const struct blob *good,
			    void (*exercise)(void *dev, uint64_t seed))
{
	uint8_t *p = malloc(good->n);
	unsigned accepted = 0;

	assert_non_null(p);
	for (size_t off = 0; off < good->n; off++) {
		for (unsigned v = 0; v < 256; v++) {
			if (v == good->p[off])
				continue;
			memcpy(p, good->p, good->n);
			p[off] = (uint8_t)v;

			struct blob before = save_with(c->ops, c->target);
			char err[256] = "";
			if (c->ops->restore(c->target, p, good->n, err, sizeof(err)) < 0) {
				assert_true(strncmp(err, c->ops->name, strlen(c->ops->name)) == 0);
				struct blob after = save_with(c->ops, c->target);
				assert_blob_equal(&before, &after);
				blob_free(&after);
			} else {
				struct blob after = save_with(c->ops, c->target);
				assert_int_equal(after.n, good->n);
				assert_memory_equal(after.p, p, good->n);
				blob_free(&after);
				exercise(c->target, off * 256 + v + 1);
				accepted++;
				/* Back to the reference state for the next change. */
				assert_int_equal(c->ops->restore(c->target, good->p, good->n, err, sizeof(err)), 0);
			}
			blob_free(&before);
		}
	}
	/* Register contents and counters are free; not everything is refused. */
	assert_true(accepted > 0);
	free(p);
}

static void pic_exercise(void *dev, uint64_t seed)
{
	for (unsigned i = 0; i < 30; i++)
		(void)pic_step(dev, rnd(&seed));
}

static void test_pic_rejects_bad_blobs(void **state)
{
	(void)state;
	struct pic *src = pic__new(), *target = pic__new();
	assert_non_null(src);
	assert_non_null(target);
	pic_busy(src);
	pic_init(target, 0x11, 0x03);
	pic_out(target, 0x21, 0x5a);
	pic_pulse(target, 7);

	struct blob good = save_with(&pic_ops, src);
	struct bad_ctx c = { &pic_ops, target, NULL };
	/* Layout (see pic.c): 6 header bytes, then 17 bytes per chip: irr isr
	 * imr line elcr vector_base lowest_prio icw_step icw4_needed single ltim
	 * auto_eoi rotate_on_aeoi sfnm special_mask read_isr poll. */
	assert_int_equal(good.n, 6 + 2 * 17);
	const size_t m = 6, s = 6 + 17;

	check_framing(&c, &good);
	check_field(&c, &good, m + 6, 1, 8, "master.lowest_prio");
	check_field(&c, &good, s + 7, 1, 4, "slave.icw_step");
	/* Waiting for ICW3 although ICW1 said single; for ICW4 although ICW1
	 * said there is none. */
	check_patches(&c, &good, (const struct patch[]){ { s + 7, 1, 2 }, { s + 9, 1, 1 } }, 2,
		      "slave.icw_step");
	check_patches(&c, &good, (const struct patch[]){ { s + 7, 1, 3 }, { s + 8, 1, 0 } }, 2,
		      "slave.icw_step");
	check_field(&c, &good, m + 7, 1, 1, "master.isr");         /* IRQ0 in service mid-init */
	check_field(&c, &good, m + 16, 1, 2, "master.poll");
	check_field(&c, &good, s + 9, 1, 0x80, "slave.single");
	check_field(&c, &good, m + 4, 1, 0x04, "master.elcr");     /* IRQ2 hard-wired edge */
	check_field(&c, &good, s + 5, 1, 0x71, "slave.vector_base");
	check_field(&c, &good, m + 11, 1, 1, "master.isr");        /* auto-EOI, IRQ0 in service */
	check_field(&c, &good, s + 3, 1, 0x00, "slave.irr");       /* level IRQ10 high, no request */
	check_field(&c, &good, m + 10, 1, 1, "master.irr");        /* LTIM: IRR must be the lines */
	/* The slave requests IRQ12 (behind IRQ0 on the master), so the
	 * master's IR2 input must be high. */
	check_field(&c, &good, m + 3, 1, good.p[m + 3] & ~0x04, "master.line");

	check_mutations(&c, &good, pic_exercise);
	blob_free(&good);
	pic__free(target);
	pic__free(src);
}

static void pit_exercise(void *dev, uint64_t seed)
{
	uint64_t now = 5800 * US;
	for (unsigned i = 0; i < 24; i++) {
		uint64_t r = rnd(&seed);
		now += (r >> 40) % (3 * MS);
		(void)pit_step(dev, r, now);
	}
}

static void test_pit_rejects_bad_blobs(void **state)
{
	(void)state;
	struct pit_rig src, target;
	pit_rig_init(&src);
	pit_rig_init(&target);
	pit_busy(&src);
	pit_program(target.pit, 0, 3, 100, 0);
	(void)pit__advance(target.pit, 1 * MS);

	struct blob good = save_with(&pit_ops, src.pit);
	struct bad_ctx c = { &pit_ops, target.pit, &target.log };
	/* Layout (see pit.c): 6 header bytes, 73 bytes per channel, 3 bytes of
	 * port 0x61. Offsets within a channel: */
	enum {
		MODE = 0, RW = 1, BCD = 2, GATE = 3, CR = 4, COUNT = 6, LOADED = 10, NULL_COUNT = 11,
		RUNNING = 12, START = 13, PAUSED = 21, FROZEN = 29, RELOAD_PENDING = 31, RELOAD_TICK = 32,
		WRITE_MSB_NEXT = 40, WRITE_LSB = 41, READ_MSB_NEXT = 42, COUNT_LATCHED = 43,
		LATCH_LEFT = 44, LATCH = 45, STATUS_LATCHED = 47, STATUS = 48, EDGE_NEXT = 49,
		EDGES_DUE = 57, FIRST_DUE = 65, CHAN = 73,
	};
	assert_int_equal(good.n, 6 + 3 * CHAN + 3);
	const size_t c0 = 6, c1 = 6 + CHAN, c2 = 6 + 2 * CHAN, p61 = 6 + 3 * CHAN;
	uint64_t start0 = 0, edge0 = 0;
	for (unsigned i = 0; i < 8; i++) {
		start0 |= (uint64_t)good.p[c0 + START + i] << (8 * i);
		edge0 |= (uint64_t)good.p[c0 + EDGE_NEXT + i] << (8 * i);
	}

	check_framing(&c, &good);
	check_field(&c, &good, c0 + MODE, 1, 6, "ch0.mode");
	check_field(&c, &good, c1 + RW, 1, 0, "ch1.rw");
	check_field(&c, &good, c2 + RW, 1, 4, "ch2.rw");
	check_field(&c, &good, c0 + GATE, 1, 0, "ch0.gate");
	check_field(&c, &good, c2 + BCD, 1, 2, "ch2.bcd");
	check_field(&c, &good, c0 + COUNT, 4, 0, "ch0.count");
	check_field(&c, &good, c0 + COUNT, 4, 0x10001, "ch0.count");
	check_field(&c, &good, c2 + LATCH_LEFT, 1, 3, "ch2.latch_left");
	check_field(&c, &good, c1 + LATCH_LEFT, 1, 3, "ch1.latch_left");
	check_patches(&c, &good, (const struct patch[]){ { c2 + RW, 1, 1 }, { c2 + LATCH_LEFT, 1, 2 } },
		      2, "ch2.latch_left");   /* two bytes latched, one-byte access */
	check_field(&c, &good, c1 + RW, 1, 1, "ch1.write_msb_next");      /* half a word, rw lsb */
	check_patches(&c, &good, (const struct patch[]){ { c2 + RW, 1, 2 }, { c2 + READ_MSB_NEXT, 1, 1 },
							 { c2 + COUNT_LATCHED, 1, 0 }, { c2 + LATCH_LEFT, 1, 0 } },
		      4, "ch2.read_msb_next");
	check_field(&c, &good, c2 + STATUS_LATCHED, 1, 1, "ch2.status");
	check_field(&c, &good, c0 + START, 8, UINT64_MAX - 5, "ch0.start_tick");
	check_field(&c, &good, c0 + EDGE_NEXT, 8, edge0 + 1, "ch0.edge_next");
	check_field(&c, &good, c0 + EDGE_NEXT, 8, start0, "ch0.edge_next");
	check_field(&c, &good, c0 + EDGE_NEXT, 8, UINT64_MAX, "ch0.edge_next");
	check_field(&c, &good, c0 + RELOAD_TICK, 8, edge0 - 1, "ch0.reload_tick");
	check_field(&c, &good, c1 + RELOAD_PENDING, 1, 1, "ch1.reload_pending");
	check_field(&c, &good, c1 + EDGES_DUE, 8, 1, "ch1.edges_due");
	check_field(&c, &good, c0 + EDGES_DUE, 8, UINT64_MAX, "ch0.edges_due");
	check_field(&c, &good, c0 + RUNNING, 1, 0, "ch0.reload_pending");
	check_field(&c, &good, c2 + RUNNING, 1, 0, "ch2.edge_next");  /* edge on a stopped channel */
	check_field(&c, &good, c2 + LOADED, 1, 0, "ch2.running");
	check_field(&c, &good, p61 + 1, 1, 0x01, "port61.nmi_bits");
	check_field(&c, &good, p61 + 2, 1, 7, "port61.refresh");
	check_field(&c, &good, c0 + FIRST_DUE, 8, UINT64_MAX / 2, "ch0.first_due");
	check_field(&c, &good, c1 + PAUSED, 8, UINT64_MAX / 2, "ch1.paused_ticks");
	/* One-shot channel 1, once running, has exactly one possible edge. */
	check_patches(&c, &good, (const struct patch[]){ { c1 + LOADED, 1, 1 }, { c1 + RUNNING, 1, 1 },
							 { c1 + EDGE_NEXT, 8, 12345 } },
		      3, "ch1.edge_next");
	(void)CR; (void)NULL_COUNT; (void)FROZEN; (void)WRITE_LSB; (void)LATCH; (void)STATUS;

	check_mutations(&c, &good, pit_exercise);
	blob_free(&good);
	pit__free(target.pit);
	pit__free(src.pit);
}

static void uart_exercise(void *dev, uint64_t seed)
{
	/* No fds: the mutated UART is one made with -1, -1 below. */
	for (unsigned i = 0; i < 30; i++) {
		uint64_t r = rnd(&seed);
		uint8_t v = (uint8_t)(r >> 8);
		if (r & 1)
			(void)uart__io(dev, (uint16_t)(COM1 + r % 8), true, &v);
		else
			(void)uart__io(dev, (uint16_t)(COM1 + (r >> 1) % 8), false, &v);
	}
}

static void test_uart_rejects_bad_blobs(void **state)
{
	(void)state;
	struct uart_rig src;
	struct irq_log tlog = { 0 };
	uart_rig_init(&src);
	uart_busy(&src);
	struct uart *target = uart__new(-1, -1, irq_log_cb, &tlog);
	assert_non_null(target);
	uart_out(target, 1, 0x02);   /* THRE pending: the target's IRQ is high */
	assert_true(tlog.level);

	struct blob good = save_with(&uart_ops, src.uart);
	struct bad_ctx c = { &uart_ops, target, &tlog };
	/* Layout (see uart.c): 6 header bytes, ier lcr mcr lsr_errors msr scr
	 * dll dlm fifo_enabled rx_trigger thre_pending, tx_bytes (8), rx_len,
	 * then the received bytes. */
	enum { IER = 6, LCR, MCR, LSR_ERR, MSR, SCR, DLL, DLM, FIFO, TRIGGER, THRE, TX = 17, RX_LEN = 25, RX };
	assert_int_equal(good.n, RX + 10);
	assert_int_equal(good.p[RX_LEN], 10);
	assert_memory_equal(good.p + RX, "ello world", 10);

	check_framing(&c, &good);
	check_field(&c, &good, IER, 1, 0x1f, "uart: ier");
	check_field(&c, &good, MCR, 1, 0x2b, "uart: mcr");
	check_field(&c, &good, LSR_ERR, 1, 0x01, "uart: lsr_errors");
	check_field(&c, &good, MSR, 1, 0x00, "uart: msr");           /* no carrier without loopback */
	check_field(&c, &good, FIFO, 1, 2, "uart: fifo_enabled");
	check_field(&c, &good, FIFO, 1, 0, "uart: rx_len");          /* 10 bytes in a 1-byte holding register */
	check_field(&c, &good, TRIGGER, 1, 5, "uart: rx_trigger");
	check_field(&c, &good, THRE, 1, 0xff, "uart: thre_pending");
	check_field(&c, &good, RX_LEN, 1, 17, "uart: rx_len");
	check_field(&c, &good, RX_LEN, 1, 11, "uart: rx");           /* more bytes than follow */
	check_field(&c, &good, RX_LEN, 1, 9, "uart: length");        /* fewer */
	(void)LCR; (void)SCR; (void)DLL; (void)DLM; (void)TX;

	check_mutations(&c, &good, uart_exercise);
	blob_free(&good);
	uart__free(target);
	uart_rig_free(&src);
}

/* ---- the aggregate */

struct machine {
	struct pic *pic;
	struct pit *pit;
	struct uart_rig uart;   /* its irq_log stays unused: the PIC gets the line */
};

static void line_irq0(void *opaque, bool level)
{
	pic__set_irq(opaque, 0, level);
}

static void line_irq4(void *opaque, bool level)
{
	pic__set_irq(opaque, 4, level);
}

static void machine_init(struct machine *m)
{
	memset(m, 0, sizeof(*m));
	m->pic = pic__new();
	assert_non_null(m->pic);
	m->pit = pit__new(line_irq0, m->pic);
	assert_non_null(m->pit);
	assert_int_equal(pipe(m->uart.out), 0);
	assert_int_equal(pipe(m->uart.in), 0);
	fcntl(m->uart.out[0], F_SETFL, O_NONBLOCK);
	m->uart.uart = uart__new(m->uart.out[1], m->uart.in[0], line_irq4, m->pic);
	assert_non_null(m->uart.uart);
}

static void machine_free(struct machine *m)
{
	pit__free(m->pit);
	uart_rig_free(&m->uart);
	pic__free(m->pic);
}

static uint64_t machine_busy(struct machine *m)
{
	pic_init(m->pic, 0x11, 0x01);
	pic_out(m->pic, 0x21, 0x00);
	pic_out(m->pic, 0xa1, 0x00);
	pit_program(m->pit, 0, 2, 1193, 0);
	(void)pit__advance(m->pit, 1500 * US);
	uart_out(m->uart.uart, 2, 0x07);
	uart_out(m->uart.uart, 1, 0x01);
	uart_feed(&m->uart, "xyz", 3);
	assert_true(uart__poll_input(m->uart.uart));
	/* IRQ0 in service, IRQ4 waiting behind it. */
	assert_int_equal(pic__ack(m->pic), 0x20);
	(void)pit_in(m->pit, 0x61, 2600 * US);
	return 2600 * US;
}

struct blob3 {
	struct blob pic, pit, uart;
};

static struct blob3 machine_state(const struct machine *m)
{
	return (struct blob3){
		save_with(&pic_ops, m->pic), save_with(&pit_ops, m->pit), save_with(&uart_ops, m->uart.uart),
	};
}

static void assert_machine_state(const struct machine *m, const struct blob3 *want)
{
	struct blob3 got = machine_state(m);
	assert_blob_equal(&got.pic, &want->pic);
	assert_blob_equal(&got.pit, &want->pit);
	assert_blob_equal(&got.uart, &want->uart);
	blob_free(&got.pic);
	blob_free(&got.pit);
	blob_free(&got.uart);
}

static void blob3_free(struct blob3 *b)
{
	blob_free(&b->pic);
	blob_free(&b->pit);
	blob_free(&b->uart);
}

static struct blob machine_save(const struct machine *m)
{
	struct blob b;
	b.n = devices__save(m->pic, m->pit, m->uart.uart, NULL, 0);
	b.p = malloc(b.n);
	assert_non_null(b.p);
	assert_int_equal(devices__save(m->pic, m->pit, m->uart.uart, b.p, b.n), b.n);
	return b;
}

/* One vCPU-loop-like step of the whole machine. */
static uint64_t machine_step(struct machine *m, uint64_t r, uint64_t now)
{
	switch (r % 5) {
	case 0:
		return pic_step(m->pic, r / 5);
	case 1:
		return pit_step(m->pit, r / 5, now);
	case 2:
		return uart_step(&m->uart, r / 5);
	case 3:
		return pit__advance(m->pit, now);
	default:
		if (pic__has_interrupt(m->pic))
			return 0x100 | pic__ack(m->pic);
		return pit__next_deadline(m->pit);
	}
}

static void test_devices_roundtrip(void **state)
{
	(void)state;
	struct machine a, b;
	char err[256] = "";

	machine_init(&a);
	uint64_t now = machine_busy(&a);
	struct blob blob = machine_save(&a);
	struct blob3 want = machine_state(&a);

	/* Too small a buffer is untouched. */
	uint8_t *small = malloc(blob.n - 1);
	memset(small, 0xcc, blob.n - 1);
	assert_int_equal(devices__save(a.pic, a.pit, a.uart.uart, small, blob.n - 1), blob.n);
	for (size_t i = 0; i < blob.n - 1; i++)
		assert_int_equal(small[i], 0xcc);
	free(small);
	assert_memory_equal(blob.p, "SBDEV", 5);

	machine_init(&b);
	if (devices__restore(b.pic, b.pit, b.uart.uart, blob.p, blob.n, err, sizeof(err)) != 0) {
		print_error("%s\n", err);
		fail();
	}
	/* Including the PIC: the UART re-driving IRQ4 high found the restored
	 * line already high and latched nothing new. */
	assert_machine_state(&b, &want);
	blob3_free(&want);

	uint64_t seed = 2024;
	uart_share_input(&a.uart, &b.uart);
	for (unsigned i = 0; i < 20000; i++) {
		uint64_t r = rnd(&seed);
		now += (r >> 44) % (700 * US);
		uint64_t va = machine_step(&a, r, now), vb = machine_step(&b, r, now);
		if (va != vb) {
			print_error("step %u (op %u) at %llu: original 0x%llx, restored 0x%llx\n", i,
				    (unsigned)(r % 5), (unsigned long long)now,
				    (unsigned long long)va, (unsigned long long)vb);
			fail();
		}
		if (i % 64 == 0) {
			uint8_t oa[4096], ob[4096];
			size_t na = uart_drain(&a.uart, oa, sizeof(oa));
			size_t nb = uart_drain(&b.uart, ob, sizeof(ob));
			assert_int_equal(na, nb);
			assert_memory_equal(oa, ob, na);
		}
	}
	blob_free(&blob);
	machine_free(&b);
	machine_free(&a);
}

/* Restores buf into m, expecting failure with `needle` in the message and
 * no change to any of the three devices. */
static void expect_devices_rejected(struct machine *m, const uint8_t *buf, size_t len, const char *needle)
{
	struct blob3 before = machine_state(m);
	char err[256] = "";

	if (devices__restore(m->pic, m->pit, m->uart.uart, buf, len, err, sizeof(err)) != -1) {
		print_error("a bad container of %zu bytes was accepted (expected \"%s\")\n", len, needle);
		fail();
	}
	assert_err_has(err, needle);
	assert_machine_state(m, &before);
	blob3_free(&before);
}

struct section {
	const char *tag;
	const uint8_t *p;
	size_t n;
};

/* Builds a container by hand, with a correct checksum. */
static struct blob build_container(uint16_t version, const struct section *sec, unsigned nsec)
{
	struct blob b;
	size_t n = 5 + 2 + 2 + 8;

	for (unsigned i = 0; i < nsec; i++)
		n += 8 + sec[i].n;
	b.p = malloc(n);
	assert_non_null(b.p);
	b.n = n;
	memcpy(b.p, "SBDEV", 5);
	put_le(b.p + 5, version, 2);
	put_le(b.p + 7, nsec, 2);
	size_t off = 9;
	for (unsigned i = 0; i < nsec; i++) {
		memcpy(b.p + off, sec[i].tag, 4);
		put_le(b.p + off + 4, sec[i].n, 4);
		memcpy(b.p + off + 8, sec[i].p, sec[i].n);
		off += 8 + sec[i].n;
	}
	put_le(b.p + off, XXH3_64bits(b.p, off), 8);
	return b;
}

static void test_devices_rejects_bad_blobs(void **state)
{
	(void)state;
	struct machine src, m;

	machine_init(&src);
	(void)machine_busy(&src);
	machine_init(&m);
	pic_init(m.pic, 0x11, 0x01);
	pit_program(m.pit, 0, 3, 500, 0);
	uart_out(m.uart.uart, 7, 0x33);

	struct blob good = machine_save(&src);

	/* Every truncation. */
	for (size_t n = 0; n < good.n; n++) {
		uint8_t *p = malloc(n ? n : 1);
		memcpy(p, good.p, n);
		expect_devices_rejected(&m, p, n, "devices: ");
		free(p);
	}
	expect_devices_rejected(&m, NULL, 0, "shorter");

	/* Every flipped bit: the checksum (or the magic/version before it). */
	uint8_t *p = malloc(good.n);
	for (size_t bit = 0; bit < good.n * 8; bit++) {
		memcpy(p, good.p, good.n);
		p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		const char *needle = bit < 5 * 8 ? "magic" : bit < 7 * 8 ? "version" : "checksum";
		expect_devices_rejected(&m, p, good.n, needle);
	}
	free(p);

	/* Sound framing around bad contents. */
	struct blob3 parts = machine_state(&src);
	struct section ok[3] = {
		{ "PIC ", parts.pic.p, parts.pic.n },
		{ "PIT ", parts.pit.p, parts.pit.n },
		{ "UART", parts.uart.p, parts.uart.n },
	};
	struct blob b = build_container(1, ok, 3);
	assert_blob_equal(&b, &good);   /* the format is what it says */
	blob_free(&b);

	b = build_container(2, ok, 3);
	expect_devices_rejected(&m, b.p, b.n, "version 2");
	blob_free(&b);

	struct section reordered[3] = { ok[2], ok[0], ok[1] };
	b = build_container(1, reordered, 3);
	struct machine r;
	char err[256] = "";
	machine_init(&r);
	assert_int_equal(devices__restore(r.pic, r.pit, r.uart.uart, b.p, b.n, err, sizeof(err)), 0);
	struct blob3 want = machine_state(&src);
	assert_machine_state(&r, &want);
	blob3_free(&want);
	machine_free(&r);
	blob_free(&b);

	struct section dup[4] = { ok[0], ok[1], ok[2], ok[1] };
	b = build_container(1, dup, 4);
	expect_devices_rejected(&m, b.p, b.n, "second \"PIT \"");
	blob_free(&b);

	b = build_container(1, ok, 2);
	expect_devices_rejected(&m, b.p, b.n, "no \"UART\" section");
	blob_free(&b);

	struct section unknown[4] = { ok[0], ok[1], ok[2], { "HPET", parts.pit.p, 4 } };
	b = build_container(1, unknown, 4);
	expect_devices_rejected(&m, b.p, b.n, "unknown tag \"HPET\"");
	blob_free(&b);

	/* Section lengths that disagree with the framing. */
	b = build_container(1, ok, 3);
	put_le(b.p + 9 + 4, parts.pic.n + 1000, 4);
	put_le(b.p + b.n - 8, XXH3_64bits(b.p, b.n - 8), 8);
	expect_devices_rejected(&m, b.p, b.n, "runs past the end");
	blob_free(&b);
	b = build_container(1, ok, 3);
	put_le(b.p + 7, 2, 2);   /* says two sections, has three */
	put_le(b.p + b.n - 8, XXH3_64bits(b.p, b.n - 8), 8);
	expect_devices_rejected(&m, b.p, b.n, "after the last of 2 sections");
	blob_free(&b);

	/* A section the device refuses, after a good PIC section: all or
	 * nothing, and the device's own message comes through. */
	uint8_t *bad_pit = malloc(parts.pit.n);
	memcpy(bad_pit, parts.pit.p, parts.pit.n);
	bad_pit[6] = 7;   /* ch0.mode */
	struct section bad[3] = { ok[0], { "PIT ", bad_pit, parts.pit.n }, ok[2] };
	b = build_container(1, bad, 3);
	expect_devices_rejected(&m, b.p, b.n, "pit: ch0.mode");
	blob_free(&b);
	free(bad_pit);

	uint8_t *bad_uart = malloc(parts.uart.n);
	memcpy(bad_uart, parts.uart.p, parts.uart.n);
	bad_uart[15] = 3;   /* rx_trigger */
	struct section bad_last[3] = { ok[0], ok[1], { "UART", bad_uart, parts.uart.n } };
	b = build_container(1, bad_last, 3);
	expect_devices_rejected(&m, b.p, b.n, "uart: rx_trigger");
	blob_free(&b);
	free(bad_uart);

	/* A device blob under the wrong section tag. */
	struct section swapped[3] = { { "PIC ", parts.pit.p, parts.pit.n },
				      { "PIT ", parts.pic.p, parts.pic.n }, ok[2] };
	b = build_container(1, swapped, 3);
	expect_devices_rejected(&m, b.p, b.n, "pic: tag");
	blob_free(&b);

	blob3_free(&parts);
	blob_free(&good);
	machine_free(&m);
	machine_free(&src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pic_roundtrip_behaves_identically),
		cmocka_unit_test(test_pic_restore_anywhere),
		cmocka_unit_test(test_pic_mid_initialization),
		cmocka_unit_test(test_pic_rejects_bad_blobs),
		cmocka_unit_test(test_pit_roundtrip_behaves_identically),
		cmocka_unit_test(test_pit_restore_anywhere),
		cmocka_unit_test(test_pit_rejects_bad_blobs),
		cmocka_unit_test(test_uart_roundtrip_behaves_identically),
		cmocka_unit_test(test_uart_dlab_and_loopback),
		cmocka_unit_test(test_uart_restore_anywhere),
		cmocka_unit_test(test_uart_restore_lowers_irq),
		cmocka_unit_test(test_uart_rejects_bad_blobs),
		cmocka_unit_test(test_devices_roundtrip),
		cmocka_unit_test(test_devices_rejects_bad_blobs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
