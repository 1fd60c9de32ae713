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
		c->null_count = true;
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
