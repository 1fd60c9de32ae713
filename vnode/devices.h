/* Userspace PC devices of the vnode. Each device is one file
 * (pic.c, pit.c, uart.c); the vCPU loop routes port I/O here.
 *
 * Time is passed in explicitly as nanoseconds of guest time (`now`), so that
 * devices hold no hidden clock and tests can drive them deterministically. */
#ifndef SIMUBOOST_VNODE_DEVICES_H
#define SIMUBOOST_VNODE_DEVICES_H

#include <stdbool.h>
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

#endif
