/* Unit tests for the 8254 PIT and port 0x61 (vnode/pit.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "devices.h"

#define HZ 1193182u
#define SEC 1000000000ull

struct irq_log {
	unsigned rises;
	unsigned falls;
	bool level;
};

struct fixture {
	struct pit *pit;
	struct irq_log log;
};

static void irq0_cb(void *opaque, bool level)
{
	struct irq_log *log = opaque;

	/* Every call must be a level change: a rise then a fall. */
	assert_int_not_equal(level, log->level);
	log->level = level;
	if (level)
		log->rises++;
	else
		log->falls++;
}

/* Reference arithmetic, written independently of pit.c with 128 bits. */
__extension__ typedef unsigned __int128 u128;

static uint64_t ref_ticks(uint64_t ns)
{
	return (uint64_t)((u128)ns * HZ / SEC);
}

static uint64_t ref_ns(uint64_t tick)
{
	return (uint64_t)(((u128)tick * SEC + HZ - 1) / HZ);
}

static void out8(struct pit *pit, uint16_t port, uint8_t val, uint64_t now)
{
	assert_true(pit__io(pit, port, true, &val, now));
}

static uint8_t in8(struct pit *pit, uint16_t port, uint64_t now)
{
	uint8_t val = 0xa5;
	assert_true(pit__io(pit, port, false, &val, now));
	return val;
}

static uint16_t in16(struct pit *pit, uint16_t port, uint64_t now)
{
	uint16_t lo = in8(pit, port, now);
	return (uint16_t)(lo | (in8(pit, port, now) << 8));
}

/* Latches and reads a lo/hi channel. */
static uint16_t latch_read(struct pit *pit, unsigned ch, uint64_t now)
{
	out8(pit, 0x43, (uint8_t)(ch << 6), now);
	return in16(pit, (uint16_t)(0x40 + ch), now);
}

static void program(struct pit *pit, unsigned ch, unsigned mode, uint16_t count, uint64_t now)
{
	out8(pit, 0x43, (uint8_t)((ch << 6) | 0x30 | (mode << 1)), now);
	out8(pit, (uint16_t)(0x40 + ch), (uint8_t)count, now);
	out8(pit, (uint16_t)(0x40 + ch), (uint8_t)(count >> 8), now);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->pit = pit__new(irq0_cb, &f->log);
	assert_non_null(f->pit);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	pit__free(f->pit);
	free(f);
	return 0;
}

static void test_ports_and_idle(void **state)
{
	struct fixture *f = *state;
	uint8_t v = 0;

	assert_false(pit__io(f->pit, 0x3f, false, &v, 0));
	assert_false(pit__io(f->pit, 0x44, false, &v, 0));
	assert_false(pit__io(f->pit, 0x60, true, &v, 0));
	assert_false(pit__io(f->pit, 0x62, false, &v, 0));
	/* Nothing is programmed: no interrupt, ever. */
	assert_int_equal(pit__next_deadline(f->pit), UINT64_MAX);
	assert_int_equal(pit__advance(f->pit, 3600 * SEC), 0);
	assert_int_equal(f->log.rises, 0);
}

static void test_mode2_deadlines_every_ms(void **state)
{
	struct fixture *f = *state;
	const uint64_t t0 = 5 * SEC + 123;
	const uint64_t tick0 = ref_ticks(t0);

	program(f->pit, 0, 2, 1193, t0);
	uint64_t prev = t0;
	for (uint64_t k = 1; k <= 2000; k++) {
		uint64_t dl = ref_ns(tick0 + k * 1193);
		assert_int_equal(pit__next_deadline(f->pit), dl);
		/* 1193 ticks are 999847.38 ns. */
		assert_in_range(dl - prev, k == 1 ? 999000 : 999847, 999848);
		assert_int_equal(pit__advance(f->pit, dl - 1), 0);
		assert_int_equal(f->log.rises, k - 1);
		assert_int_equal(pit__advance(f->pit, dl), 0);
		assert_int_equal(f->log.rises, k);
		assert_int_equal(f->log.falls, k);
		assert_false(f->log.level);
		prev = dl;
	}
	/* 2000 periods after t0, within one tick. */
	assert_in_range(prev - t0, 1999694000, 1999695600);
}

static void test_mode2_counter_readback(void **state)
{
	struct fixture *f = *state;

	program(f->pit, 0, 2, 1193, 0);
	assert_int_equal(latch_read(f->pit, 0, 0), 1193);
	/* 500 us = 596.591 ticks, so 596 have passed. */
	assert_int_equal(latch_read(f->pit, 0, 500000), 1193 - 596);
	/* Tick boundaries are exact: tick 1000 starts at ref_ns(1000). */
	assert_int_equal(latch_read(f->pit, 0, ref_ns(1000) - 1), 1193 - 999);
	assert_int_equal(latch_read(f->pit, 0, ref_ns(1000)), 1193 - 1000);
	/* Reload: one tick before a period end reads 1, at it 1193. */
	assert_int_equal(latch_read(f->pit, 0, ref_ns(1193 * 7 - 1)), 1);
	assert_int_equal(latch_read(f->pit, 0, ref_ns(1193 * 7)), 1193);

	/* Ten hours in, still exact. */
	uint64_t now = 36000 * SEC + 123456789;
	uint64_t d = ref_ticks(now);
	assert_int_equal(latch_read(f->pit, 0, now), 1193 - d % 1193);
	/* And a thousand hours. */
	now = 3600000 * SEC + 987654321;
	d = ref_ticks(now);
	assert_int_equal(latch_read(f->pit, 0, now), 1193 - d % 1193);
}

static void test_latch_persists(void **state)
{
	struct fixture *f = *state;

	program(f->pit, 0, 2, 50000, 0);
	uint64_t t1 = ref_ns(100);
	out8(f->pit, 0x43, 0x00, t1);
	/* A second latch before reading is ignored. */
	out8(f->pit, 0x43, 0x00, ref_ns(2000));
	uint8_t lo = in8(f->pit, 0x40, ref_ns(3000));
	uint8_t hi = in8(f->pit, 0x40, ref_ns(4000));
	assert_int_equal(lo | hi << 8, 50000 - 100);
	/* Counting went on; the next read is live again. */
	assert_int_equal(in16(f->pit, 0x40, ref_ns(5000)), 50000 - 5000);
	/* Latch then read only the low byte: the latch holds the high byte. */
	out8(f->pit, 0x43, 0x00, ref_ns(6000));
	assert_int_equal(in8(f->pit, 0x40, ref_ns(7000)), (50000 - 6000) & 0xff);
	assert_int_equal(in8(f->pit, 0x40, ref_ns(9000)), (50000 - 6000) >> 8);
}

static void test_access_modes(void **state)
{
	struct fixture *f = *state;

	/* LSB only: the MSB is zero. */
	out8(f->pit, 0x43, 0x54, 0); /* ch1, lsb, mode 2 */
	out8(f->pit, 0x41, 0x50, 0);
	assert_int_equal(in8(f->pit, 0x41, ref_ns(0x10)), 0x40);
	assert_int_equal(in8(f->pit, 0x41, ref_ns(0x20)), 0x30);

	/* MSB only: the LSB is zero. */
	out8(f->pit, 0x43, 0x64, 0); /* ch1, msb, mode 2 */
	out8(f->pit, 0x41, 0x12, 0);
	assert_int_equal(in8(f->pit, 0x41, ref_ns(0x100)), 0x11);
	out8(f->pit, 0x43, 0x40, ref_ns(0x101)); /* latch ch1 */
	/* 0x1200 - 0x101 = 0x10ff; live it would be 0x0f00 by now. */
	assert_int_equal(in8(f->pit, 0x41, ref_ns(0x300)), 0x10);
	assert_int_equal(in8(f->pit, 0x41, ref_ns(0x300)), 0x0f);

	/* LSB then MSB, for both writes and reads. */
	out8(f->pit, 0x43, 0x74, 0);
	out8(f->pit, 0x41, 0x34, 0);
	/* Half-written: no new count yet. */
	out8(f->pit, 0x41, 0x12, 0);
	assert_int_equal(in8(f->pit, 0x41, ref_ns(0x10)), 0x24);
	assert_int_equal(in8(f->pit, 0x41, ref_ns(0x10)), 0x12);
	assert_int_equal(in8(f->pit, 0x41, ref_ns(0x1000)), 0x34);
	assert_int_equal(in8(f->pit, 0x41, ref_ns(0x1000)), 0x02);
}

static void test_readback_command(void **state)
{
	struct fixture *f = *state;

	/* A counter nobody has programmed: null count clear (Linux's early
	 * i8254() read-back loops until it is), mode 0, both bytes. */
	out8(f->pit, 0x43, 0xe2, 0); /* read-back, status only, ch0 */
	assert_int_equal(in8(f->pit, 0x40, 0) & 0x7f, 0x30);

	/* Null count right after the control word. */
	out8(f->pit, 0x43, 0x34, 0);
	out8(f->pit, 0x43, 0xe2, 0); /* status only, ch0 */
	assert_int_equal(in8(f->pit, 0x40, 0) & 0x7f, 0x40 | 0x30 | 0x04);
	out8(f->pit, 0x40, 0xe8, 0);
	out8(f->pit, 0x40, 0x03, 0);

	/* Status and count: status comes first, then the count bytes. */
	uint64_t t = ref_ns(1000);
	out8(f->pit, 0x43, 0xc2, t);
	assert_int_equal(in8(f->pit, 0x40, t + 5000), 0x80 | 0x30 | 0x04);
	/* At a period end mode 2 has reloaded: it never reads 0. */
	assert_int_equal(in16(f->pit, 0x40, t + 9000), 1000);

	/* Count only, for two channels at once. */
	program(f->pit, 2, 2, 4000, 0);
	out8(f->pit, 0x61, 0x01, 0); /* gate channel 2 */
	t = ref_ns(700);
	out8(f->pit, 0x43, 0xda, t); /* count only, ch0 and ch2 */
	assert_int_equal(in16(f->pit, 0x40, t + 1000000), 1000 - 700);
	assert_int_equal(in16(f->pit, 0x42, t + 1000000), 4000 - 700);

	/* BCD is accepted and reported, but counts in binary. */
	out8(f->pit, 0x43, 0x35, t);
	out8(f->pit, 0x43, 0xe2, t);
	assert_int_equal(in8(f->pit, 0x40, t) & 0x3f, 0x35);

	/* Reading the control port does not crash and returns all ones. */
	assert_int_equal(in8(f->pit, 0x43, t), 0xff);
}

static void test_coalesced_ticks(void **state)
{
	struct fixture *f = *state;

	program(f->pit, 0, 2, 1193, 0);
	/* 10.5 periods pass: one edge, nine lost. */
	assert_int_equal(pit__advance(f->pit, ref_ns(1193 * 10 + 600)), 9);
	assert_int_equal(f->log.rises, 1);
	assert_int_equal(pit__next_deadline(f->pit), ref_ns(1193 * 11));
	assert_int_equal(pit__advance(f->pit, ref_ns(1193 * 11)), 0);
	assert_int_equal(f->log.rises, 2);

	/* A hundred hours at once: no overflow. */
	uint64_t now = 360000 * SEC;
	uint64_t periods = ref_ticks(now) / 1193;
	assert_int_equal(pit__advance(f->pit, now), periods - 11 - 1);
	assert_int_equal(f->log.rises, 3);
	assert_int_equal(pit__next_deadline(f->pit), ref_ns((periods + 1) * 1193));
}

static void test_edges_due_before_io_are_kept(void **state)
{
	struct fixture *f = *state;

	program(f->pit, 0, 2, 1000, 0);
	/* The guest reprograms after two periods passed unreported. */
	program(f->pit, 0, 2, 5000, ref_ns(2500));
	assert_int_equal(pit__next_deadline(f->pit), ref_ns(1000));
	assert_int_equal(pit__advance(f->pit, ref_ns(2500)), 1);
	assert_int_equal(f->log.rises, 1);
	assert_int_equal(pit__next_deadline(f->pit), ref_ns(2500 + 5000));
}

static void test_mode0_one_shot(void **state)
{
	struct fixture *f = *state;
	uint64_t t0 = 1000;
	uint64_t tick0 = ref_ticks(t0);

	program(f->pit, 0, 0, 1000, t0);
	assert_int_equal(pit__next_deadline(f->pit), ref_ns(tick0 + 1000));
	assert_int_equal(pit__advance(f->pit, ref_ns(tick0 + 1000) - 1), 0);
	assert_int_equal(f->log.rises, 0);
	out8(f->pit, 0x43, 0xe2, ref_ns(tick0 + 999));
	assert_int_equal(in8(f->pit, 0x40, 0) & 0x80, 0x00);
	assert_int_equal(pit__advance(f->pit, ref_ns(tick0 + 1000)), 0);
	assert_int_equal(f->log.rises, 1);
	assert_int_equal(pit__next_deadline(f->pit), UINT64_MAX);
	/* Never again, however long we wait. */
	assert_int_equal(pit__advance(f->pit, 10 * SEC), 0);
	assert_int_equal(f->log.rises, 1);
	/* OUT stays high; the counter wraps and keeps counting. */
	out8(f->pit, 0x43, 0xe2, ref_ns(tick0 + 1500));
	assert_int_equal(in8(f->pit, 0x40, 0) & 0x80, 0x80);
	assert_int_equal(latch_read(f->pit, 0, ref_ns(tick0 + 1001)), 0xffff);

	/* A new count arms it again. */
	uint64_t t1 = 20 * SEC;
	out8(f->pit, 0x40, 100, t1);
	out8(f->pit, 0x40, 0, t1);
	assert_int_equal(pit__next_deadline(f->pit), ref_ns(ref_ticks(t1) + 100));
	assert_int_equal(pit__advance(f->pit, 30 * SEC), 0);
	assert_int_equal(f->log.rises, 2);
}

static void test_mode0_first_byte_stops(void **state)
{
	struct fixture *f = *state;

	program(f->pit, 0, 0, 1000, 0);
	out8(f->pit, 0x40, 0x00, ref_ns(500));
	/* Half a new count: stopped, no interrupt due. */
	assert_int_equal(pit__next_deadline(f->pit), UINT64_MAX);
	assert_int_equal(pit__advance(f->pit, ref_ns(2000)), 0);
	assert_int_equal(f->log.rises, 0);
	out8(f->pit, 0x40, 0x01, ref_ns(2000));
	assert_int_equal(pit__next_deadline(f->pit), ref_ns(2000 + 256));
}

static void test_mode3_square_wave(void **state)
{
	struct fixture *f = *state;

	/* The BIOS default: count 0 = 65536, 18.2 Hz. */
	program(f->pit, 0, 3, 0, 0);
	assert_int_equal(pit__next_deadline(f->pit), ref_ns(65536));
	assert_int_equal(latch_read(f->pit, 0, ref_ns(10)), 65536 - 20);
	/* Out is high in the first half, low in the second. */
	out8(f->pit, 0x43, 0xe2, ref_ns(32767));
	assert_int_equal(in8(f->pit, 0x40, 0), 0x80 | 0x36);
	out8(f->pit, 0x43, 0xe2, ref_ns(32768));
	assert_int_equal(in8(f->pit, 0x40, 0), 0x36);
	assert_int_equal(latch_read(f->pit, 0, ref_ns(32768 + 5)), 65536 - 10);
	for (unsigned k = 1; k <= 5; k++) {
		assert_int_equal(pit__advance(f->pit, ref_ns(65536ull * k)), 0);
		assert_int_equal(f->log.rises, k);
	}

	/* Odd counts: one more tick high than low. */
	program(f->pit, 0, 3, 5, ref_ns(1000000));
	out8(f->pit, 0x43, 0xe2, ref_ns(1000000 + 2));
	assert_int_equal(in8(f->pit, 0x40, 0) & 0x80, 0x80);
	out8(f->pit, 0x43, 0xe2, ref_ns(1000000 + 3));
	assert_int_equal(in8(f->pit, 0x40, 0) & 0x80, 0x00);
	assert_int_equal(latch_read(f->pit, 0, ref_ns(1000000 + 1)), 4);
}

static void test_mode2_new_count_at_period_end(void **state)
{
	struct fixture *f = *state;

	program(f->pit, 0, 2, 1000, 0);
	out8(f->pit, 0x40, 500 & 0xff, ref_ns(300));
	out8(f->pit, 0x40, 500 >> 8, ref_ns(300));
	/* The running period ends with the old count. */
	assert_int_equal(latch_read(f->pit, 0, ref_ns(400)), 600);
	out8(f->pit, 0x43, 0xe2, ref_ns(400));
	assert_int_equal(in8(f->pit, 0x40, 0) & 0x40, 0x40);
	assert_int_equal(pit__next_deadline(f->pit), ref_ns(1000));
	assert_int_equal(pit__advance(f->pit, ref_ns(1000)), 0);
	assert_int_equal(pit__next_deadline(f->pit), ref_ns(1500));
	assert_int_equal(latch_read(f->pit, 0, ref_ns(1100)), 400);
	/* Crossing the switch in one advance counts both periods. */
	assert_int_equal(pit__advance(f->pit, ref_ns(2000)), 1);
	program(f->pit, 0, 2, 1000, ref_ns(2000));
	out8(f->pit, 0x40, 100, ref_ns(2100));
	out8(f->pit, 0x40, 0, ref_ns(2100));
	assert_int_equal(pit__advance(f->pit, ref_ns(3000 + 450)), 4);
	assert_int_equal(pit__next_deadline(f->pit), ref_ns(3500));
}

static void test_control_word_stops_timer(void **state)
{
	struct fixture *f = *state;

	program(f->pit, 0, 2, 1193, 0);
	out8(f->pit, 0x43, 0x34, ref_ns(10));
	assert_int_equal(pit__next_deadline(f->pit), UINT64_MAX);
	assert_int_equal(pit__advance(f->pit, SEC), 0);
	assert_int_equal(f->log.rises, 0);
}

static void test_mode4_software_strobe(void **state)
{
	struct fixture *f = *state;

	program(f->pit, 0, 4, 200, 0);
	out8(f->pit, 0x43, 0xe2, ref_ns(199));
	assert_int_equal(in8(f->pit, 0x40, 0) & 0x80, 0x80);
	out8(f->pit, 0x43, 0xe2, ref_ns(200));
	assert_int_equal(in8(f->pit, 0x40, 0) & 0x80, 0x00);
	/* OUT rises again one tick after terminal count: that is the edge. */
	assert_int_equal(pit__next_deadline(f->pit), ref_ns(201));
	assert_int_equal(pit__advance(f->pit, ref_ns(201)), 0);
	assert_int_equal(f->log.rises, 1);
	assert_int_equal(pit__next_deadline(f->pit), UINT64_MAX);
	assert_int_equal(pit__advance(f->pit, SEC), 0);
	assert_int_equal(f->log.rises, 1);
}

static void test_port61_gate_and_out(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(in8(f->pit, 0x61, 0) & 0x03, 0x00);
	/* Linux's PIT TSC calibration: gate on, speaker off, ch2 mode 0. */
	out8(f->pit, 0x61, 0x01, 0);
	program(f->pit, 2, 0, 11932, 1000);
	uint64_t tick0 = ref_ticks(1000);
	assert_int_equal(in8(f->pit, 0x61, ref_ns(tick0 + 11931)) & 0x21, 0x01);
	assert_int_equal(in8(f->pit, 0x61, ref_ns(tick0 + 11932)) & 0x21, 0x21);
	/* Channel 2 never raises IRQ0. */
	assert_int_equal(pit__advance(f->pit, SEC), 0);
	assert_int_equal(f->log.rises, 0);

	/* Speaker enable reads back. */
	out8(f->pit, 0x61, 0x03, SEC);
	assert_int_equal(in8(f->pit, 0x61, SEC) & 0x03, 0x03);

	/* The refresh bit toggles from one read to the next. */
	uint8_t a = in8(f->pit, 0x61, SEC), b = in8(f->pit, 0x61, SEC);
	assert_int_equal((a ^ b) & 0x10, 0x10);
}

static void test_port61_gate_pauses_mode0(void **state)
{
	struct fixture *f = *state;

	/* Gate low: a mode 0 count does not run and OUT stays low. */
	program(f->pit, 2, 0, 100, 0);
	assert_int_equal(in8(f->pit, 0x61, ref_ns(500)) & 0x20, 0x00);
	assert_int_equal(latch_read(f->pit, 2, ref_ns(500)), 100);
	out8(f->pit, 0x61, 0x01, ref_ns(1000));
	assert_int_equal(latch_read(f->pit, 2, ref_ns(1040)), 60);
	out8(f->pit, 0x61, 0x00, ref_ns(1040));
	assert_int_equal(latch_read(f->pit, 2, ref_ns(5000)), 60);
	out8(f->pit, 0x61, 0x01, ref_ns(6000));
	assert_int_equal(in8(f->pit, 0x61, ref_ns(6059)) & 0x20, 0x00);
	assert_int_equal(in8(f->pit, 0x61, ref_ns(6060)) & 0x20, 0x20);
}

static void test_port61_gate_mode2_and_mode1(void **state)
{
	struct fixture *f = *state;

	/* Mode 2, gate low: OUT high, not counting; the rising gate reloads. */
	program(f->pit, 2, 2, 100, 0);
	assert_int_equal(in8(f->pit, 0x61, ref_ns(99)) & 0x20, 0x20);
	assert_int_equal(latch_read(f->pit, 2, ref_ns(99)), 100);
	out8(f->pit, 0x61, 0x01, ref_ns(1000));
	assert_int_equal(latch_read(f->pit, 2, ref_ns(1030)), 70);
	assert_int_equal(in8(f->pit, 0x61, ref_ns(1099)) & 0x20, 0x00);
	assert_int_equal(in8(f->pit, 0x61, ref_ns(1100)) & 0x20, 0x20);
	out8(f->pit, 0x61, 0x00, ref_ns(1120));

	/* Mode 1: the gate's rising edge starts the one-shot, OUT low. */
	program(f->pit, 2, 1, 50, ref_ns(2000));
	assert_int_equal(in8(f->pit, 0x61, ref_ns(2100)) & 0x20, 0x20);
	out8(f->pit, 0x61, 0x01, ref_ns(3000));
	assert_int_equal(in8(f->pit, 0x61, ref_ns(3049)) & 0x20, 0x00);
	assert_int_equal(in8(f->pit, 0x61, ref_ns(3050)) & 0x20, 0x20);
	/* Retrigger. */
	out8(f->pit, 0x61, 0x00, ref_ns(4000));
	out8(f->pit, 0x61, 0x01, ref_ns(4000));
	assert_int_equal(in8(f->pit, 0x61, ref_ns(4010)) & 0x20, 0x00);
	assert_int_equal(latch_read(f->pit, 2, ref_ns(4010)), 40);
}

static void test_null_irq_callback(void **state)
{
	(void)state;
	struct pit *pit = pit__new(NULL, NULL);
	assert_non_null(pit);
	program(pit, 0, 2, 100, 0);
	assert_int_equal(pit__advance(pit, ref_ns(250)), 1);
	pit__free(pit);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ports_and_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode2_deadlines_every_ms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode2_counter_readback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_latch_persists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_access_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readback_command, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coalesced_ticks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edges_due_before_io_are_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode0_one_shot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode0_first_byte_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode3_square_wave, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode2_new_count_at_period_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_word_stops_timer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode4_software_strobe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_port61_gate_and_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_port61_gate_pauses_mode0, setup, teardown),
		cmocka_unit_test_setup_teardown(test_port61_gate_mode2_and_mode1, setup, teardown),
		cmocka_unit_test(test_null_irq_callback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
