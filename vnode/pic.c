/* 8259A programmable interrupt controller pair, as cascaded in the PC:
 * master at 0x20/0x21, slave at 0xa0/0xa1 on the master's IR2, plus the
 * PIIX edge/level control registers (ELCR) at 0x4d0/0x4d1.
 *
 * Every interrupt the guest sees passes through pic__ack(), which the vCPU
 * loop calls (and logs) right before KVM_INTERRUPT; nothing here injects on
 * its own, so the replay side only ever needs the logged vectors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device-state.h"
#include "devices.h"

#define PIC_MASTER_CMD   0x20
#define PIC_MASTER_DATA  0x21
#define PIC_SLAVE_CMD    0xa0
#define PIC_SLAVE_DATA   0xa1
#define PIC_ELCR_MASTER  0x4d0
#define PIC_ELCR_SLAVE   0x4d1

#define PIC_CASCADE_IR   2

/* ICW1 */
#define ICW1_IC4   0x01
#define ICW1_SNGL  0x02
#define ICW1_LTIM  0x08
#define ICW1_INIT  0x10
/* ICW4 */
#define ICW4_AEOI  0x02
#define ICW4_SFNM  0x10
/* OCW3 */
#define OCW3_RIS   0x01
#define OCW3_RR    0x02
#define OCW3_POLL  0x04
#define OCW3_SMM   0x20
#define OCW3_ESMM  0x40

/* The PIIX hard-wires IRQ0, 1, 2, 8 and 13 to edge mode; a level-mode
 * timer would also break the PIT's pulse-per-tick delivery. */
#define ELCR_MASK_MASTER 0xf8
#define ELCR_MASK_SLAVE  0xde

enum icw_step {
	ICW_DONE = 0,
	ICW_EXPECT_2,
	ICW_EXPECT_3,
	ICW_EXPECT_4,
};

struct pic_chip {
	uint8_t irr;
	uint8_t isr;
	uint8_t imr;
	uint8_t line;          /* input levels, for edge detection */
	uint8_t elcr;
	uint8_t vector_base;
	uint8_t lowest_prio;   /* IR with the lowest priority (rotation) */
	enum icw_step icw_step;
	bool icw4_needed;
	bool single;
	bool ltim;
	bool auto_eoi;
	bool rotate_on_aeoi;
	bool sfnm;
	bool special_mask;
	bool read_isr;
	bool poll;
};

struct pic {
	struct pic_chip chip[2];  /* [0] master, [1] slave */
};

static bool chip__level_mode(const struct pic_chip *c, unsigned ir)
{
	return c->ltim || (c->elcr & (1u << ir));
}

/* Priority rank of the highest-priority bit set in mask: 0 is the
 * highest priority, 8 means "none". */
static unsigned chip__rank(const struct pic_chip *c, uint8_t mask)
{
	if (!mask)
		return 8;
	unsigned rank = 0;
	while (!(mask & (1u << ((rank + c->lowest_prio + 1) & 7))))
		rank++;
	return rank;
}

static unsigned chip__rank_to_ir(const struct pic_chip *c, unsigned rank)
{
	return (rank + c->lowest_prio + 1) & 7;
}

static bool pic__cascaded(const struct pic *pic)
{
	return !pic->chip[0].single;
}

/* Which IR the chip would present at INTA, or -1. */
static int pic__pending(const struct pic *pic, unsigned idx)
{
	const struct pic_chip *c = &pic->chip[idx];

	if (c->icw_step != ICW_DONE)
		return -1;

	uint8_t req = c->irr & ~c->imr;
	unsigned req_rank = chip__rank(c, req);
	if (req_rank == 8)
		return -1;

	uint8_t in_service = c->isr;
	if (c->special_mask)
		in_service &= ~c->imr;
	unsigned isr_rank = chip__rank(c, in_service);

	unsigned ir = chip__rank_to_ir(c, req_rank);
	if (req_rank < isr_rank)
		return (int)ir;
	/* Special fully nested mode: a higher-priority slave request must get
	 * through although the cascade IR is already in service. The slave's own
	 * ISR already decided that it is higher priority. */
	if (idx == 0 && pic__cascaded(pic) && c->sfnm && ir == PIC_CASCADE_IR &&
	    req_rank == isr_rank)
		return (int)ir;
	return -1;
}

static void chip__set_line(struct pic_chip *c, unsigned ir, bool level)
{
	uint8_t bit = (uint8_t)(1u << ir);
	bool was_high = c->line & bit;

	if (level)
		c->line |= bit;
	else
		c->line &= ~bit;

	if (chip__level_mode(c, ir)) {
		if (level)
			c->irr |= bit;
		else
			c->irr &= ~bit;
	} else if (level && !was_high) {
		/* The edge is latched: a request survives the line dropping again,
		 * which is how the PIT's one-pulse-per-tick reaches the CPU. */
		c->irr |= bit;
	}
}

/* Drives the master's IR2 from the slave's INT output. Called after anything
 * that can change the slave's output. The master latches the rising edge, so
 * a slave request that vanishes before INTA gives a spurious IRQ15. */
static void pic__update_cascade(struct pic *pic)
{
	if (pic__cascaded(pic))
		chip__set_line(&pic->chip[0], PIC_CASCADE_IR, pic__pending(pic, 1) >= 0);
}

static void chip__intack(struct pic_chip *c, unsigned ir)
{
	uint8_t bit = (uint8_t)(1u << ir);

	if (c->auto_eoi) {
		if (c->rotate_on_aeoi)
			c->lowest_prio = (uint8_t)ir;
	} else {
		c->isr |= bit;
	}
	/* A level-triggered request stays in IRR while the line is high and
	 * comes back after the EOI. */
	if (!chip__level_mode(c, ir))
		c->irr &= ~bit;
}

static void chip__eoi_ir(struct pic_chip *c, unsigned ir, bool rotate)
{
	c->isr &= (uint8_t)~(1u << ir);
	if (rotate)
		c->lowest_prio = (uint8_t)ir;
}

static void chip__write_ocw2(struct pic_chip *c, uint8_t val)
{
	unsigned level = val & 7;

	switch (val >> 5) {
	case 0: /* rotate in auto-EOI mode: clear */
		c->rotate_on_aeoi = false;
		break;
	case 4: /* rotate in auto-EOI mode: set */
		c->rotate_on_aeoi = true;
		break;
	case 1:   /* non-specific EOI */
	case 5: { /* rotate on non-specific EOI */
		uint8_t in_service = c->isr;
		if (c->special_mask)
			in_service &= ~c->imr;
		unsigned rank = chip__rank(c, in_service);
		if (rank < 8)
			chip__eoi_ir(c, chip__rank_to_ir(c, rank), (val >> 5) == 5);
		break;
	}
	case 3: /* specific EOI */
		chip__eoi_ir(c, level, false);
		break;
	case 7: /* rotate on specific EOI */
		chip__eoi_ir(c, level, true);
		break;
	case 6: /* set priority */
		c->lowest_prio = (uint8_t)level;
		break;
	default: /* 2: no operation */
		break;
	}
}

static void chip__write_ocw3(struct pic_chip *c, uint8_t val)
{
	if (val & OCW3_POLL)
		c->poll = true;
	if (val & OCW3_RR)
		c->read_isr = val & OCW3_RIS;
	if (val & OCW3_ESMM)
		c->special_mask = val & OCW3_SMM;
}

static void chip__write_icw1(struct pic_chip *c, uint8_t val)
{
	c->icw_step = ICW_EXPECT_2;
	c->icw4_needed = val & ICW1_IC4;
	c->single = val & ICW1_SNGL;
	c->ltim = val & ICW1_LTIM;
	/* ICW1 clears the mask, ISR, rotation, special mask and the status read
	 * select, and resets the edge sense latches: a line already high must
	 * drop and rise again to be seen, unless it is level-triggered. */
	c->imr = 0;
	c->isr = 0;
	c->lowest_prio = 7;
	c->special_mask = false;
	c->read_isr = false;
	c->poll = false;
	c->irr = 0;
	for (unsigned ir = 0; ir < 8; ir++)
		if (chip__level_mode(c, ir))
			c->irr |= c->line & (1u << ir);
	/* Without ICW4 all its functions are zero. */
	c->auto_eoi = false;
	c->sfnm = false;
	c->rotate_on_aeoi = false;
}

static void chip__write_data(struct pic_chip *c, uint8_t val)
{
	switch (c->icw_step) {
	case ICW_EXPECT_2:
		/* x86 mode: the low three bits come from the IR number. */
		c->vector_base = val & 0xf8;
		if (!c->single)
			c->icw_step = ICW_EXPECT_3;
		else
			c->icw_step = c->icw4_needed ? ICW_EXPECT_4 : ICW_DONE;
		break;
	case ICW_EXPECT_3:
		/* The PC wiring is fixed (slave on IR2, ID 2); the value itself
		 * changes nothing here. */
		c->icw_step = c->icw4_needed ? ICW_EXPECT_4 : ICW_DONE;
		break;
	case ICW_EXPECT_4:
		/* uPM=0 (8080 mode) is not emulated; vectors are always x86. */
		c->auto_eoi = val & ICW4_AEOI;
		c->sfnm = val & ICW4_SFNM;
		c->icw_step = ICW_DONE;
		break;
	case ICW_DONE:
		c->imr = val;
		break;
	}
}

static uint8_t pic__poll_read(struct pic *pic, unsigned idx)
{
	int ir = pic__pending(pic, idx);
	if (ir < 0)
		return 0;
	/* A master poll that finds the cascade leaves the slave alone; software
	 * polls the slave next, as on real hardware. */
	chip__intack(&pic->chip[idx], (unsigned)ir);
	return (uint8_t)(0x80 | ir);
}

struct pic *pic__new(void)
{
	struct pic *pic = calloc(1, sizeof(*pic));
	if (!pic)
		return NULL;
	/* Where a BIOS leaves the pair; IMR is undefined after a real reset,
	 * so start masked and let the guest unmask what it handles. */
	for (unsigned i = 0; i < 2; i++) {
		pic->chip[i].imr = 0xff;
		pic->chip[i].lowest_prio = 7;
	}
	pic->chip[0].vector_base = 0x08;
	pic->chip[1].vector_base = 0x70;
	return pic;
}

void pic__free(struct pic *pic)
{
	free(pic);
}

bool pic__io(struct pic *pic, uint16_t port, bool is_write, uint8_t *data)
{
	unsigned idx;

	switch (port) {
	case PIC_MASTER_CMD:
	case PIC_MASTER_DATA:
		idx = 0;
		break;
	case PIC_SLAVE_CMD:
	case PIC_SLAVE_DATA:
		idx = 1;
		break;
	case PIC_ELCR_MASTER:
	case PIC_ELCR_SLAVE: {
		idx = port - PIC_ELCR_MASTER;
		struct pic_chip *c = &pic->chip[idx];
		if (is_write) {
			c->elcr = *data & (idx ? ELCR_MASK_SLAVE : ELCR_MASK_MASTER);
			/* A line switched to level mode requests while it is high. */
			for (unsigned ir = 0; ir < 8; ir++)
				if (chip__level_mode(c, ir))
					c->irr = (uint8_t)((c->irr & ~(1u << ir)) | (c->line & (1u << ir)));
			pic__update_cascade(pic);
		} else {
			*data = c->elcr;
		}
		return true;
	}
	default:
		return false;
	}

	struct pic_chip *c = &pic->chip[idx];
	bool is_cmd = !(port & 1);

	if (!is_write) {
		if (c->poll) {
			/* Poll mode claims the next read of either port. */
			c->poll = false;
			*data = pic__poll_read(pic, idx);
			pic__update_cascade(pic);
		} else if (is_cmd) {
			*data = c->read_isr ? c->isr : c->irr;
		} else {
			*data = c->imr;
		}
		return true;
	}

	uint8_t val = *data;
	if (!is_cmd)
		chip__write_data(c, val);
	else if (val & ICW1_INIT)
		chip__write_icw1(c, val);
	else if (val & 0x08)
		chip__write_ocw3(c, val);
	else
		chip__write_ocw2(c, val);
	pic__update_cascade(pic);
	return true;
}

void pic__set_irq(struct pic *pic, unsigned irq, bool level)
{
	if (irq >= 16)
		return;
	/* The master's IR2 carries the slave; the ISA IRQ2 pin goes to IRQ9. */
	if (irq == PIC_CASCADE_IR && pic__cascaded(pic))
		return;
	chip__set_line(&pic->chip[irq >> 3], irq & 7, level);
	pic__update_cascade(pic);
}

bool pic__has_interrupt(const struct pic *pic)
{
	return pic__pending(pic, 0) >= 0;
}

uint8_t pic__ack(struct pic *pic)
{
	struct pic_chip *master = &pic->chip[0];
	struct pic_chip *slave = &pic->chip[1];
	int ir = pic__pending(pic, 0);

	/* The request went away between INT and INTA (masked, or a level line
	 * dropped): the 8259A answers with IR7 and sets no ISR bit. */
	if (ir < 0)
		return (uint8_t)(master->vector_base + 7);

	if (ir != PIC_CASCADE_IR || !pic__cascaded(pic)) {
		chip__intack(master, (unsigned)ir);
		return (uint8_t)(master->vector_base + (unsigned)ir);
	}

	int sir = pic__pending(pic, 1);
	uint8_t vector;
	if (sir < 0) {
		/* The master latched the cascade but the slave's request is gone:
		 * the slave answers IR7, and the master still marks IR2 in service
		 * (Linux EOIs the cascade for a spurious IRQ15). */
		vector = (uint8_t)(slave->vector_base + 7);
	} else {
		chip__intack(slave, (unsigned)sir);
		vector = (uint8_t)(slave->vector_base + (unsigned)sir);
	}
	chip__intack(master, PIC_CASCADE_IR);
	/* INTA drops the slave's INT; if the slave still requests (auto-EOI, or
	 * special fully nested mode) the master must see a fresh edge. */
	chip__set_line(master, PIC_CASCADE_IR, false);
	pic__update_cascade(pic);
	return vector;
}

/* ---- saved state
 *
 * Version 1: tag "PIC ", u16 version, then per chip (master, slave):
 * irr, isr, imr, line, elcr, vector_base, lowest_prio, icw_step (u8 each),
 * then icw4_needed, single, ltim, auto_eoi, rotate_on_aeoi, sfnm,
 * special_mask, read_isr, poll (bool bytes). */
#define PIC_STATE_VERSION 1

static const char *const pic_chip_names[2] = { "master", "slave" };

static void chip__save(const struct pic_chip *c, struct dstate_writer *w)
{
	dstate__put_u8(w, c->irr);
	dstate__put_u8(w, c->isr);
	dstate__put_u8(w, c->imr);
	dstate__put_u8(w, c->line);
	dstate__put_u8(w, c->elcr);
	dstate__put_u8(w, c->vector_base);
	dstate__put_u8(w, c->lowest_prio);
	dstate__put_u8(w, (uint8_t)c->icw_step);
	dstate__put_bool(w, c->icw4_needed);
	dstate__put_bool(w, c->single);
	dstate__put_bool(w, c->ltim);
	dstate__put_bool(w, c->auto_eoi);
	dstate__put_bool(w, c->rotate_on_aeoi);
	dstate__put_bool(w, c->sfnm);
	dstate__put_bool(w, c->special_mask);
	dstate__put_bool(w, c->read_isr);
	dstate__put_bool(w, c->poll);
}

static void chip__load(struct pic_chip *c, unsigned idx, struct dstate_reader *r)
{
	c->irr = dstate__get_u8(r, "irr");
	c->isr = dstate__get_u8(r, "isr");
	c->imr = dstate__get_u8(r, "imr");
	c->line = dstate__get_u8(r, "line");
	c->elcr = dstate__get_u8(r, "elcr");
	c->vector_base = dstate__get_u8(r, "vector_base");
	c->lowest_prio = dstate__get_u8_max(r, "lowest_prio", 7);
	c->icw_step = dstate__get_u8_max(r, "icw_step", ICW_EXPECT_4);
	c->icw4_needed = dstate__get_bool(r, "icw4_needed");
	c->single = dstate__get_bool(r, "single");
	c->ltim = dstate__get_bool(r, "ltim");
	c->auto_eoi = dstate__get_bool(r, "auto_eoi");
	c->rotate_on_aeoi = dstate__get_bool(r, "rotate_on_aeoi");
	c->sfnm = dstate__get_bool(r, "sfnm");
	c->special_mask = dstate__get_bool(r, "special_mask");
	c->read_isr = dstate__get_bool(r, "read_isr");
	c->poll = dstate__get_bool(r, "poll");
	if (r->failed)
		return;

	/* What no sequence of port writes and line changes can produce. */
	uint8_t elcr_mask = idx ? ELCR_MASK_SLAVE : ELCR_MASK_MASTER;
	if (c->elcr & ~elcr_mask)
		dstate__fail(r, "elcr", "0x%02x sets hard-wired edge bits (writable: 0x%02x)",
			     c->elcr, elcr_mask);
	else if (c->vector_base & 7)
		dstate__fail(r, "vector_base", "0x%02x is not a multiple of 8", c->vector_base);
	else if (c->icw_step == ICW_EXPECT_3 && c->single)
		dstate__fail(r, "icw_step", "expects ICW3 but ICW1 said single");
	else if (c->icw_step == ICW_EXPECT_4 && !c->icw4_needed)
		dstate__fail(r, "icw_step", "expects ICW4 but ICW1 said none");
	else if (c->isr && (c->icw_step != ICW_DONE || c->auto_eoi))
		dstate__fail(r, "isr", "0x%02x in service %s", c->isr,
			     c->auto_eoi ? "in auto-EOI mode" : "during initialization");
	else
		for (unsigned ir = 0; ir < 8; ir++) {
			uint8_t bit = (uint8_t)(1u << ir);
			/* A level-triggered request is the line itself. */
			if (chip__level_mode(c, ir) && (c->irr & bit) != (c->line & bit)) {
				dstate__fail(r, "irr", "0x%02x disagrees with level-triggered line %u (line 0x%02x)",
					     c->irr, ir, c->line);
				break;
			}
		}
}

static size_t pic__encode(const struct pic *pic, uint8_t *buf)
{
	struct dstate_writer w = { .buf = buf };

	dstate__put_header(&w, DSTATE_TAG_PIC, PIC_STATE_VERSION);
	for (unsigned i = 0; i < 2; i++)
		chip__save(&pic->chip[i], &w);
	return w.len;
}

size_t pic__save(const struct pic *pic, uint8_t *buf, size_t cap)
{
	size_t need = pic__encode(pic, NULL);

	if (buf && need <= cap)
		pic__encode(pic, buf);
	return need;
}

int pic__restore(struct pic *pic, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	struct dstate_reader r;
	struct pic tmp = { 0 };

	dstate__reader_init(&r, "pic", buf, len, err, errlen);
	dstate__get_header(&r, DSTATE_TAG_PIC, PIC_STATE_VERSION);
	for (unsigned i = 0; i < 2; i++) {
		r.scope = pic_chip_names[i];
		chip__load(&tmp.chip[i], i, &r);
	}
	r.scope = NULL;
	if (dstate__finish(&r) < 0)
		return -1;

	/* The master latches the slave's INT on IR2; a blob where the two
	 * disagree would deliver (or lose) an interrupt nobody raised. */
	if (pic__cascaded(&tmp)) {
		bool slave_int = pic__pending(&tmp, 1) >= 0;
		bool ir2 = tmp.chip[0].line & (1u << PIC_CASCADE_IR);
		if (slave_int != ir2) {
			snprintf(err, errlen, "pic: master.line: cascade input IR2 is %s but the slave's INT is %s",
				 ir2 ? "high" : "low", slave_int ? "high" : "low");
			return -1;
		}
	}
	*pic = tmp;
	return 0;
}
