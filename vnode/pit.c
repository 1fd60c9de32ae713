/* 8254 programmable interval timer (ports 0x40-0x43) and the PC's port 0x61
 * (channel 2 gate, speaker enable, channel 2 output).
 *
 * All three channels count on one global 1193182 Hz tick grid, tick n being
 * the first at guest time ceil(n * 1e9 / 1193182) ns. Counter values and
 * outputs are pure functions of `now`, computed in exact 64-bit integer
 * arithmetic, so reads are reproducible and there is no drift or overflow
 * however long the guest runs. Interrupts leave only through pit__advance(),
 * which the vCPU loop calls at points it controls and logs. */
#include <stdlib.h>
#include <string.h>

#include "device-state.h"
#include "devices.h"

#define PIT_HZ        1193182u
#define NS_PER_SEC    1000000000u
#define PIT_NO_TICK   UINT64_MAX

#define PIT_PORT_CH0  0x40
#define PIT_PORT_CTRL 0x43
#define PORT_61       0x61

/* Control word fields */
#define CW_SC(v)      (((v) >> 6) & 3)
#define CW_RW(v)      (((v) >> 4) & 3)
#define CW_MODE(v)    (((v) >> 1) & 7)
#define CW_BCD        0x01
/* Read-back command */
#define RB_NO_COUNT   0x20
#define RB_NO_STATUS  0x10

enum pit_rw {
	RW_LATCH = 0,
	RW_LSB = 1,
	RW_MSB = 2,
	RW_WORD = 3,
};

struct pit_channel {
	uint8_t mode;           /* 0..5; 6 and 7 are stored as 2 and 3 */
	uint8_t rw;             /* enum pit_rw, never RW_LATCH */
	bool bcd;               /* reported back, but counting is binary */
	bool gate;

	uint16_t cr;            /* count register as written, 0 = 65536 */
	uint32_t count;         /* count the counting element runs with */
	bool loaded;            /* a count was written since the control word */
	bool null_count;        /* cr written but not yet in the counting element */
	bool running;           /* gate enabled / one-shot triggered */
	uint64_t start_tick;    /* tick at which the counter held `count` */
	uint64_t paused_ticks;  /* elapsed ticks frozen while not running */
	uint16_t frozen;        /* what a read returns before any count */

	/* Modes 2 and 3 take a new count at the end of the current period. */
	bool reload_pending;
	uint64_t reload_tick;

	bool write_msb_next;
	uint8_t write_lsb;
	bool read_msb_next;

	bool count_latched;
	uint8_t latch_left;     /* bytes of the latched count still to read */
	uint16_t latch;
	bool status_latched;
	uint8_t status;

	/* Rising edges of OUT: the next one, and those passed but not reported. */
	uint64_t edge_next;
	uint64_t edges_due;
	uint64_t first_due;
};

struct pit {
	struct pit_channel ch[3];
	bool speaker;
	uint8_t port61_nmi;     /* bits 2-3, stored only */
	bool refresh;
	void (*irq0)(void *opaque, bool level);
	void *opaque;
};

static uint64_t pit__ns_to_tick(uint64_t ns)
{
	/* Split at whole seconds so that nothing overflows 64 bits. */
	return (ns / NS_PER_SEC) * PIT_HZ + (ns % NS_PER_SEC) * PIT_HZ / NS_PER_SEC;
}

/* First nanosecond at which pit__ns_to_tick() reaches `tick`. */
static uint64_t pit__tick_to_ns(uint64_t tick)
{
	return (tick / PIT_HZ) * NS_PER_SEC +
	       ((tick % PIT_HZ) * NS_PER_SEC + PIT_HZ - 1) / PIT_HZ;
}

static uint32_t chan__count_of(uint16_t cr)
{
	return cr ? cr : 0x10000u;
}

static bool chan__periodic(const struct pit_channel *c)
{
	return c->mode == 2 || c->mode == 3;
}

static uint64_t chan__elapsed(const struct pit_channel *c, uint64_t tick)
{
	if (!c->running)
		return c->paused_ticks;
	return tick >= c->start_tick ? tick - c->start_tick : 0;
}

/* Next rising edge of OUT after `tick`, assuming the counter runs on. */
static void chan__schedule(struct pit_channel *c, uint64_t tick)
{
	uint64_t d = chan__elapsed(c, tick);

	c->edge_next = PIT_NO_TICK;
	if (!c->loaded || !c->running)
		return;
	switch (c->mode) {
	case 0:
	case 1:
		/* OUT rises at terminal count and stays high: one edge. */
		if (d < c->count)
			c->edge_next = c->start_tick + c->count;
		break;
	case 4:
	case 5:
		/* OUT pulses low for the tick at terminal count. */
		if (d < (uint64_t)c->count + 1)
			c->edge_next = c->start_tick + c->count + 1;
		break;
	default:
		/* Modes 2 and 3 reload and OUT rises at every period end. */
		c->edge_next = c->start_tick + (d / c->count + 1) * c->count;
		break;
	}
}

static void chan__add_edges(struct pit_channel *c, uint64_t first, uint64_t n)
{
	if (!n)
		return;
	if (!c->edges_due)
		c->first_due = first;
	c->edges_due += n;
}

/* Brings the channel up to `tick`: counts OUT edges that have passed and
 * applies a mode 2/3 reload whose period boundary has been reached. */
static void chan__sync(struct pit_channel *c, uint64_t tick)
{
	if (c->reload_pending && c->running && tick >= c->reload_tick) {
		if (c->edge_next != PIT_NO_TICK && c->edge_next <= c->reload_tick) {
			uint64_t n = (c->reload_tick - c->edge_next) / c->count + 1;
			chan__add_edges(c, c->edge_next, n);
		}
		c->start_tick = c->reload_tick;
		c->count = chan__count_of(c->cr);
		c->reload_pending = false;
		c->null_count = false;
		c->edge_next = c->start_tick + c->count;
	}
	if (c->edge_next == PIT_NO_TICK || tick < c->edge_next)
		return;
	if (chan__periodic(c)) {
		uint64_t n = (tick - c->edge_next) / c->count + 1;
		chan__add_edges(c, c->edge_next, n);
		c->edge_next += n * c->count;
	} else {
		chan__add_edges(c, c->edge_next, 1);
		c->edge_next = PIT_NO_TICK;
	}
}

static bool chan__out(const struct pit_channel *c, uint64_t tick)
{
	if (!c->loaded)
		return c->mode != 0;

	uint64_t d = chan__elapsed(c, tick);
	switch (c->mode) {
	case 0:
		return d >= c->count;
	case 1:
		return !c->running || d >= c->count;
	case 2:
		return !c->running || d % c->count != c->count - 1;
	case 3:
		return !c->running || d % c->count < (c->count + 1) / 2;
	case 4:
		return d != c->count;
	default: /* 5 */
		return !c->running || d != c->count;
	}
}

static uint16_t chan__value(const struct pit_channel *c, uint64_t tick)
{
	if (!c->loaded)
		return c->frozen;
	if ((c->mode == 1 || c->mode == 5) && !c->running)
		return (uint16_t)c->count;

	uint64_t d = chan__elapsed(c, tick);
	uint32_t n = c->count;
	switch (c->mode) {
	case 2:
		return (uint16_t)(n - d % n);
	case 3: {
		/* Decrements by two through each half; an odd count spends one
		 * more tick high than low, as the datasheet describes. */
		uint32_t p = (uint32_t)(d % n), half = (n + 1) / 2;
		if (!(n & 1))
			return (uint16_t)(p < half ? n - 2 * p : n - 2 * (p - half));
		if (p < half)
			return (uint16_t)(p == 0 ? n : n + 1 - 2 * p);
		p -= half;
		return (uint16_t)(p == 0 ? n : n - 1 - 2 * p);
	}
	default:
		/* One-shot modes keep counting down through zero and wrap. */
		return (uint16_t)(n + 0x10000u - (uint32_t)(d & 0xffff));
	}
}

static uint8_t chan__status(const struct pit_channel *c, uint64_t tick)
{
	return (uint8_t)((chan__out(c, tick) ? 0x80 : 0) |
			 (c->null_count ? 0x40 : 0) |
			 (c->rw << 4) | (c->mode << 1) | (c->bcd ? 1 : 0));
}

static void chan__latch_count(struct pit_channel *c, uint64_t tick)
{
	/* Further latch commands are ignored until the latch is read. */
	if (c->count_latched)
		return;
	c->count_latched = true;
	c->latch = chan__value(c, tick);
	c->latch_left = c->rw == RW_WORD ? 2 : 1;
}

static void chan__latch_status(struct pit_channel *c, uint64_t tick)
{
	if (c->status_latched)
		return;
	c->status_latched = true;
	c->status = chan__status(c, tick);
}

static void chan__control(struct pit_channel *c, uint8_t val, uint64_t tick)
{
	/* Keeps reads sane between the control word and the first count. */
	c->frozen = chan__value(c, tick);

	unsigned mode = CW_MODE(val);
	c->mode = (uint8_t)(mode >= 6 ? mode - 4 : mode);
	c->rw = (uint8_t)CW_RW(val);
	c->bcd = val & CW_BCD;
	c->loaded = false;
	c->null_count = true;
	c->running = false;
	c->paused_ticks = 0;
	c->reload_pending = false;
	c->write_msb_next = false;
	c->read_msb_next = false;
	c->count_latched = false;
	c->status_latched = false;
	c->edge_next = PIT_NO_TICK;
}

/* Starts counting `count` from `tick` (mode 0/4 load, 2/3 first load or gate
 * restart, 1/5 trigger). */
static void chan__start(struct pit_channel *c, uint64_t tick)
{
	c->count = chan__count_of(c->cr);
	c->null_count = false;
	c->reload_pending = false;
	c->start_tick = tick;
	c->paused_ticks = 0;
	c->running = true;
	chan__schedule(c, tick);
}

/* Takes the count register while the gate holds the counter stopped (mode
 * 0/4 load, mode 2/3 first load); counting starts at the gate's rising edge. */
static void chan__load_stopped(struct pit_channel *c)
{
	c->count = chan__count_of(c->cr);
	c->null_count = false;
	c->reload_pending = false;
	c->running = false;
	c->paused_ticks = 0;
	c->edge_next = PIT_NO_TICK;
}

static void chan__write_count(struct pit_channel *c, uint16_t cr, uint64_t tick)
{
	c->cr = cr;
	c->null_count = true;

	switch (c->mode) {
	case 0:
	case 4:
		/* Restarts at once; counting waits for the gate. */
		c->loaded = true;
		if (c->gate)
			chan__start(c, tick);
		else
			chan__load_stopped(c);
		break;
	case 2:
	case 3:
		if (!c->loaded) {
			c->loaded = true;
			if (c->gate)
				chan__start(c, tick);
			else
				chan__load_stopped(c);
		} else if (c->running) {
			/* The current period finishes with the old count. */
			uint64_t d = chan__elapsed(c, tick);
			c->reload_pending = true;
			c->reload_tick = c->start_tick + (d / c->count + 1) * c->count;
		}
		/* Gate low: the rising edge will load the new count. */
		break;
	default:
		/* Modes 1 and 5 take the count at the next gate trigger. */
		c->loaded = true;
		if (!c->running)
			c->count = chan__count_of(cr);
		break;
	}
}

static void chan__write(struct pit_channel *c, uint8_t val, uint64_t tick)
{
	switch (c->rw) {
	case RW_LSB:
		chan__write_count(c, val, tick);
		break;
	case RW_MSB:
		chan__write_count(c, (uint16_t)(val << 8), tick);
		break;
	default:
		if (!c->write_msb_next) {
			c->write_lsb = val;
			c->write_msb_next = true;
			/* Mode 0: writing the first byte stops the count, OUT low. */
			if (c->mode == 0 && c->loaded) {
				c->frozen = chan__value(c, tick);
				c->loaded = false;
				c->running = false;
				c->edge_next = PIT_NO_TICK;
			}
		} else {
			c->write_msb_next = false;
			chan__write_count(c, (uint16_t)(c->write_lsb | (val << 8)), tick);
		}
		break;
	}
}

static uint8_t chan__read(struct pit_channel *c, uint64_t tick)
{
	if (c->status_latched) {
		c->status_latched = false;
		return c->status;
	}

	if (c->count_latched) {
		uint8_t v;
		if (c->rw == RW_MSB || (c->rw == RW_WORD && c->latch_left == 1))
			v = (uint8_t)(c->latch >> 8);
		else
			v = (uint8_t)c->latch;
		if (--c->latch_left == 0)
			c->count_latched = false;
		return v;
	}

	uint16_t value = chan__value(c, tick);
	switch (c->rw) {
	case RW_LSB:
		return (uint8_t)value;
	case RW_MSB:
		return (uint8_t)(value >> 8);
	default:
		c->read_msb_next = !c->read_msb_next;
		return c->read_msb_next ? (uint8_t)value : (uint8_t)(value >> 8);
	}
}

static void chan__set_gate(struct pit_channel *c, bool gate, uint64_t tick)
{
	if (gate == c->gate)
		return;
	c->gate = gate;

	if (gate) {
		if (!c->loaded)
			return;
		switch (c->mode) {
		case 0:
		case 4:
			/* Resumes where it stopped. */
			if (!c->running) {
				c->start_tick = tick - (c->paused_ticks <= tick ? c->paused_ticks : tick);
				c->running = true;
				chan__schedule(c, tick);
			}
			break;
		default:
			/* Modes 1, 5 trigger and modes 2, 3 restart from the count
			 * register. */
			chan__start(c, tick);
			break;
		}
		return;
	}

	switch (c->mode) {
	case 0:
	case 2:
	case 3:
	case 4:
		if (c->running) {
			c->paused_ticks = chan__elapsed(c, tick);
			c->running = false;
			c->reload_pending = false;
			c->edge_next = PIT_NO_TICK;
		}
		break;
	default:
		/* Modes 1 and 5 ignore a falling gate. */
		break;
	}
}

static void pit__control(struct pit *pit, uint8_t val, uint64_t tick)
{
	if (CW_SC(val) == 3) {
		for (unsigned i = 0; i < 3; i++) {
			if (!(val & (2u << i)))
				continue;
			/* Status first, so that it reflects the state the count
			 * latch also sees. */
			if (!(val & RB_NO_STATUS))
				chan__latch_status(&pit->ch[i], tick);
			if (!(val & RB_NO_COUNT))
				chan__latch_count(&pit->ch[i], tick);
		}
		return;
	}

	struct pit_channel *c = &pit->ch[CW_SC(val)];
	if (CW_RW(val) == RW_LATCH)
		chan__latch_count(c, tick);
	else
		chan__control(c, val, tick);
}

static void pit__sync(struct pit *pit, uint64_t tick)
{
	for (unsigned i = 0; i < 3; i++)
		chan__sync(&pit->ch[i], tick);
	/* Only channel 0 drives an interrupt (IRQ0). */
	pit->ch[1].edges_due = pit->ch[2].edges_due = 0;
}

struct pit *pit__new(void (*irq0)(void *opaque, bool level), void *opaque)
{
	struct pit *pit = calloc(1, sizeof(*pit));
	if (!pit)
		return NULL;
	pit->irq0 = irq0;
	pit->opaque = opaque;
	for (unsigned i = 0; i < 3; i++) {
		struct pit_channel *c = &pit->ch[i];
		c->mode = 0;
		c->rw = RW_WORD;
		/* No count waits to be loaded: a counter nobody programmed reads
		 * back a clear null count, as QEMU's and KVM's do. Linux's early
		 * KASLR entropy (i8254()) spins until it is clear; on a PC the
		 * BIOS has programmed channel 0 by then. */
		c->null_count = false;
		c->edge_next = PIT_NO_TICK;
		/* Channels 0 and 1 have their gates tied high on the PC; channel
		 * 2's comes from port 0x61 and starts low. */
		c->gate = i != 2;
	}
	return pit;
}

void pit__free(struct pit *pit)
{
	free(pit);
}

bool pit__io(struct pit *pit, uint16_t port, bool is_write, uint8_t *data, uint64_t now)
{
	uint64_t tick = pit__ns_to_tick(now);

	if (port != PORT_61 && (port < PIT_PORT_CH0 || port > PIT_PORT_CTRL))
		return false;

	pit__sync(pit, tick);

	if (port == PORT_61) {
		struct pit_channel *c2 = &pit->ch[2];
		if (is_write) {
			chan__set_gate(c2, *data & 0x01, tick);
			pit->speaker = *data & 0x02;
			pit->port61_nmi = *data & 0x0c;
		} else {
			/* The DRAM refresh bit toggles per read, so that delay loops
			 * waiting for it make progress without depending on host time. */
			pit->refresh = !pit->refresh;
			*data = (uint8_t)((c2->gate ? 0x01 : 0) | (pit->speaker ? 0x02 : 0) |
					  pit->port61_nmi | (pit->refresh ? 0x10 : 0) |
					  (chan__out(c2, tick) ? 0x20 : 0));
		}
		return true;
	}

	if (port == PIT_PORT_CTRL) {
		if (is_write)
			pit__control(pit, *data, tick);
		else
			*data = 0xff;   /* the control register cannot be read */
		return true;
	}

	struct pit_channel *c = &pit->ch[port - PIT_PORT_CH0];
	if (is_write)
		chan__write(c, *data, tick);
	else
		*data = chan__read(c, tick);
	return true;
}

uint64_t pit__advance(struct pit *pit, uint64_t now)
{
	struct pit_channel *c = &pit->ch[0];

	pit__sync(pit, pit__ns_to_tick(now));
	if (!c->edges_due)
		return 0;
	uint64_t missed = c->edges_due - 1;
	c->edges_due = 0;
	if (pit->irq0) {
		pit->irq0(pit->opaque, true);
		pit->irq0(pit->opaque, false);
	}
	return missed;
}

uint64_t pit__next_deadline(const struct pit *pit)
{
	const struct pit_channel *c = &pit->ch[0];

	if (c->edges_due)
		return pit__tick_to_ns(c->first_due);
	if (c->edge_next == PIT_NO_TICK)
		return UINT64_MAX;
	return pit__tick_to_ns(c->edge_next);
}

/* ---- saved state
 *
 * Version 1: tag "PIT ", u16 version, then per channel 0..2:
 *   mode u8, rw u8, bcd, gate, cr u16, count u32, loaded, null_count,
 *   running, start_tick u64, paused_ticks u64, frozen u16, reload_pending,
 *   reload_tick u64, write_msb_next, write_lsb u8, read_msb_next,
 *   count_latched, latch_left u8, latch u16, status_latched, status u8,
 *   edge_next u64 (UINT64_MAX: none), edges_due u64, first_due u64
 * then speaker, port61_nmi u8, refresh (booleans are one byte).
 *
 * Ticks are absolute on the global grid: the restored machine's `now`
 * continues from the saved one, so nothing is rebased. */
#define PIT_STATE_VERSION 1

static const char *const pit_chan_names[3] = { "ch0", "ch1", "ch2" };

static void chan__save(const struct pit_channel *c, struct dstate_writer *w)
{
	dstate__put_u8(w, c->mode);
	dstate__put_u8(w, c->rw);
	dstate__put_bool(w, c->bcd);
	dstate__put_bool(w, c->gate);
	dstate__put_u16(w, c->cr);
	dstate__put_u32(w, c->count);
	dstate__put_bool(w, c->loaded);
	dstate__put_bool(w, c->null_count);
	dstate__put_bool(w, c->running);
	dstate__put_u64(w, c->start_tick);
	dstate__put_u64(w, c->paused_ticks);
	dstate__put_u16(w, c->frozen);
	dstate__put_bool(w, c->reload_pending);
	dstate__put_u64(w, c->reload_tick);
	dstate__put_bool(w, c->write_msb_next);
	dstate__put_u8(w, c->write_lsb);
	dstate__put_bool(w, c->read_msb_next);
	dstate__put_bool(w, c->count_latched);
	dstate__put_u8(w, c->latch_left);
	dstate__put_u16(w, c->latch);
	dstate__put_bool(w, c->status_latched);
	dstate__put_u8(w, c->status);
	dstate__put_u64(w, c->edge_next);
	dstate__put_u64(w, c->edges_due);
	dstate__put_u64(w, c->first_due);
}

/* Later than any tick a legitimate state holds: the last tick of guest time
 * plus one period and a pulse. Bounding ticks keeps every sum in the
 * counting code far from wrapping. */
static uint64_t pit__tick_limit(void)
{
	return pit__ns_to_tick(UINT64_MAX) + 2 * 0x10000u + 2;
}

static void chan__check_tick(struct dstate_reader *r, const char *field, uint64_t tick)
{
	if (tick > pit__tick_limit())
		dstate__fail(r, field, "tick %llu is beyond the end of guest time (%llu)",
			     (unsigned long long)tick, (unsigned long long)pit__tick_limit());
}

/* Checks what the counting code relies on (no division by a zero count,
 * latches matching the access mode, edges on the channel's grid), so that a
 * hostile blob cannot produce a state no port sequence could reach. */
static void chan__check(struct dstate_reader *r, const struct pit_channel *c, unsigned idx)
{
	chan__check_tick(r, "start_tick", c->start_tick);
	chan__check_tick(r, "paused_ticks", c->paused_ticks);
	chan__check_tick(r, "reload_tick", c->reload_tick);
	if (c->edge_next != PIT_NO_TICK)
		chan__check_tick(r, "edge_next", c->edge_next);
	chan__check_tick(r, "first_due", c->first_due);
	if (!r->failed && c->edges_due > pit__tick_limit())
		dstate__fail(r, "edges_due", "%llu is more edges than guest time has ticks",
			     (unsigned long long)c->edges_due);
	if (r->failed)
		return;

	if (c->count > 0x10000u || (c->loaded && c->count == 0)) {
		dstate__fail(r, "count", "%u is out of range (%u..65536)", c->count, c->loaded ? 1 : 0);
		return;
	}
	if (idx != 2 && !c->gate) {
		dstate__fail(r, "gate", "is low, but channel %u's gate is tied high", idx);
		return;
	}
	if (idx != 0 && c->edges_due) {
		dstate__fail(r, "edges_due", "%llu, but only channel 0 reports edges",
			     (unsigned long long)c->edges_due);
		return;
	}
	if (c->running && !c->loaded) {
		dstate__fail(r, "running", "is set without a count loaded");
		return;
	}
	if (c->write_msb_next && c->rw != RW_WORD) {
		dstate__fail(r, "write_msb_next", "is set but rw is %u, not lo/hi", c->rw);
		return;
	}
	if (c->read_msb_next && c->rw != RW_WORD) {
		dstate__fail(r, "read_msb_next", "is set but rw is %u, not lo/hi", c->rw);
		return;
	}
	/* A control word drops the latch but leaves latch_left behind; it only
	 * matters while a count is latched. */
	unsigned latch_min = c->count_latched ? 1 : 0;
	unsigned latch_max = !c->count_latched || c->rw == RW_WORD ? 2 : 1;
	if (c->latch_left < latch_min || c->latch_left > latch_max) {
		dstate__fail(r, "latch_left", "%u with a count %slatched and rw %u",
			     c->latch_left, c->count_latched ? "" : "not ", c->rw);
		return;
	}
	uint8_t cw_bits = (uint8_t)(c->rw << 4 | c->mode << 1 | (c->bcd ? 1 : 0));
	if (c->status_latched && (c->status & 0x3f) != cw_bits) {
		dstate__fail(r, "status", "0x%02x does not match the control word (0x%02x)",
			     c->status, cw_bits);
		return;
	}

	if (c->reload_pending) {
		if (!chan__periodic(c) || !c->running) {
			dstate__fail(r, "reload_pending", "is set in mode %u %s", c->mode,
				     c->running ? "(only modes 2 and 3 reload)" : "while stopped");
			return;
		}
		if (c->reload_tick <= c->start_tick || (c->reload_tick - c->start_tick) % c->count) {
			dstate__fail(r, "reload_tick", "%llu is not a period end after start_tick %llu (count %u)",
				     (unsigned long long)c->reload_tick,
				     (unsigned long long)c->start_tick, c->count);
			return;
		}
	}

	/* The next OUT edge follows from mode, start and count; only whether it
	 * already happened (one-shots) or how many periods passed is free. */
	if (!c->running) {
		if (c->edge_next != PIT_NO_TICK)
			dstate__fail(r, "edge_next", "is scheduled on a stopped channel");
		return;
	}
	uint64_t first = c->start_tick + c->count;
	switch (c->mode) {
	case 0:
	case 1:
	case 4:
	case 5: {
		uint64_t edge = c->mode >= 4 ? first + 1 : first;
		if (c->edge_next != PIT_NO_TICK && c->edge_next != edge)
			dstate__fail(r, "edge_next", "%llu, but a one-shot from %llu with count %u ends at %llu",
				     (unsigned long long)c->edge_next,
				     (unsigned long long)c->start_tick, c->count,
				     (unsigned long long)edge);
		break;
	}
	default:
		if (c->edge_next == PIT_NO_TICK || c->edge_next < first ||
		    (c->edge_next - c->start_tick) % c->count ||
		    (c->reload_pending && c->edge_next > c->reload_tick))
			dstate__fail(r, "edge_next", "%llu is not a period end after start_tick %llu (count %u)%s",
				     (unsigned long long)c->edge_next,
				     (unsigned long long)c->start_tick, c->count,
				     c->reload_pending ? " up to the pending reload" : "");
		break;
	}
}

static void chan__load(struct pit_channel *c, unsigned idx, struct dstate_reader *r)
{
	c->mode = dstate__get_u8_max(r, "mode", 5);
	c->rw = dstate__get_u8(r, "rw");
	if (!r->failed && (c->rw < RW_LSB || c->rw > RW_WORD))
		dstate__fail(r, "rw", "%u is not an access mode (1 lsb, 2 msb, 3 lsb/msb)", c->rw);
	c->bcd = dstate__get_bool(r, "bcd");
	c->gate = dstate__get_bool(r, "gate");
	c->cr = dstate__get_u16(r, "cr");
	c->count = dstate__get_u32(r, "count");
	c->loaded = dstate__get_bool(r, "loaded");
	c->null_count = dstate__get_bool(r, "null_count");
	c->running = dstate__get_bool(r, "running");
	c->start_tick = dstate__get_u64(r, "start_tick");
	c->paused_ticks = dstate__get_u64(r, "paused_ticks");
	c->frozen = dstate__get_u16(r, "frozen");
	c->reload_pending = dstate__get_bool(r, "reload_pending");
	c->reload_tick = dstate__get_u64(r, "reload_tick");
	c->write_msb_next = dstate__get_bool(r, "write_msb_next");
	c->write_lsb = dstate__get_u8(r, "write_lsb");
	c->read_msb_next = dstate__get_bool(r, "read_msb_next");
	c->count_latched = dstate__get_bool(r, "count_latched");
	c->latch_left = dstate__get_u8(r, "latch_left");
	c->latch = dstate__get_u16(r, "latch");
	c->status_latched = dstate__get_bool(r, "status_latched");
	c->status = dstate__get_u8(r, "status");
	c->edge_next = dstate__get_u64(r, "edge_next");
	c->edges_due = dstate__get_u64(r, "edges_due");
	c->first_due = dstate__get_u64(r, "first_due");
	if (!r->failed)
		chan__check(r, c, idx);
}

static size_t pit__encode(const struct pit *pit, uint8_t *buf)
{
	struct dstate_writer w = { .buf = buf };

	dstate__put_header(&w, DSTATE_TAG_PIT, PIT_STATE_VERSION);
	for (unsigned i = 0; i < 3; i++)
		chan__save(&pit->ch[i], &w);
	dstate__put_bool(&w, pit->speaker);
	dstate__put_u8(&w, pit->port61_nmi);
	dstate__put_bool(&w, pit->refresh);
	return w.len;
}

size_t pit__save(const struct pit *pit, uint8_t *buf, size_t cap)
{
	size_t need = pit__encode(pit, NULL);

	if (buf && need <= cap)
		pit__encode(pit, buf);
	return need;
}

int pit__restore(struct pit *pit, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	struct dstate_reader r;
	struct pit tmp = { 0 };

	dstate__reader_init(&r, "pit", buf, len, err, errlen);
	dstate__get_header(&r, DSTATE_TAG_PIT, PIT_STATE_VERSION);
	for (unsigned i = 0; i < 3; i++) {
		r.scope = pit_chan_names[i];
		chan__load(&tmp.ch[i], i, &r);
	}
	r.scope = "port61";
	tmp.speaker = dstate__get_bool(&r, "speaker");
	tmp.port61_nmi = dstate__get_u8(&r, "nmi_bits");
	if (!r.failed && (tmp.port61_nmi & ~0x0c))
		dstate__fail(&r, "nmi_bits", "0x%02x has bits outside 0x0c", tmp.port61_nmi);
	tmp.refresh = dstate__get_bool(&r, "refresh");
	r.scope = NULL;
	if (dstate__finish(&r) < 0)
		return -1;

	/* OUT itself is not stored: it is a function of the channel state, and
	 * edges already passed but not yet reported travel in edges_due. */
	for (unsigned i = 0; i < 3; i++)
		pit->ch[i] = tmp.ch[i];
	pit->speaker = tmp.speaker;
	pit->port61_nmi = tmp.port61_nmi;
	pit->refresh = tmp.refresh;
	return 0;
}
