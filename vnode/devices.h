/* Userspace PC devices of the vnode. Each device is one file
 * (pic.c, pit.c, uart.c); the vCPU loop routes port I/O here.
 *
 * Time is passed in explicitly as nanoseconds of guest time (`now`), so that
 * devices hold no hidden clock and tests can drive them deterministically. */
#ifndef SIMUBOOST_VNODE_DEVICES_H
#define SIMUBOOST_VNODE_DEVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- 8259A PIC pair (master 0x20/0x21, slave 0xa0/0xa1, cascade on IRQ2) */
struct pic;
struct pic *pic__new(void);
void pic__free(struct pic *pic);
/* Port access; size is 1. Returns false if the port is not the PIC's. */
bool pic__io(struct pic *pic, uint16_t port, bool is_write, uint8_t *data);
/* Line level for IRQ 0..15 (edge-triggered: a 0->1 transition latches IRR). */
void pic__set_irq(struct pic *pic, unsigned irq, bool level);
/* True if the master's INT output is asserted. */
bool pic__has_interrupt(const struct pic *pic);
/* The CPU's INTA cycle: returns the vector to inject and updates ISR/IRR
 * (including auto-EOI and spurious IRQ7/IRQ15). Call only if has_interrupt. */
uint8_t pic__ack(struct pic *pic);

/* ---- 8254 PIT (ports 0x40-0x43) plus the port 0x61 gate/speaker bits */
struct pit;
/* irq0 is called with level changes of channel 0's output (wired to IRQ0). */
struct pit *pit__new(void (*irq0)(void *opaque, bool level), void *opaque);
void pit__free(struct pit *pit);
bool pit__io(struct pit *pit, uint16_t port, bool is_write, uint8_t *data, uint64_t now);
/* Brings channel 0's output up to `now`, firing IRQ0 edges that are due.
 * Returns how many periods were coalesced into one edge (missed ticks). */
uint64_t pit__advance(struct pit *pit, uint64_t now);
/* Guest time of the next IRQ0 edge, or UINT64_MAX if none is scheduled. */
uint64_t pit__next_deadline(const struct pit *pit);

/* ---- 16550A UART (COM1: ports 0x3f8-0x3ff, IRQ4) */
struct uart;
/* out_fd receives transmitted bytes; in_fd (or -1) supplies received bytes
 * and is read non-blocking. irq is called with level changes of the IRQ line. */
struct uart *uart__new(int out_fd, int in_fd, void (*irq)(void *opaque, bool level), void *opaque);
void uart__free(struct uart *uart);
bool uart__io(struct uart *uart, uint16_t port, bool is_write, uint8_t *data);
/* Pulls pending input from in_fd into the receive FIFO and updates the IRQ.
 * Returns false once in_fd has reached end of file. */
bool uart__poll_input(struct uart *uart);
/* Bytes written to out_fd so far. */
uint64_t uart__tx_bytes(const struct uart *uart);

/* ---- Saved state, for checkpoints.
 *
 * Each device's state is a versioned, self-describing byte string (a tag, a
 * version, then every field explicitly little-endian). x__save() returns the
 * number of bytes the state needs and writes them only if buf is non-NULL
 * and cap is large enough (otherwise buf is untouched); call it with NULL, 0
 * to size a buffer.
 *
 * x__restore() checks the tag, the version, the length and every field's
 * range and consistency. On bad input it returns -1 with a message naming
 * the device and the field in err (errlen bytes, may be 0) and leaves the
 * device unchanged; on success it returns 0 and the device behaves exactly
 * as the saved one would have from the same guest time on. Restored devices
 * expect `now` to continue from where the saved machine stood (PIT times are
 * absolute ticks). What is not state stays: callbacks, opaque pointers and
 * the UART's fds, EOF flag and error count. */
size_t pic__save(const struct pic *pic, uint8_t *buf, size_t cap);
/* The PIC's INT output is a function of its state; nothing is signalled. */
int pic__restore(struct pic *pic, const uint8_t *buf, size_t len, char *err, size_t errlen);
/* Pending (not yet reported) IRQ0 edges are part of the state: the next
 * pit__advance() fires exactly what the saved PIT's would have. */
size_t pit__save(const struct pit *pit, uint8_t *buf, size_t cap);
int pit__restore(struct pit *pit, const uint8_t *buf, size_t len, char *err, size_t errlen);
/* Includes the receive FIFO and the transmitted byte count. Restoring calls
 * the irq callback if the restored IRQ level differs from the level this
 * UART was driving, so the line it is wired to ends up at the new level. */
size_t uart__save(const struct uart *uart, uint8_t *buf, size_t cap);
int uart__restore(struct uart *uart, const uint8_t *buf, size_t len, char *err, size_t errlen);

/* All three in one container: magic "SBDEV", a version, one tagged,
 * length-prefixed section per device, and an XXH3-64 checksum. Restore is
 * all or nothing: on any error none of the devices changes. */
size_t devices__save(const struct pic *pic, const struct pit *pit, const struct uart *uart,
		     uint8_t *buf, size_t cap);
int devices__restore(struct pic *pic, struct pit *pit, struct uart *uart,
		     const uint8_t *buf, size_t len, char *err, size_t errlen);

#endif
