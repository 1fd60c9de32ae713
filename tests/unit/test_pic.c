/* Unit tests for the 8259A PIC pair (vnode/pic.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "devices.h"

static void out8(struct pic *pic, uint16_t port, uint8_t val)
{
	assert_true(pic__io(pic, port, true, &val));
}

static uint8_t in8(struct pic *pic, uint16_t port)
{
	uint8_t val = 0xa5;
	assert_true(pic__io(pic, port, false, &val));
	return val;
}

static uint8_t read_isr(struct pic *pic, uint16_t cmd)
{
	out8(pic, cmd, 0x0b);
	return in8(pic, cmd);
}

static uint8_t read_irr(struct pic *pic, uint16_t cmd)
{
	out8(pic, cmd, 0x0a);
	return in8(pic, cmd);
}

static void pulse(struct pic *pic, unsigned irq)
{
	pic__set_irq(pic, irq, true);
	pic__set_irq(pic, irq, false);
}

/* Linux's init_8259A() sequence, with the given ICW1 and ICW4. */
static void init_pics_with(struct pic *pic, uint8_t icw1, uint8_t icw4)
{
	out8(pic, 0x21, 0xff);
	out8(pic, 0xa1, 0xff);
	out8(pic, 0x20, icw1);
	out8(pic, 0x21, 0x20);
	out8(pic, 0x21, 0x04);
	out8(pic, 0x21, icw4);
	out8(pic, 0xa0, icw1);
	out8(pic, 0xa1, 0x28);
	out8(pic, 0xa1, 0x02);
	out8(pic, 0xa1, icw4);
	out8(pic, 0x21, 0x00);
	out8(pic, 0xa1, 0x00);
}

static int setup(void **state)
{
	struct pic *pic = pic__new();
	assert_non_null(pic);
	init_pics_with(pic, 0x11, 0x01);
	*state = pic;
	return 0;
}

static int setup_raw(void **state)
{
	*state = pic__new();
	assert_non_null(*state);
	return 0;
}

static int teardown(void **state)
{
	pic__free(*state);
	return 0;
}

static void test_reset_state(void **state)
{
	struct pic *pic = *state;

	assert_int_equal(in8(pic, 0x21), 0xff);
	assert_int_equal(in8(pic, 0xa1), 0xff);
	pulse(pic, 0);
	pulse(pic, 8);
	assert_false(pic__has_interrupt(pic));

	/* BIOS vector bases without any ICW. */
	out8(pic, 0x21, 0xfe);
	assert_true(pic__has_interrupt(pic));
	assert_int_equal(pic__ack(pic), 0x08);
	out8(pic, 0x20, 0x20);
	out8(pic, 0x21, 0xfa);
	out8(pic, 0xa1, 0xfe);
	assert_true(pic__has_interrupt(pic));
	assert_int_equal(pic__ack(pic), 0x70);
}

static void test_foreign_ports(void **state)
{
	struct pic *pic = *state;
	uint8_t v = 0;

	assert_false(pic__io(pic, 0x22, false, &v));
	assert_false(pic__io(pic, 0x40, true, &v));
	assert_false(pic__io(pic, 0xa2, false, &v));
	assert_false(pic__io(pic, 0x4d2, false, &v));
}

static void test_irq0_ack_sets_isr(void **state)
{
	struct pic *pic = *state;

	assert_false(pic__has_interrupt(pic));
	pulse(pic, 0);
	assert_int_equal(read_irr(pic, 0x20), 0x01);
	assert_true(pic__has_interrupt(pic));
	assert_int_equal(pic__ack(pic), 0x20);
	assert_int_equal(read_isr(pic, 0x20), 0x01);
	assert_int_equal(read_irr(pic, 0x20), 0x00);
	assert_false(pic__has_interrupt(pic));
	out8(pic, 0x20, 0x20);
	assert_int_equal(read_isr(pic, 0x20), 0x00);
}

static void test_lower_priority_blocked_until_eoi(void **state)
{
	struct pic *pic = *state;

	pulse(pic, 0);
	assert_int_equal(pic__ack(pic), 0x20);
	pulse(pic, 1);
	assert_false(pic__has_interrupt(pic));
	/* Same IRQ again is blocked as well, but remembered. */
	pulse(pic, 0);
	assert_false(pic__has_interrupt(pic));
	out8(pic, 0x20, 0x20);
	assert_true(pic__has_interrupt(pic));
	assert_int_equal(pic__ack(pic), 0x20);
	out8(pic, 0x20, 0x20);
	assert_int_equal(pic__ack(pic), 0x21);
	out8(pic, 0x20, 0x20);
	assert_false(pic__has_interrupt(pic));
}

static void test_higher_priority_nests(void **state)
{
	struct pic *pic = *state;

	pulse(pic, 3);
	assert_int_equal(pic__ack(pic), 0x23);
	pulse(pic, 1);
	assert_true(pic__has_interrupt(pic));
	assert_int_equal(pic__ack(pic), 0x21);
	assert_int_equal(read_isr(pic, 0x20), 0x0a);
	/* Non-specific EOI ends the highest-priority one. */
	out8(pic, 0x20, 0x20);
	assert_int_equal(read_isr(pic, 0x20), 0x08);
	out8(pic, 0x20, 0x20);
	assert_int_equal(read_isr(pic, 0x20), 0x00);
}

static void test_simultaneous_priority_order(void **state)
{
	struct pic *pic = *state;
	static const uint8_t expect[] = { 0x21, 0x23, 0x25, 0x27 };

	pulse(pic, 7);
	pulse(pic, 5);
	pulse(pic, 1);
	pulse(pic, 3);
	for (unsigned i = 0; i < 4; i++) {
		assert_true(pic__has_interrupt(pic));
		assert_int_equal(pic__ack(pic), expect[i]);
		out8(pic, 0x20, 0x20);
	}
	assert_false(pic__has_interrupt(pic));
}

static void test_specific_eoi(void **state)
{
	struct pic *pic = *state;

	pulse(pic, 4);
	assert_int_equal(pic__ack(pic), 0x24);
	/* IRQ2 is the cascade, not an ISA line: it raises nothing. */
	pulse(pic, 2);
	pulse(pic, 1);
	assert_int_equal(pic__ack(pic), 0x21);
	assert_int_equal(read_isr(pic, 0x20), 0x12);
	/* EOI the lower-priority one explicitly. */
	out8(pic, 0x20, 0x64);
	assert_int_equal(read_isr(pic, 0x20), 0x02);
	out8(pic, 0x20, 0x61);
	assert_int_equal(read_isr(pic, 0x20), 0x00);
	assert_false(pic__has_interrupt(pic));
}

static void test_masking(void **state)
{
	struct pic *pic = *state;

	out8(pic, 0x21, 0x02);
	assert_int_equal(in8(pic, 0x21), 0x02);
	pulse(pic, 1);
	assert_false(pic__has_interrupt(pic));
	assert_int_equal(read_irr(pic, 0x20), 0x02);
	/* A masked request does not block lower priorities. */
	pulse(pic, 6);
	assert_int_equal(pic__ack(pic), 0x26);
	out8(pic, 0x20, 0x20);
	out8(pic, 0x21, 0x00);
	assert_true(pic__has_interrupt(pic));
	assert_int_equal(pic__ack(pic), 0x21);
}

static void test_edge_latching(void **state)
{
	struct pic *pic = *state;

	/* A line held high raises one request only. */
	pic__set_irq(pic, 4, true);
	pic__set_irq(pic, 4, true);
	assert_int_equal(pic__ack(pic), 0x24);
	out8(pic, 0x20, 0x20);
	assert_false(pic__has_interrupt(pic));
	pic__set_irq(pic, 4, true);
	assert_false(pic__has_interrupt(pic));
	/* A new rising edge is a new request. */
	pic__set_irq(pic, 4, false);
	pic__set_irq(pic, 4, true);
	assert_true(pic__has_interrupt(pic));
	/* The latched edge survives the line dropping (PIT pulses). */
	pic__set_irq(pic, 4, false);
	assert_true(pic__has_interrupt(pic));
	assert_int_equal(pic__ack(pic), 0x24);
}

static void test_slave_cascade(void **state)
{
	struct pic *pic = *state;

	pulse(pic, 10);
	assert_true(pic__has_interrupt(pic));
	assert_int_equal(pic__ack(pic), 0x2a);
	assert_int_equal(read_isr(pic, 0x20), 0x04);
	assert_int_equal(read_isr(pic, 0xa0), 0x04);
	/* Master IRQ0 still outranks the cascade; IRQ3 does not. */
	pulse(pic, 3);
	assert_false(pic__has_interrupt(pic));
	pulse(pic, 0);
	assert_int_equal(pic__ack(pic), 0x20);
	out8(pic, 0x20, 0x20);
	/* Another slave request waits for both EOIs. */
	pulse(pic, 15);
	assert_false(pic__has_interrupt(pic));
	out8(pic, 0xa0, 0x20);
	assert_false(pic__has_interrupt(pic));
	out8(pic, 0x20, 0x20);
	assert_true(pic__has_interrupt(pic));
	assert_int_equal(pic__ack(pic), 0x2f);
	out8(pic, 0xa0, 0x20);
	out8(pic, 0x20, 0x20);
	assert_int_equal(pic__ack(pic), 0x23);
}

static void test_slave_priorities_and_all_vectors(void **state)
{
	struct pic *pic = *state;

	for (unsigned irq = 8; irq < 16; irq++)
		pulse(pic, irq);
	for (unsigned irq = 8; irq < 16; irq++) {
		assert_true(pic__has_interrupt(pic));
		assert_int_equal(pic__ack(pic), 0x28 + (irq - 8));
		out8(pic, 0xa0, 0x20);
		out8(pic, 0x20, 0x20);
	}
	assert_false(pic__has_interrupt(pic));
}

static void test_slave_masked_by_master(void **state)
{
	struct pic *pic = *state;

	out8(pic, 0x21, 0x04);
	pulse(pic, 9);
	assert_false(pic__has_interrupt(pic));
	out8(pic, 0x21, 0x00);
	assert_int_equal(pic__ack(pic), 0x29);

	out8(pic, 0xa0, 0x20);
	out8(pic, 0x20, 0x20);
	out8(pic, 0xa1, 0x02);
	pulse(pic, 9);
	assert_false(pic__has_interrupt(pic));
}

static void test_spurious_irq7(void **state)
{
	struct pic *pic = *state;

	pulse(pic, 3);
	assert_true(pic__has_interrupt(pic));
	/* The guest masks it before the vCPU gets to INTA. */
	out8(pic, 0x21, 0x08);
	assert_int_equal(pic__ack(pic), 0x27);
	assert_int_equal(read_isr(pic, 0x20), 0x00);
	/* The masked request is still there for later. */
	out8(pic, 0x21, 0x00);
	assert_int_equal(pic__ack(pic), 0x23);
}

static void test_spurious_irq15(void **state)
{
	struct pic *pic = *state;

	pulse(pic, 12);
	assert_true(pic__has_interrupt(pic));
	out8(pic, 0xa1, 0x10);
	/* The master had latched the cascade request. */
	assert_true(pic__has_interrupt(pic));
	assert_int_equal(pic__ack(pic), 0x2f);
	assert_int_equal(read_isr(pic, 0xa0), 0x00);
	assert_int_equal(read_isr(pic, 0x20), 0x04);
	/* Linux answers with an EOI to the master's cascade. */
	out8(pic, 0x20, 0x62);
	assert_false(pic__has_interrupt(pic));
	out8(pic, 0xa1, 0x00);
	assert_true(pic__has_interrupt(pic));
	assert_int_equal(pic__ack(pic), 0x2c);
}

static void test_auto_eoi(void **state)
{
	struct pic *pic = *state;

	init_pics_with(pic, 0x11, 0x03);
	pulse(pic, 5);
	assert_int_equal(pic__ack(pic), 0x25);
	assert_int_equal(read_isr(pic, 0x20), 0x00);
	/* No EOI needed before the next, even lower-priority, one. */
	pulse(pic, 6);
	assert_true(pic__has_interrupt(pic));
	assert_int_equal(pic__ack(pic), 0x26);

	/* Two slave requests in auto-EOI mode both get through the cascade. */
	pulse(pic, 9);
	pulse(pic, 11);
	assert_int_equal(pic__ack(pic), 0x29);
	assert_true(pic__has_interrupt(pic));
	assert_int_equal(pic__ack(pic), 0x2b);
	assert_false(pic__has_interrupt(pic));
	assert_int_equal(read_isr(pic, 0x20), 0x00);
	assert_int_equal(read_isr(pic, 0xa0), 0x00);
}

static void test_icw2_base_and_icw1_reset(void **state)
{
	struct pic *pic = *state;

	pulse(pic, 1);
	assert_int_equal(pic__ack(pic), 0x21);
	/* Re-initialise: the low ICW2 bits do not count, ISR and IMR clear. */
	out8(pic, 0x20, 0x11);
	assert_false(pic__has_interrupt(pic));
	pulse(pic, 0);
	/* No interrupt while the init sequence is incomplete. */
	assert_false(pic__has_interrupt(pic));
	out8(pic, 0x21, 0x47);
	out8(pic, 0x21, 0x04);
	out8(pic, 0x21, 0x01);
	assert_int_equal(in8(pic, 0x21), 0x00);
	assert_int_equal(read_isr(pic, 0x20), 0x00);
	/* The edge seen during init was latched and comes first. */
	pulse(pic, 6);
	assert_int_equal(pic__ack(pic), 0x40);
	out8(pic, 0x20, 0x20);
	assert_int_equal(pic__ack(pic), 0x46);
}

static void test_icw_without_icw4(void **state)
{
	struct pic *pic = *state;

	/* IC4 clear: ICW3 is the last, and the next data write is the IMR. */
	out8(pic, 0x20, 0x10);
	out8(pic, 0x21, 0x50);
	out8(pic, 0x21, 0x04);
	out8(pic, 0x21, 0xfd);
	assert_int_equal(in8(pic, 0x21), 0xfd);
	pulse(pic, 1);
	assert_int_equal(pic__ack(pic), 0x51);
}

static void test_elcr_and_level_mode(void **state)
{
	struct pic *pic = *state;

	out8(pic, 0x4d0, 0xff);
	out8(pic, 0x4d1, 0xff);
	/* IRQ0-2, 8 and 13 are always edge-triggered on the PIIX. */
	assert_int_equal(in8(pic, 0x4d0), 0xf8);
	assert_int_equal(in8(pic, 0x4d1), 0xde);
	out8(pic, 0x4d0, 0x20);
	out8(pic, 0x4d1, 0x00);
	assert_int_equal(in8(pic, 0x4d0), 0x20);

	pic__set_irq(pic, 5, true);
	assert_int_equal(pic__ack(pic), 0x25);
	out8(pic, 0x20, 0x20);
	/* Still asserted after EOI: it comes back. */
	assert_true(pic__has_interrupt(pic));
	assert_int_equal(pic__ack(pic), 0x25);
	pic__set_irq(pic, 5, false);
	out8(pic, 0x20, 0x20);
	assert_false(pic__has_interrupt(pic));
	/* Deasserted between INT and INTA: spurious IRQ7. */
	pic__set_irq(pic, 5, true);
	assert_true(pic__has_interrupt(pic));
	pic__set_irq(pic, 5, false);
	assert_int_equal(pic__ack(pic), 0x27);
	assert_int_equal(read_isr(pic, 0x20), 0x00);
}

static void test_ltim_level_mode(void **state)
{
	struct pic *pic = *state;

	init_pics_with(pic, 0x19, 0x01);
	pic__set_irq(pic, 3, true);
	assert_int_equal(pic__ack(pic), 0x23);
	out8(pic, 0x20, 0x20);
	assert_int_equal(pic__ack(pic), 0x23);
	out8(pic, 0x20, 0x20);
	pic__set_irq(pic, 3, false);
	assert_false(pic__has_interrupt(pic));
	/* Slave level lines pass through the cascade too. */
	pic__set_irq(pic, 11, true);
	assert_int_equal(pic__ack(pic), 0x2b);
	pic__set_irq(pic, 11, false);
	out8(pic, 0xa0, 0x20);
	out8(pic, 0x20, 0x20);
	assert_false(pic__has_interrupt(pic));
}

static void test_poll_mode(void **state)
{
	struct pic *pic = *state;

	out8(pic, 0x20, 0x0c);
	assert_int_equal(in8(pic, 0x20), 0x00);
	pulse(pic, 6);
	out8(pic, 0x20, 0x0c);
	assert_int_equal(in8(pic, 0x21), 0x86);
	assert_int_equal(read_isr(pic, 0x20), 0x40);
	assert_false(pic__has_interrupt(pic));
	/* The read after the poll is an ordinary one again. */
	assert_int_equal(in8(pic, 0x21), 0x00);
}

static void test_rotation(void **state)
{
	struct pic *pic = *state;

	/* Set priority: IR3 lowest, so IR4 is highest. */
	out8(pic, 0x20, 0xc3);
	pulse(pic, 1);
	pulse(pic, 5);
	assert_int_equal(pic__ack(pic), 0x25);
	/* Rotate on non-specific EOI: IR5 becomes lowest, IR6 highest. */
	out8(pic, 0x20, 0xa0);
	pulse(pic, 5);
	assert_int_equal(pic__ack(pic), 0x21);
	out8(pic, 0x20, 0x20);
	assert_int_equal(pic__ack(pic), 0x25);
	/* Rotate on specific EOI makes IR7 the lowest: back to normal. */
	out8(pic, 0x20, 0xe7);
	pulse(pic, 7);
	pulse(pic, 0);
	assert_int_equal(pic__ack(pic), 0x20);
}

static void test_special_mask_mode(void **state)
{
	struct pic *pic = *state;

	pulse(pic, 1);
	assert_int_equal(pic__ack(pic), 0x21);
	pulse(pic, 4);
	assert_false(pic__has_interrupt(pic));
	/* Set special mask mode and mask the in-service IR1. */
	out8(pic, 0x20, 0x68);
	out8(pic, 0x21, 0x02);
	assert_true(pic__has_interrupt(pic));
	assert_int_equal(pic__ack(pic), 0x24);
	/* Reset special mask mode: IR1 blocks again. */
	out8(pic, 0x20, 0x64);
	out8(pic, 0x20, 0x48);
	out8(pic, 0x21, 0x00);
	pulse(pic, 5);
	assert_false(pic__has_interrupt(pic));
	out8(pic, 0x20, 0x61);
	assert_int_equal(pic__ack(pic), 0x25);
}

static void test_special_fully_nested(void **state)
{
	struct pic *pic = *state;

	init_pics_with(pic, 0x11, 0x11);
	pulse(pic, 12);
	assert_int_equal(pic__ack(pic), 0x2c);
	/* A higher-priority slave IRQ nests although IR2 is in service. */
	pulse(pic, 9);
	assert_true(pic__has_interrupt(pic));
	assert_int_equal(pic__ack(pic), 0x29);
	/* A lower-priority one does not. */
	pulse(pic, 14);
	assert_false(pic__has_interrupt(pic));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reset_state, setup_raw, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_ports, setup_raw, teardown),
		cmocka_unit_test_setup_teardown(test_irq0_ack_sets_isr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lower_priority_blocked_until_eoi, setup, teardown),
		cmocka_unit_test_setup_teardown(test_higher_priority_nests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_simultaneous_priority_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_specific_eoi, setup, teardown),
		cmocka_unit_test_setup_teardown(test_masking, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edge_latching, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slave_cascade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slave_priorities_and_all_vectors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slave_masked_by_master, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spurious_irq7, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spurious_irq15, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auto_eoi, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icw2_base_and_icw1_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icw_without_icw4, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elcr_and_level_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ltim_level_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poll_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_special_mask_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_special_fully_nested, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
