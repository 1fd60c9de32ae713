/* Unit tests for the 16550A UART (vnode/uart.c). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices.h"

#define COM1 0x3f8
#define THR  (COM1 + 0)
#define RBR  (COM1 + 0)
#define DLL  (COM1 + 0)
#define IER  (COM1 + 1)
#define DLM  (COM1 + 1)
#define IIR  (COM1 + 2)
#define FCR  (COM1 + 2)
#define LCR  (COM1 + 3)
#define MCR  (COM1 + 4)
#define LSR  (COM1 + 5)
#define MSR  (COM1 + 6)
#define SCR  (COM1 + 7)

struct fixture {
	struct uart *uart;
	int out[2];   /* the UART writes out[1]; the test reads out[0] */
	int in[2];    /* the test writes in[1]; the UART reads in[0] */
	bool level;
	unsigned rises;
	unsigned falls;
};

static void irq_cb(void *opaque, bool level)
{
	struct fixture *f = opaque;

	/* Only level changes may be reported. */
	assert_int_not_equal(level, f->level);
	f->level = level;
	if (level)
		f->rises++;
	else
		f->falls++;
}

static void out8(struct uart *u, uint16_t port, uint8_t val)
{
	assert_true(uart__io(u, port, true, &val));
}

static uint8_t in8(struct uart *u, uint16_t port)
{
	uint8_t val = 0xa5;
	assert_true(uart__io(u, port, false, &val));
	return val;
}

static void feed(struct fixture *f, const char *s)
{
	size_t len = strlen(s);
	assert_int_equal(write(f->in[1], s, len), (ssize_t)len);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_int_equal(pipe(f->out), 0);
	assert_int_equal(pipe(f->in), 0);
	/* The test side of the output pipe must not block when empty. */
	fcntl(f->out[0], F_SETFL, O_NONBLOCK);
	f->uart = uart__new(f->out[1], f->in[0], irq_cb, f);
	assert_non_null(f->uart);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	uart__free(f->uart);
	for (unsigned i = 0; i < 2; i++) {
		close_fd(&f->out[i]);
		close_fd(&f->in[i]);
	}
	free(f);
	return 0;
}

static void test_ports(void **state)
{
	struct fixture *f = *state;
	uint8_t v = 0;

	assert_false(uart__io(f->uart, 0x3f7, false, &v));
	assert_false(uart__io(f->uart, 0x400, false, &v));
	assert_false(uart__io(f->uart, 0x2f8, true, &v));
	assert_true(uart__io(f->uart, 0x3ff, false, &v));
}

static void test_reset_state(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(in8(f->uart, IER), 0x00);
	assert_int_equal(in8(f->uart, IIR), 0x01);
	assert_int_equal(in8(f->uart, LCR), 0x00);
	assert_int_equal(in8(f->uart, MCR), 0x00);
	assert_int_equal(in8(f->uart, LSR), 0x60);
	/* No modem: carrier, DSR and CTS present, no deltas. */
	assert_int_equal(in8(f->uart, MSR), 0xb0);
	assert_false(f->level);
	assert_int_equal(f->rises, 0);
}

static void test_thr_writes_reach_pipe(void **state)
{
	struct fixture *f = *state;
	const char *msg = "hello, world\n";
	char buf[64];

	for (const char *p = msg; *p; p++)
		out8(f->uart, THR, (uint8_t)*p);
	assert_int_equal(uart__tx_bytes(f->uart), strlen(msg));
	ssize_t n = read(f->out[0], buf, sizeof(buf));
	assert_int_equal(n, (ssize_t)strlen(msg));
	assert_memory_equal(buf, msg, strlen(msg));
	/* Transmission is instant. */
	assert_int_equal(in8(f->uart, LSR) & 0x60, 0x60);
	/* No interrupt without IER. */
	assert_int_equal(f->rises, 0);
}

static void test_dlab_divisor_roundtrip(void **state)
{
	struct fixture *f = *state;
	char c;

	out8(f->uart, IER, 0x05);
	out8(f->uart, LCR, 0x83);
	assert_int_equal(in8(f->uart, LCR), 0x83);
	out8(f->uart, DLL, 0x01);
	out8(f->uart, DLM, 0x02);
	assert_int_equal(in8(f->uart, DLL), 0x01);
	assert_int_equal(in8(f->uart, DLM), 0x02);
	/* The divisor write did not transmit anything. */
	assert_int_equal(uart__tx_bytes(f->uart), 0);
	assert_int_equal(read(f->out[0], &c, 1), -1);

	out8(f->uart, LCR, 0x03);
	assert_int_equal(in8(f->uart, IER), 0x05);
	out8(f->uart, THR, 'x');
	assert_int_equal(read(f->out[0], &c, 1), 1);
	assert_int_equal(c, 'x');

	out8(f->uart, LCR, 0x83);
	assert_int_equal(in8(f->uart, DLL), 0x01);
	assert_int_equal(in8(f->uart, DLM), 0x02);
}

static void test_scratch_register(void **state)
{
	struct fixture *f = *state;

	out8(f->uart, SCR, 0x5a);
	assert_int_equal(in8(f->uart, SCR), 0x5a);
	out8(f->uart, SCR, 0xa5);
	assert_int_equal(in8(f->uart, SCR), 0xa5);
}

static void test_fifo_enable_iir_bits(void **state)
{
	struct fixture *f = *state;

	out8(f->uart, FCR, 0x07);
	assert_int_equal(in8(f->uart, IIR), 0xc1);
	out8(f->uart, FCR, 0x00);
	assert_int_equal(in8(f->uart, IIR), 0x01);
}

static void test_thre_interrupt(void **state)
{
	struct fixture *f = *state;

	/* Enabling THRI with THR empty raises it. */
	out8(f->uart, IER, 0x02);
	assert_true(f->level);
	assert_int_equal(f->rises, 1);
	/* Reading IIR when THRE is the source acknowledges it. */
	assert_int_equal(in8(f->uart, IIR), 0x02);
	assert_false(f->level);
	assert_int_equal(in8(f->uart, IIR), 0x01);
	/* A THR write empties at once: THRE comes back, a fresh edge. */
	out8(f->uart, THR, 'a');
	assert_true(f->level);
	assert_int_equal(f->rises, 2);
	/* With the line already high, a THR write still pulses it. */
	out8(f->uart, THR, 'b');
	assert_true(f->level);
	assert_int_equal(f->rises, 3);
	assert_int_equal(f->falls, 2);
	/* Disabling THRI drops the line. */
	out8(f->uart, IER, 0x00);
	assert_false(f->level);
	assert_int_equal(in8(f->uart, IIR), 0x01);
	/* Re-enabling raises it again even though it was acknowledged. */
	assert_int_equal(in8(f->uart, IIR), 0x01);
	out8(f->uart, IER, 0x02);
	assert_true(f->level);
	/* Rewriting IER with THRI still set does not re-arm it. */
	assert_int_equal(in8(f->uart, IIR), 0x02);
	out8(f->uart, IER, 0x02);
	assert_false(f->level);
}

static void test_rx_from_pipe(void **state)
{
	struct fixture *f = *state;

	assert_true(uart__poll_input(f->uart));
	assert_int_equal(in8(f->uart, LSR) & 0x01, 0x00);

	feed(f, "ab");
	/* Non-FIFO mode: one holding register, the rest waits in the pipe. */
	assert_true(uart__poll_input(f->uart));
	assert_int_equal(in8(f->uart, LSR), 0x61);
	assert_false(f->level);
	out8(f->uart, IER, 0x01);
	assert_true(f->level);
	assert_int_equal(in8(f->uart, IIR), 0x04);
	assert_int_equal(in8(f->uart, RBR), 'a');
	assert_false(f->level);
	assert_int_equal(in8(f->uart, LSR), 0x60);
	assert_true(uart__poll_input(f->uart));
	assert_true(f->level);
	assert_int_equal(in8(f->uart, RBR), 'b');
	assert_false(f->level);
	assert_int_equal(f->rises, 2);
	/* No overrun: host input is never dropped. */
	assert_int_equal(in8(f->uart, LSR), 0x60);
}

static void test_rx_fifo(void **state)
{
	struct fixture *f = *state;
	char expect[21];

	out8(f->uart, FCR, 0xc1); /* FIFO on, trigger level 14 */
	out8(f->uart, IER, 0x01);
	feed(f, "ABCDEFGHIJKLMNOPQRST");
	assert_true(uart__poll_input(f->uart));
	assert_true(f->level);
	assert_int_equal(in8(f->uart, IIR), 0xc4);
	for (unsigned i = 0; i < 16; i++)
		expect[i] = (char)in8(f->uart, RBR);
	assert_false(f->level);
	assert_int_equal(in8(f->uart, LSR), 0x60);
	assert_true(uart__poll_input(f->uart));
	/* Below the trigger level the data is reported as timed out. */
	assert_int_equal(in8(f->uart, IIR), 0xcc);
	for (unsigned i = 16; i < 20; i++)
		expect[i] = (char)in8(f->uart, RBR);
	expect[20] = 0;
	assert_string_equal(expect, "ABCDEFGHIJKLMNOPQRST");
	assert_int_equal(in8(f->uart, IIR), 0xc1);
	/* FCR bit 1 clears the receive FIFO. */
	feed(f, "xyz");
	assert_true(uart__poll_input(f->uart));
	out8(f->uart, FCR, 0xc3);
	assert_int_equal(in8(f->uart, LSR) & 0x01, 0x00);
	assert_false(f->level);
}

static void test_rx_eof(void **state)
{
	struct fixture *f = *state;

	feed(f, "z");
	close_fd(&f->in[1]);
	out8(f->uart, FCR, 0x01);
	/* The last byte arrives and end of file is seen in the same poll. */
	assert_false(uart__poll_input(f->uart));
	assert_int_equal(in8(f->uart, RBR), 'z');
	assert_false(uart__poll_input(f->uart));
	assert_false(uart__poll_input(f->uart));
	assert_int_equal(in8(f->uart, LSR), 0x60);
	/* Output still works. */
	out8(f->uart, THR, '!');
	assert_int_equal(uart__tx_bytes(f->uart), 1);
}

static void test_rx_never_blocks(void **state)
{
	struct fixture *f = *state;

	/* Writer open, no data, blocking pipe: must return at once. */
	for (unsigned i = 0; i < 100; i++)
		assert_true(uart__poll_input(f->uart));
	assert_int_equal(in8(f->uart, LSR) & 0x01, 0x00);
}

static void test_rx_from_file(void **state)
{
	(void)state;
	char path[] = "/tmp/test_uart_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	for (unsigned i = 0; i < 40; i++) {
		char c = (char)('0' + i % 10);
		assert_int_equal(write(fd, &c, 1), 1);
	}
	lseek(fd, 0, SEEK_SET);

	struct uart *u = uart__new(-1, fd, NULL, NULL);
	assert_non_null(u);
	out8(u, FCR, 0x01);
	unsigned got = 0;
	bool more = true;
	for (unsigned round = 0; round < 10 && more; round++) {
		more = uart__poll_input(u);
		while (in8(u, LSR) & 0x01) {
			assert_int_equal(in8(u, RBR), '0' + got % 10);
			got++;
		}
	}
	assert_false(more);
	assert_int_equal(got, 40);
	/* No output fd: bytes are dropped without harm. */
	out8(u, THR, 'x');
	assert_int_equal(uart__tx_bytes(u), 0);
	uart__free(u);
	close(fd);
}

static void test_no_input_fd(void **state)
{
	(void)state;
	struct uart *u = uart__new(-1, -1, NULL, NULL);
	assert_non_null(u);
	assert_false(uart__poll_input(u));
	assert_int_equal(in8(u, LSR), 0x60);
	uart__free(u);
}

static void test_loopback(void **state)
{
	struct fixture *f = *state;
	char c;

	out8(f->uart, MCR, 0x10);
	out8(f->uart, IER, 0x01);
	out8(f->uart, THR, 0x42);
	/* Looped back, not sent. */
	assert_int_equal(uart__tx_bytes(f->uart), 0);
	assert_int_equal(read(f->out[0], &c, 1), -1);
	assert_true(f->level);
	assert_int_equal(in8(f->uart, LSR), 0x61);
	assert_int_equal(in8(f->uart, RBR), 0x42);
	assert_false(f->level);

	/* Outside input is disconnected in loopback. */
	feed(f, "q");
	assert_true(uart__poll_input(f->uart));
	assert_int_equal(in8(f->uart, LSR) & 0x01, 0x00);
	out8(f->uart, MCR, 0x00);
	assert_true(uart__poll_input(f->uart));
	assert_int_equal(in8(f->uart, RBR), 'q');
	out8(f->uart, THR, 'w');
	assert_int_equal(uart__tx_bytes(f->uart), 1);
}

static void test_loopback_modem_lines(void **state)
{
	struct fixture *f = *state;

	/* Loopback with all outputs low: every input line drops. */
	out8(f->uart, MCR, 0x10);
	assert_int_equal(in8(f->uart, MSR), 0x0b);
	assert_int_equal(in8(f->uart, MSR), 0x00);
	/* DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD. */
	out8(f->uart, MCR, 0x1f);
	assert_int_equal(in8(f->uart, MSR), 0xfb);
	out8(f->uart, MCR, 0x1b);
	/* RI's trailing edge. */
	assert_int_equal(in8(f->uart, MSR), 0xb4);
	out8(f->uart, MCR, 0x12);
	assert_int_equal(in8(f->uart, MSR), 0x1a);
	/* Modem status interrupt. */
	out8(f->uart, IER, 0x08);
	assert_false(f->level);
	out8(f->uart, MCR, 0x13);
	assert_true(f->level);
	assert_int_equal(in8(f->uart, IIR), 0x00);
	assert_int_equal(in8(f->uart, MSR), 0x32);
	assert_false(f->level);
	assert_int_equal(in8(f->uart, IIR), 0x01);
}

static void test_fifo_overrun(void **state)
{
	struct fixture *f = *state;

	out8(f->uart, FCR, 0x01);
	out8(f->uart, MCR, 0x10);
	for (unsigned i = 0; i < 17; i++)
		out8(f->uart, THR, (uint8_t)i);
	/* Overrun is reported once and cleared by the LSR read. */
	assert_int_equal(in8(f->uart, LSR), 0x63);
	assert_int_equal(in8(f->uart, LSR), 0x61);
	/* The FIFO kept the first 16; the 17th was lost. */
	for (unsigned i = 0; i < 16; i++)
		assert_int_equal(in8(f->uart, RBR), i);
	assert_int_equal(in8(f->uart, LSR), 0x60);

	/* Without FIFO the holding register is overwritten. */
	out8(f->uart, FCR, 0x00);
	out8(f->uart, THR, 'a');
	out8(f->uart, THR, 'b');
	assert_int_equal(in8(f->uart, LSR), 0x63);
	assert_int_equal(in8(f->uart, RBR), 'b');
	assert_int_equal(in8(f->uart, LSR), 0x60);
}

static void test_iir_priorities(void **state)
{
	struct fixture *f = *state;

	out8(f->uart, FCR, 0x01);
	out8(f->uart, MCR, 0x10);   /* loopback: MSR deltas pending */
	for (unsigned i = 0; i < 17; i++)
		out8(f->uart, THR, 'x');  /* data, overrun, THRE */
	out8(f->uart, IER, 0x0f);
	assert_true(f->level);

	assert_int_equal(in8(f->uart, IIR), 0xc6);  /* line status */
	assert_int_equal(in8(f->uart, IIR), 0xc6);
	in8(f->uart, LSR);
	assert_int_equal(in8(f->uart, IIR), 0xc4);  /* received data */
	while (in8(f->uart, LSR) & 0x01)
		in8(f->uart, RBR);
	assert_true(f->level);
	assert_int_equal(in8(f->uart, IIR), 0xc2);  /* THR empty, acked */
	assert_int_equal(in8(f->uart, IIR), 0xc0);  /* modem status */
	in8(f->uart, MSR);
	assert_int_equal(in8(f->uart, IIR), 0xc1);
	assert_false(f->level);
	/* The line stayed high throughout: one rise, one fall. */
	assert_int_equal(f->rises, 1);
	assert_int_equal(f->falls, 1);
}

static void test_rx_data_masks_thre(void **state)
{
	struct fixture *f = *state;

	out8(f->uart, IER, 0x03);
	feed(f, "k");
	assert_true(uart__poll_input(f->uart));
	/* THRE is pending too, but data ranks higher and reading IIR does
	 * not acknowledge the THRE it did not report. */
	assert_int_equal(in8(f->uart, IIR), 0x04);
	assert_int_equal(in8(f->uart, RBR), 'k');
	assert_int_equal(in8(f->uart, IIR), 0x02);
	assert_int_equal(in8(f->uart, IIR), 0x01);
}

static void test_write_errors_are_survived(void **state)
{
	struct fixture *f = *state;

	/* Reader gone: EPIPE, and no SIGPIPE may kill us. */
	close_fd(&f->out[0]);
	for (unsigned i = 0; i < 3; i++)
		out8(f->uart, THR, 'x');
	assert_int_equal(uart__tx_bytes(f->uart), 0);
	assert_int_equal(in8(f->uart, LSR), 0x60);

	/* A closed descriptor: EBADF. */
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	close(fds[0]);
	close(fds[1]);
	struct uart *u = uart__new(fds[1], -1, NULL, NULL);
	assert_non_null(u);
	out8(u, THR, 'y');
	assert_int_equal(uart__tx_bytes(u), 0);
	uart__free(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ports, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thr_writes_reach_pipe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dlab_divisor_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scratch_register, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_enable_iir_bits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thre_interrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_from_pipe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_never_blocks, setup, teardown),
		cmocka_unit_test(test_rx_from_file),
		cmocka_unit_test(test_no_input_fd),
		cmocka_unit_test_setup_teardown(test_loopback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loopback_modem_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_overrun, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iir_priorities, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_data_masks_thre, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_errors_are_survived, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
