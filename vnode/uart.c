/* 16550A UART as COM1 (0x3f8-0x3ff, IRQ4).
 *
 * Transmission is instant: a THR write goes straight to out_fd, so THRE and
 * TEMT are always set. Input is pulled from in_fd only by uart__poll_input(),
 * never from the port I/O path, and only as much as the receiver has room
 * for: host input is held back in the fd rather than lost to an overrun. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "device-state.h"
#include "devices.h"

#define UART_BASE      0x3f8
#define UART_NR_PORTS  8

/* Register offsets */
#define REG_RBR_THR    0   /* DLL when DLAB */
#define REG_IER        1   /* DLM when DLAB */
#define REG_IIR_FCR    2
#define REG_LCR        3
#define REG_MCR        4
#define REG_LSR        5
#define REG_MSR        6
#define REG_SCR        7

#define IER_RDI        0x01
#define IER_THRI       0x02
#define IER_RLSI       0x04
#define IER_MSI        0x08

#define IIR_NO_INT     0x01
#define IIR_MSI        0x00
#define IIR_THRI       0x02
#define IIR_RDI        0x04
#define IIR_RLSI       0x06
#define IIR_TIMEOUT    0x0c
#define IIR_FIFO_BITS  0xc0

#define FCR_ENABLE     0x01
#define FCR_CLEAR_RX   0x02

#define LCR_DLAB       0x80

#define MCR_DTR        0x01
#define MCR_RTS        0x02
#define MCR_OUT1       0x04
#define MCR_OUT2       0x08
#define MCR_LOOP       0x10

#define LSR_DR         0x01
#define LSR_OE         0x02
#define LSR_PE         0x04
#define LSR_FE         0x08
#define LSR_BI         0x10
#define LSR_THRE       0x20
#define LSR_TEMT       0x40
#define LSR_ERRORS     (LSR_OE | LSR_PE | LSR_FE | LSR_BI)

#define MSR_DCTS       0x01
#define MSR_DDSR       0x02
#define MSR_TERI       0x04
#define MSR_DDCD       0x08
#define MSR_CTS        0x10
#define MSR_DSR        0x20
#define MSR_RI         0x40
#define MSR_DCD        0x80
#define MSR_DELTAS     0x0f

/* Without a modem the lines read as carrier present and ready to send,
 * so that drivers do not wait for them. */
#define MSR_NO_MODEM   (MSR_DCD | MSR_DSR | MSR_CTS)

#define RX_FIFO_SIZE   16

struct uart {
	uint8_t rx[RX_FIFO_SIZE];
	unsigned rx_head;
	unsigned rx_len;

	uint8_t ier;
	uint8_t lcr;
	uint8_t mcr;
	uint8_t lsr_errors;   /* sticky OE/PE/FE/BI, cleared by reading LSR */
	uint8_t msr;
	uint8_t scr;
	uint8_t dll;
	uint8_t dlm;
	bool fifo_enabled;
	unsigned rx_trigger;
	bool thre_pending;    /* THR-empty interrupt not yet acknowledged */
	bool irq_level;

	int out_fd;
	int in_fd;
	bool out_is_pipe;     /* SIGPIPE possible on write */
	bool in_eof;
	uint64_t tx_bytes;
	uint64_t tx_errors;

	void (*irq)(void *opaque, bool level);
	void *opaque;
};

static uint8_t uart__iir(const struct uart *u)
{
	uint8_t id = IIR_NO_INT;

	if ((u->ier & IER_RLSI) && (u->lsr_errors & LSR_ERRORS))
		id = IIR_RLSI;
	else if ((u->ier & IER_RDI) && u->rx_len)
		/* No clock here for the four-character timeout; data below the
		 * trigger level is reported as timed out straight away. */
		id = (u->fifo_enabled && u->rx_len < u->rx_trigger) ? IIR_TIMEOUT : IIR_RDI;
	else if ((u->ier & IER_THRI) && u->thre_pending)
		id = IIR_THRI;
	else if ((u->ier & IER_MSI) && (u->msr & MSR_DELTAS))
		id = IIR_MSI;
	return (uint8_t)(id | (u->fifo_enabled ? IIR_FIFO_BITS : 0));
}

static void uart__update_irq(struct uart *u)
{
	bool level = !(uart__iir(u) & IIR_NO_INT);

	if (level == u->irq_level)
		return;
	u->irq_level = level;
	if (u->irq)
		u->irq(u->opaque, level);
}

static unsigned uart__rx_capacity(const struct uart *u)
{
	return u->fifo_enabled ? RX_FIFO_SIZE : 1;
}

static void uart__rx_push(struct uart *u, uint8_t byte)
{
	if (u->rx_len < uart__rx_capacity(u)) {
		u->rx[(u->rx_head + u->rx_len) % RX_FIFO_SIZE] = byte;
		u->rx_len++;
		return;
	}
	u->lsr_errors |= LSR_OE;
	/* A 16450-style holding register is overwritten; a full FIFO keeps
	 * its contents and the character in the shift register is lost. */
	if (!u->fifo_enabled)
		u->rx[u->rx_head] = byte;
}

static void uart__rx_clear(struct uart *u)
{
	u->rx_head = 0;
	u->rx_len = 0;
}

/* Modem status inputs; in loopback they are the modem control outputs. */
static void uart__set_msr_lines(struct uart *u, uint8_t lines)
{
	uint8_t old = u->msr;
	uint8_t changed = (uint8_t)((old ^ lines) & 0xf0);

	u->msr = (uint8_t)((old & MSR_DELTAS) | lines);
	if (changed & MSR_CTS)
		u->msr |= MSR_DCTS;
	if (changed & MSR_DSR)
		u->msr |= MSR_DDSR;
	if ((old & MSR_RI) && !(lines & MSR_RI))
		u->msr |= MSR_TERI;
	if (changed & MSR_DCD)
		u->msr |= MSR_DDCD;
}

static uint8_t uart__msr_lines(const struct uart *u)
{
	if (!(u->mcr & MCR_LOOP))
		return MSR_NO_MODEM;
	return (uint8_t)(((u->mcr & MCR_DTR) ? MSR_DSR : 0) |
			 ((u->mcr & MCR_RTS) ? MSR_CTS : 0) |
			 ((u->mcr & MCR_OUT1) ? MSR_RI : 0) |
			 ((u->mcr & MCR_OUT2) ? MSR_DCD : 0));
}

/* write() that turns a vanished reader into EPIPE instead of a fatal SIGPIPE,
 * without touching the process's signal disposition. */
static ssize_t uart__write_nosigpipe(int fd, const void *buf, size_t len)
{
	sigset_t pipe_set, old_set, pending;
	bool was_pending;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set) != 0)
		return write(fd, buf, len);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);

	ssize_t n = write(fd, buf, len);
	int err = errno;

	if (n < 0 && err == EPIPE && !was_pending) {
		const struct timespec zero = { 0, 0 };
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old_set, NULL);
	errno = err;
	return n;
}

static void uart__tx_out(struct uart *u, uint8_t byte)
{
	if (u->out_fd < 0)
		return;

	for (;;) {
		ssize_t n = u->out_is_pipe ? uart__write_nosigpipe(u->out_fd, &byte, 1)
					   : write(u->out_fd, &byte, 1);
		if (n == 1) {
			u->tx_bytes++;
			return;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* Someone made out_fd non-blocking: behave as a blocking
			 * console would rather than drop output. */
			struct pollfd pfd = { .fd = u->out_fd, .events = POLLOUT };
			if (poll(&pfd, 1, -1) >= 0 || errno == EINTR)
				continue;
		}
		/* Any other failure (or a zero-length write): the guest keeps
		 * running and the byte is dropped. */
		u->tx_errors++;
		return;
	}
}

static void uart__write_thr(struct uart *u, uint8_t byte)
{
	/* A THR write clears the THRE interrupt; the byte leaves at once and
	 * THRE comes back, which gives an edge-triggered PIC a fresh edge. */
	u->thre_pending = false;
	uart__update_irq(u);

	if (u->mcr & MCR_LOOP)
		uart__rx_push(u, byte);
	else
		uart__tx_out(u, byte);

	u->thre_pending = true;
	uart__update_irq(u);
}

static void uart__write_fcr(struct uart *u, uint8_t val)
{
	static const unsigned trigger[4] = { 1, 4, 8, 14 };
	bool enable = val & FCR_ENABLE;

	/* Switching the FIFOs on or off empties them. */
	if (enable != u->fifo_enabled || (val & FCR_CLEAR_RX))
		uart__rx_clear(u);
	u->fifo_enabled = enable;
	u->rx_trigger = trigger[val >> 6];
}

static void uart__write(struct uart *u, unsigned reg, uint8_t val)
{
	switch (reg) {
	case REG_RBR_THR:
		if (u->lcr & LCR_DLAB)
			u->dll = val;
		else
			uart__write_thr(u, val);
		break;
	case REG_IER:
		if (u->lcr & LCR_DLAB) {
			u->dlm = val;
			break;
		}
		/* Enabling THRI with THR empty raises the interrupt again even if
		 * it was acknowledged before: Windows and Linux's THRE test
		 * depend on this, as does QEMU. */
		if ((val ^ u->ier) & IER_THRI)
			u->thre_pending = val & IER_THRI;
		u->ier = val & 0x0f;
		break;
	case REG_IIR_FCR:
		uart__write_fcr(u, val);
		break;
	case REG_LCR:
		u->lcr = val;
		break;
	case REG_MCR:
		u->mcr = val & 0x1f;
		uart__set_msr_lines(u, uart__msr_lines(u));
		break;
	case REG_SCR:
		u->scr = val;
		break;
	default:
		/* LSR and MSR writes are factory test features; ignore. */
		break;
	}
	uart__update_irq(u);
}

static uint8_t uart__read(struct uart *u, unsigned reg)
{
	uint8_t val = 0;

	switch (reg) {
	case REG_RBR_THR:
		if (u->lcr & LCR_DLAB)
			return u->dll;
		if (u->rx_len) {
			val = u->rx[u->rx_head];
			u->rx_head = (u->rx_head + 1) % RX_FIFO_SIZE;
			u->rx_len--;
		}
		break;
	case REG_IER:
		return (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
	case REG_IIR_FCR:
		val = uart__iir(u);
		/* Reading IIR acknowledges THRE, but only when it is what IIR
		 * reports. */
		if ((val & 0x0f) == IIR_THRI)
			u->thre_pending = false;
		break;
	case REG_LCR:
		return u->lcr;
	case REG_MCR:
		return u->mcr;
	case REG_LSR:
		val = (uint8_t)(u->lsr_errors | LSR_THRE | LSR_TEMT | (u->rx_len ? LSR_DR : 0));
		u->lsr_errors = 0;
		break;
	case REG_MSR:
		val = u->msr;
		u->msr &= ~MSR_DELTAS;
		break;
	default:
		return u->scr;
	}
	uart__update_irq(u);
	return val;
}

struct uart *uart__new(int out_fd, int in_fd, void (*irq)(void *opaque, bool level), void *opaque)
{
	struct uart *u = calloc(1, sizeof(*u));
	struct stat st;

	if (!u)
		return NULL;
	u->out_fd = out_fd;
	u->in_fd = in_fd;
	u->irq = irq;
	u->opaque = opaque;
	u->out_is_pipe = out_fd >= 0 && fstat(out_fd, &st) == 0 &&
			 (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
	u->msr = MSR_NO_MODEM;
	u->rx_trigger = 1;
	u->thre_pending = false;
	/* 9600 baud, the usual firmware default; nothing depends on it. */
	u->dll = 12;
	return u;
}

/* The fds belong to the caller and stay open. */
void uart__free(struct uart *uart)
{
	free(uart);
}

bool uart__io(struct uart *uart, uint16_t port, bool is_write, uint8_t *data)
{
	if (port < UART_BASE || port >= UART_BASE + UART_NR_PORTS)
		return false;
	if (is_write)
		uart__write(uart, port - UART_BASE, *data);
	else
		*data = uart__read(uart, port - UART_BASE);
	return true;
}

bool uart__poll_input(struct uart *u)
{
	if (u->in_fd < 0 || u->in_eof)
		return false;
	/* The line is disconnected from the outside in loopback mode. */
	if (u->mcr & MCR_LOOP)
		return true;

	/* in_fd is shared with whoever gave it to us (often a terminal), so
	 * rather than set O_NONBLOCK on it, ask poll() before every read. */
	while (u->rx_len < uart__rx_capacity(u)) {
		struct pollfd pfd = { .fd = u->in_fd, .events = POLLIN };
		int r = poll(&pfd, 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (pfd.revents & POLLNVAL) {
			u->in_eof = true;
			break;
		}

		uint8_t buf[RX_FIFO_SIZE];
		ssize_t n = read(u->in_fd, buf, uart__rx_capacity(u) - u->rx_len);
		if (n > 0) {
			for (ssize_t i = 0; i < n; i++)
				uart__rx_push(u, buf[i]);
			continue;
		}
		if (n == 0) {
			u->in_eof = true;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		/* EIO from a hung-up terminal and the like: nothing more will
		 * come, and retrying would spin. */
		u->in_eof = true;
		break;
	}
	uart__update_irq(u);
	return !u->in_eof;
}

uint64_t uart__tx_bytes(const struct uart *uart)
{
	return uart->tx_bytes;
}

/* ---- saved state
 *
 * Version 1: tag "UART", u16 version, then ier, lcr, mcr, lsr_errors, msr,
 * scr, dll, dlm (u8 each), fifo_enabled (bool byte), rx_trigger u8 (the
 * level: 1, 4, 8 or 14), thre_pending (bool byte), tx_bytes u64, rx_len u8
 * and the rx_len received bytes oldest first.
 *
 * The IRQ level is not stored: it follows from the registers. Neither are
 * the fds, the EOF flag and the write error count, which describe this
 * process's console rather than the guest's device. */
#define UART_STATE_VERSION 1

static size_t uart__encode(const struct uart *u, uint8_t *buf)
{
	struct dstate_writer w = { .buf = buf };

	dstate__put_header(&w, DSTATE_TAG_UART, UART_STATE_VERSION);
	dstate__put_u8(&w, u->ier);
	dstate__put_u8(&w, u->lcr);
	dstate__put_u8(&w, u->mcr);
	dstate__put_u8(&w, u->lsr_errors);
	dstate__put_u8(&w, u->msr);
	dstate__put_u8(&w, u->scr);
	dstate__put_u8(&w, u->dll);
	dstate__put_u8(&w, u->dlm);
	dstate__put_bool(&w, u->fifo_enabled);
	dstate__put_u8(&w, (uint8_t)u->rx_trigger);
	dstate__put_bool(&w, u->thre_pending);
	dstate__put_u64(&w, u->tx_bytes);
	dstate__put_u8(&w, (uint8_t)u->rx_len);
	for (unsigned i = 0; i < u->rx_len; i++)
		dstate__put_u8(&w, u->rx[(u->rx_head + i) % RX_FIFO_SIZE]);
	return w.len;
}

size_t uart__save(const struct uart *uart, uint8_t *buf, size_t cap)
{
	size_t need = uart__encode(uart, NULL);

	if (buf && need <= cap)
		uart__encode(uart, buf);
	return need;
}

int uart__restore(struct uart *uart, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	struct dstate_reader r;
	/* Starts as a copy so that what is not state (fds, callback, and the
	 * IRQ level currently driven) carries over. */
	struct uart tmp = *uart;

	dstate__reader_init(&r, "uart", buf, len, err, errlen);
	dstate__get_header(&r, DSTATE_TAG_UART, UART_STATE_VERSION);
	tmp.ier = dstate__get_u8(&r, "ier");
	if (!r.failed && (tmp.ier & ~0x0f))
		dstate__fail(&r, "ier", "0x%02x sets reserved bits", tmp.ier);
	tmp.lcr = dstate__get_u8(&r, "lcr");
	tmp.mcr = dstate__get_u8(&r, "mcr");
	if (!r.failed && (tmp.mcr & ~0x1f))
		dstate__fail(&r, "mcr", "0x%02x sets reserved bits", tmp.mcr);
	tmp.lsr_errors = dstate__get_u8(&r, "lsr_errors");
	if (!r.failed && (tmp.lsr_errors & ~LSR_ERRORS))
		dstate__fail(&r, "lsr_errors", "0x%02x has bits other than OE/PE/FE/BI", tmp.lsr_errors);
	tmp.msr = dstate__get_u8(&r, "msr");
	/* The line bits are the modem inputs (or MCR in loopback), only the
	 * delta bits have history. */
	if (!r.failed && (tmp.msr & ~MSR_DELTAS) != uart__msr_lines(&tmp))
		dstate__fail(&r, "msr", "0x%02x: lines disagree with mcr 0x%02x (expected 0x%02x)",
			     tmp.msr, tmp.mcr, uart__msr_lines(&tmp));
	tmp.scr = dstate__get_u8(&r, "scr");
	tmp.dll = dstate__get_u8(&r, "dll");
	tmp.dlm = dstate__get_u8(&r, "dlm");
	tmp.fifo_enabled = dstate__get_bool(&r, "fifo_enabled");
	tmp.rx_trigger = dstate__get_u8(&r, "rx_trigger");
	if (!r.failed && tmp.rx_trigger != 1 && tmp.rx_trigger != 4 && tmp.rx_trigger != 8 &&
	    tmp.rx_trigger != 14)
		dstate__fail(&r, "rx_trigger", "%u is not a FIFO trigger level (1, 4, 8, 14)", tmp.rx_trigger);
	tmp.thre_pending = dstate__get_bool(&r, "thre_pending");
	tmp.tx_bytes = dstate__get_u64(&r, "tx_bytes");
	tmp.rx_len = dstate__get_u8(&r, "rx_len");
	if (!r.failed && tmp.rx_len > uart__rx_capacity(&tmp))
		dstate__fail(&r, "rx_len", "%u bytes exceed the receiver's %u (FIFO %s)", tmp.rx_len,
			     uart__rx_capacity(&tmp), tmp.fifo_enabled ? "on" : "off");
	tmp.rx_head = 0;
	if (!r.failed)
		dstate__get_bytes(&r, "rx", tmp.rx, tmp.rx_len);
	if (dstate__finish(&r) < 0)
		return -1;

	*uart = tmp;
	uart__update_irq(uart);
	return 0;
}
