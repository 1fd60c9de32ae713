/* The nondeterminism log of one interval: every input the guest saw that a
 * replay cannot compute (port and MMIO reads, interrupts, console bytes,
 * DMA), in order.
 *
 * File layout, little-endian:
 *
 *   0  magic "SBLOG\0\0\0"
 *   8  u32 format version (CKPT_FORMAT_VERSION)
 *  12  u32 interval
 *  16  u64 event count
 *  24  u64 payload length L
 *  32  payload: the events, back to back
 *  32+L u64 XXH3-64 of bytes 0 .. 32+L (header and payload)
 *
 * An event is its kind byte, then varints (LEB128; signed deltas zigzag
 * coded) because most fields are small or close to the previous event's:
 *
 *   u8 kind
 *   varint zigzag(guest_time_ns - previous event's)
 *   varint zigzag(at.sync_count - previous event's)
 *   varint zigzag(at.rip - previous event's)
 *   u8 at.flags
 *   IRQ, DMA, STOP (landmark events): u64 reg_hash (a hash: varint would
 *             only grow it), the 16 GPRs as u64 in ckpt_gpr order, u64 CR3
 *   others:   varint reg_hash (accesses carry none, so it is one 0 byte)
 *   accesses:        varint addr, u8 size, varint value
 *   IRQ:             u8 vector
 *   CONSOLE_IN, DMA: varint addr, varint length, the bytes
 *   STOP:            nothing more
 *
 * Fields a kind does not use (value of a STOP, addr of an IRQ, ...) are not
 * stored and read back as zero. The reader checks every field against what
 * the vnode can produce, so a replay never sees an event it cannot apply. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "store-priv.h"

#define LOG_MAGIC "SBLOG\0\0\0"
#define LOG_MAGIC_LEN 8u
#define LOG_HDR_SIZE 32u
#define LOG_SUM_SIZE 8u
/* Guest-physical addresses have at most 52 bits (MAXPHYADDR). */
#define LOG_PHYS_LIMIT (1ull << 52)
/* The smallest event: an empty console-in (kind, three one-byte deltas,
 * flags, one-byte hash, address, length). */
#define LOG_MIN_EVENT 8u

/* TF (bit 8): single-stepping sets it on one side only. */
#define RFLAGS_IGNORED ((1ull << 8) | CKPT_RFLAGS_CARRIED)

/* CF PF AF ZF SF OF RF, in landmark flag bits 1..7 */
static const uint8_t carried_bit[7] = { 0, 2, 4, 6, 7, 11, 16 };

uint32_t ckpt_landmark__pack_rflags(uint64_t rflags)
{
	uint32_t f = 0;
	for (int i = 0; i < 7; i++)
		if (rflags & (1ull << carried_bit[i]))
			f |= 2u << i;
	return f;
}

uint64_t ckpt_landmark__unpack_rflags(uint32_t lm_flags)
{
	uint64_t r = 0;
	for (int i = 0; i < 7; i++)
		if (lm_flags & (2u << i))
			r |= 1ull << carried_bit[i];
	return r;
}

uint64_t ckpt_landmark__reg_hash(const uint64_t gpr[CKPT_GPR__COUNT], uint64_t rflags)
{
	uint8_t buf[(CKPT_GPR__COUNT + 1) * 8];

	for (int i = 0; i < CKPT_GPR__COUNT; i++)
		ckpt__put_le64(buf + 8 * i, gpr[i]);
	ckpt__put_le64(buf + 8 * CKPT_GPR__COUNT, rflags & ~RFLAGS_IGNORED);
	return XXH3_64bits(buf, sizeof(buf));
}

const char *ckpt_event_kind__name(enum ckpt_event_kind kind)
{
	switch (kind) {
	case CKPT_EV_PIO_READ: return "pio-read";
	case CKPT_EV_PIO_WRITE: return "pio-write";
	case CKPT_EV_MMIO_READ: return "mmio-read";
	case CKPT_EV_MMIO_WRITE: return "mmio-write";
	case CKPT_EV_IRQ: return "irq";
	case CKPT_EV_CONSOLE_IN: return "console-in";
	case CKPT_EV_DMA: return "dma";
	case CKPT_EV_STOP: return "stop";
	case CKPT_EV__COUNT: break;
	}
	return "unknown";
}

static bool is_pio(enum ckpt_event_kind kind)
{
	return kind == CKPT_EV_PIO_READ || kind == CKPT_EV_PIO_WRITE;
}

static bool has_data(enum ckpt_event_kind kind)
{
	return kind == CKPT_EV_CONSOLE_IN || kind == CKPT_EV_DMA;
}

/* ---- formatting ------------------------------------------------------------------ */

/* snprintf that keeps appending at *pos and never runs past outlen. */
static void put(char *out, size_t outlen, size_t *pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void put(char *out, size_t outlen, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*pos >= outlen)
		return;
	va_start(ap, fmt);
	n = vsnprintf(out + *pos, outlen - *pos, fmt, ap);
	va_end(ap);
	if (n > 0)
		*pos += (size_t)n;
}

static void put_landmark(char *out, size_t outlen, size_t *pos, const struct ckpt_landmark *at)
{
	put(out, outlen, pos, " at sync %" PRIu64 " rip 0x%" PRIx64 " regs 0x%016" PRIx64,
	    at->sync_count, at->rip, at->reg_hash);
	if (at->flags & CKPT_LM_HALTED)
		put(out, outlen, pos, " (halted)");
}

/* The bytes in double quotes, C-escaped, cut with "..." when they do not
 * fit (a paste into the console can be long; a line stays a line). */
static void put_bytes(char *out, size_t outlen, size_t *pos, const uint8_t *data, uint32_t n)
{
	const size_t reserve = sizeof("\"...") + 4; /* room to close the quote */

	put(out, outlen, pos, " \"");
	for (uint32_t i = 0; i < n && data; i++) {
		char esc[8];
		uint8_t c = data[i];

		if (c == '\\' || c == '"')
			snprintf(esc, sizeof(esc), "\\%c", c);
		else if (c == '\n')
			snprintf(esc, sizeof(esc), "\\n");
		else if (c == '\r')
			snprintf(esc, sizeof(esc), "\\r");
		else if (c == '\t')
			snprintf(esc, sizeof(esc), "\\t");
		else if (c >= 0x20 && c < 0x7f)
			snprintf(esc, sizeof(esc), "%c", c);
		else
			snprintf(esc, sizeof(esc), "\\x%02x", c);
		if (*pos + strlen(esc) + reserve > outlen) {
			put(out, outlen, pos, "...");
			break;
		}
		put(out, outlen, pos, "%s", esc);
	}
	put(out, outlen, pos, "\"");
}

void ckpt_event__format(const struct ckpt_event *ev, char *out, size_t outlen)
{
	size_t pos = 0;

	if (!outlen)
		return;
	out[0] = '\0';
	put(out, outlen, &pos, "t=%" PRIu64 ".%06" PRIu64 "s %s", ev->guest_time_ns / 1000000000u,
	    ev->guest_time_ns % 1000000000u / 1000u, ckpt_event_kind__name(ev->kind));
	switch (ev->kind) {
	case CKPT_EV_PIO_READ:
	case CKPT_EV_PIO_WRITE:
	case CKPT_EV_MMIO_READ:
	case CKPT_EV_MMIO_WRITE:
		put(out, outlen, &pos, " %s 0x%" PRIx64 " size %" PRIu32 " value 0x%" PRIx64
		    " at rip 0x%" PRIx64 " sync %" PRIu64,
		    is_pio(ev->kind) ? "port" : "addr", ev->addr, ev->size, ev->value, ev->at.rip,
		    ev->at.sync_count);
		break;
	case CKPT_EV_IRQ:
		put(out, outlen, &pos, " vector 0x%02" PRIx64, ev->value);
		put_landmark(out, outlen, &pos, &ev->at);
		break;
	case CKPT_EV_STOP:
		put_landmark(out, outlen, &pos, &ev->at);
		break;
	case CKPT_EV_CONSOLE_IN:
		put(out, outlen, &pos, " %" PRIu32 " byte%s", ev->size, ev->size == 1 ? "" : "s");
		put_bytes(out, outlen, &pos, ev->data, ev->size);
		break;
	case CKPT_EV_DMA:
		put(out, outlen, &pos, " addr 0x%" PRIx64 " %" PRIu32 " byte%s", ev->addr, ev->size,
		    ev->size == 1 ? "" : "s");
		break;
	default:
		put(out, outlen, &pos, " (kind %d)", (int)ev->kind);
		break;
	}
}

/* ---- checks shared by writer and reader ---------------------------------------------- */

/* Where the interval stands while its events go by. */
struct log_pos {
	uint64_t time, sync, rip; /* previous event's, for the deltas */
	uint64_t accesses;        /* port and MMIO accesses so far */
	bool stopped;             /* a STOP was seen: nothing may follow */
};

/* Why ev cannot be the next event at p, or NULL if it can. */
static const char *event_problem(const struct ckpt_event *ev, const struct log_pos *p,
				 char *why, size_t whylen)
{
	if (ev->kind < CKPT_EV_PIO_READ || ev->kind >= CKPT_EV__COUNT) {
		snprintf(why, whylen, "unknown event kind %d", (int)ev->kind);
		return why;
	}
	if (p->stopped) {
		snprintf(why, whylen, "after the stop event, which must be the last event");
		return why;
	}
	if (ev->at.flags & ~(CKPT_LM_HALTED | CKPT_LM_RFLAGS_MASK)) {
		snprintf(why, whylen, "unknown landmark flags 0x%" PRIx32, ev->at.flags);
		return why;
	}
	if (!ckpt_event_kind__at_landmark(ev->kind)) {
		for (int i = 0; i <= CKPT_GPR__COUNT; i++)
			if (i == CKPT_GPR__COUNT ? ev->at.cr3 : ev->at.gpr[i]) {
				snprintf(why, whylen, "registers on an event without a landmark");
				return why;
			}
	}
	if (ckpt_event_kind__is_access(ev->kind)) {
		/* KVM splits MMIO at page boundaries into any width up to 8;
		 * port I/O is 1, 2 or 4 bytes wide. */
		bool pio = is_pio(ev->kind);
		bool ok = pio ? ev->size == 1 || ev->size == 2 || ev->size == 4
			      : ev->size >= 1 && ev->size <= 8;

		if (!ok) {
			snprintf(why, whylen, "size %" PRIu32 " (must be %s)", ev->size,
				 pio ? "1, 2 or 4" : "1 to 8");
			return why;
		}
		if (pio && ev->addr > 0xffff) {
			snprintf(why, whylen, "port 0x%" PRIx64 " beyond 0xffff", ev->addr);
			return why;
		}
		if (!pio && ev->addr >= LOG_PHYS_LIMIT) {
			snprintf(why, whylen, "address 0x%" PRIx64 " beyond 52 bits", ev->addr);
			return why;
		}
		if (ev->size < 8 && ev->value >> (8 * ev->size)) {
			snprintf(why, whylen, "value 0x%" PRIx64 " wider than %" PRIu32 " byte%s",
				 ev->value, ev->size, ev->size == 1 ? "" : "s");
			return why;
		}
		if (ev->at.flags & CKPT_LM_HALTED) {
			snprintf(why, whylen, "an access cannot happen while halted");
			return why;
		}
		if (ev->at.flags) {
			snprintf(why, whylen, "landmark flags 0x%" PRIx32 " on an access, which has none",
				 ev->at.flags);
			return why;
		}
		/* The access's own index: the landmarks count on it. */
		if (ev->at.sync_count != p->accesses) {
			snprintf(why, whylen, "sync count %" PRIu64 ", expected %" PRIu64
				 " (accesses so far)", ev->at.sync_count, p->accesses);
			return why;
		}
		return NULL;
	}
	if (ev->kind == CKPT_EV_IRQ && ev->value > 0xff) {
		snprintf(why, whylen, "vector 0x%" PRIx64 " beyond 0xff", ev->value);
		return why;
	}
	if ((ev->kind == CKPT_EV_IRQ || ev->kind == CKPT_EV_STOP) &&
	    ev->at.sync_count > p->accesses) {
		snprintf(why, whylen, "landmark after %" PRIu64 " accesses, only %" PRIu64
			 " happened", ev->at.sync_count, p->accesses);
		return why;
	}
	if (ev->kind == CKPT_EV_DMA &&
	    (ev->addr >= LOG_PHYS_LIMIT || ev->size > LOG_PHYS_LIMIT - ev->addr)) {
		snprintf(why, whylen, "%" PRIu32 " bytes at 0x%" PRIx64 " beyond 52 bits",
			 ev->size, ev->addr);
		return why;
	}
	return NULL;
}

static void advance(struct log_pos *p, const struct ckpt_event *ev)
{
	p->time = ev->guest_time_ns;
	p->sync = ev->at.sync_count;
	p->rip = ev->at.rip;
	if (ckpt_event_kind__is_access(ev->kind))
		p->accesses++;
	if (ev->kind == CKPT_EV_STOP)
		p->stopped = true;
}

/* ---- the writer ------------------------------------------------------------------- */

struct ckpt_log_writer {
	uint32_t interval;
	size_t count;
	struct log_pos pos;
	struct ckpt_wbuf buf;       /* the payload so far */
};

static void put_varint(struct ckpt_wbuf *b, uint64_t v)
{
	uint8_t p[10];
	size_t n = 0;

	do {
		p[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			p[n] |= 0x80;
		n++;
	} while (v);
	ckpt_wbuf__bytes(b, p, n);
}

/* Signed deltas in wrapping arithmetic: any two u64 round-trip. */
static uint64_t zigzag(uint64_t now, uint64_t prev)
{
	uint64_t d = now - prev;

	return (d << 1) ^ (0 - (d >> 63));
}

static uint64_t unzigzag(uint64_t z, uint64_t prev)
{
	return prev + ((z >> 1) ^ (0 - (z & 1)));
}

struct ckpt_log_writer *ckpt_log_writer__new(uint32_t interval)
{
	struct ckpt_log_writer *w = calloc(1, sizeof(*w));

	if (w)
		w->interval = interval;
	return w;
}

int ckpt_log_writer__append(struct ckpt_log_writer *w, const struct ckpt_event *ev)
{
	struct ckpt_wbuf *b = &w->buf;
	size_t mark = b->len;
	char why[128];

	/* A file the reader would refuse is a recorder bug; say so now, where
	 * the recorder still knows what it did, not at replay. */
	if (event_problem(ev, &w->pos, why, sizeof(why)) ||
	    (has_data(ev->kind) && ev->size && !ev->data)) {
		errno = EINVAL;
		return -1;
	}
	ckpt_wbuf__u8(b, (uint8_t)ev->kind);
	put_varint(b, zigzag(ev->guest_time_ns, w->pos.time));
	put_varint(b, zigzag(ev->at.sync_count, w->pos.sync));
	put_varint(b, zigzag(ev->at.rip, w->pos.rip));
	ckpt_wbuf__u8(b, (uint8_t)ev->at.flags);
	if (ckpt_event_kind__at_landmark(ev->kind)) {
		ckpt_wbuf__u64(b, ev->at.reg_hash);
		for (int i = 0; i < CKPT_GPR__COUNT; i++)
			ckpt_wbuf__u64(b, ev->at.gpr[i]);
		ckpt_wbuf__u64(b, ev->at.cr3);
	} else {
		put_varint(b, ev->at.reg_hash);
	}
	if (ckpt_event_kind__is_access(ev->kind)) {
		put_varint(b, ev->addr);
		ckpt_wbuf__u8(b, (uint8_t)ev->size);
		put_varint(b, ev->value);
	} else if (ev->kind == CKPT_EV_IRQ) {
		ckpt_wbuf__u8(b, (uint8_t)ev->value);
	} else if (has_data(ev->kind)) {
		put_varint(b, ev->addr);
		put_varint(b, ev->size);
		ckpt_wbuf__bytes(b, ev->data, ev->size);
	}
	if (b->oom) {
		/* Keep what was appended before: the writer stays usable. */
		b->oom = false;
		b->len = mark;
		errno = ENOMEM;
		return -1;
	}
	advance(&w->pos, ev);
	w->count++;
	return 0;
}

size_t ckpt_log_writer__count(const struct ckpt_log_writer *w)
{
	return w->count;
}

int ckpt_log_writer__finish(struct ckpt_log_writer *w, void **buf, size_t *len)
{
	size_t plen = w->buf.len, total;
	uint8_t *p;

	*buf = NULL;
	*len = 0;
	if (plen > SIZE_MAX - LOG_HDR_SIZE - LOG_SUM_SIZE) {
		ckpt_log_writer__free(w);
		errno = ENOMEM;
		return -1;
	}
	total = LOG_HDR_SIZE + plen + LOG_SUM_SIZE;
	p = malloc(total);
	if (!p) {
		ckpt_log_writer__free(w);
		return -1;
	}
	memcpy(p, LOG_MAGIC, LOG_MAGIC_LEN);
	ckpt__put_le32(p + 8, CKPT_FORMAT_VERSION);
	ckpt__put_le32(p + 12, w->interval);
	ckpt__put_le64(p + 16, w->count);
	ckpt__put_le64(p + 24, plen);
	if (plen)
		memcpy(p + LOG_HDR_SIZE, w->buf.p, plen);
	ckpt__put_le64(p + LOG_HDR_SIZE + plen, XXH3_64bits(p, LOG_HDR_SIZE + plen));
	*buf = p;
	*len = total;
	ckpt_log_writer__free(w);
	return 0;
}

void ckpt_log_writer__free(struct ckpt_log_writer *w)
{
	if (!w)
		return;
	free(w->buf.p);
	free(w);
}

/* ---- the reader -------------------------------------------------------------------- */

struct ckpt_log {
	uint32_t interval;
	size_t count;
	struct ckpt_event *events;
	uint8_t *file;              /* the whole file; event data points into it */
};

/* Decoding state: the payload, and the event being decoded for messages. */
struct log_dec {
	struct ckpt_rbuf in;
	size_t event;               /* index of the event being decoded */
	size_t start;               /* its payload offset */
	const char *name;           /* the file, or "log" */
	char *err;
	size_t errlen;
};

static int dec_fail(struct log_dec *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int dec_fail(struct log_dec *d, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return ckpt__errf(d->err, d->errlen, "%s: event %zu (payload offset %zu): %s", d->name,
			  d->event, d->start, why);
}

static int dec_u8(struct log_dec *d, const char *field, uint8_t *v)
{
	const uint8_t *p = ckpt_rbuf__bytes(&d->in, 1);

	if (!p)
		return dec_fail(d, "payload ends inside the %s", field);
	*v = p[0];
	return 0;
}

static int dec_u64(struct log_dec *d, const char *field, uint64_t *v)
{
	const uint8_t *p = ckpt_rbuf__bytes(&d->in, 8);

	if (!p)
		return dec_fail(d, "payload ends inside the %s", field);
	*v = ckpt__get_le64(p);
	return 0;
}

/* LEB128, at most 10 bytes, in its one shortest form (so that every value
 * has exactly one encoding and the checksum covers meaning, not spelling). */
static int dec_varint(struct log_dec *d, const char *field, uint64_t *v)
{
	uint64_t x = 0;

	for (unsigned i = 0; i < 10; i++) {
		uint8_t b = 0;

		if (dec_u8(d, field, &b) < 0)
			return -1;
		if (i == 9 && b > 1)
			return dec_fail(d, "%s: varint overflows 64 bits", field);
		x |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			if (b == 0 && i > 0)
				return dec_fail(d, "%s: varint not in its shortest form", field);
			*v = x;
			return 0;
		}
	}
	return dec_fail(d, "%s: varint longer than 10 bytes", field);
}

static int dec_varint32(struct log_dec *d, const char *field, uint32_t *v)
{
	uint64_t x;

	if (dec_varint(d, field, &x) < 0)
		return -1;
	if (x > UINT32_MAX)
		return dec_fail(d, "%s %" PRIu64 " beyond 32 bits", field, x);
	*v = (uint32_t)x;
	return 0;
}

static int dec_kind_fields(struct log_dec *d, struct ckpt_event *ev)
{
	if (ckpt_event_kind__is_access(ev->kind)) {
		uint8_t size = 0;

		if (dec_varint(d, "address", &ev->addr) < 0 || dec_u8(d, "size", &size) < 0 ||
		    dec_varint(d, "value", &ev->value) < 0)
			return -1;
		ev->size = size;
	} else if (ev->kind == CKPT_EV_IRQ) {
		uint8_t vector = 0;

		if (dec_u8(d, "vector", &vector) < 0)
			return -1;
		ev->value = vector;
	} else if (has_data(ev->kind)) {
		if (dec_varint(d, "address", &ev->addr) < 0 ||
		    dec_varint32(d, "data length", &ev->size) < 0)
			return -1;
		if (ev->size > ckpt_rbuf__left(&d->in))
			return dec_fail(d, "%" PRIu32 " data bytes, only %zu left in the payload",
					ev->size, ckpt_rbuf__left(&d->in));
		ev->data = ckpt_rbuf__bytes(&d->in, ev->size);
	}
	return 0;
}

static int dec_event(struct log_dec *d, struct log_pos *p, struct ckpt_event *ev)
{
	uint64_t dt, dsync, drip;
	uint8_t kind = 0, flags = 0;
	char why[128];

	memset(ev, 0, sizeof(*ev));
	d->start = d->in.pos;
	if (dec_u8(d, "kind", &kind) < 0)
		return -1;
	if (kind < CKPT_EV_PIO_READ || kind >= CKPT_EV__COUNT)
		return dec_fail(d, "unknown event kind %u", kind);
	ev->kind = (enum ckpt_event_kind)kind;
	if (dec_varint(d, "time", &dt) < 0 || dec_varint(d, "sync count", &dsync) < 0 ||
	    dec_varint(d, "rip", &drip) < 0 || dec_u8(d, "landmark flags", &flags) < 0)
		return -1;
	ev->guest_time_ns = unzigzag(dt, p->time);
	ev->at.sync_count = unzigzag(dsync, p->sync);
	ev->at.rip = unzigzag(drip, p->rip);
	ev->at.flags = flags;
	if (ckpt_event_kind__at_landmark(ev->kind)) {
		if (dec_u64(d, "register hash", &ev->at.reg_hash) < 0)
			return -1;
		for (int i = 0; i < CKPT_GPR__COUNT; i++)
			if (dec_u64(d, "register", &ev->at.gpr[i]) < 0)
				return -1;
		if (dec_u64(d, "cr3", &ev->at.cr3) < 0)
			return -1;
	} else if (dec_varint(d, "register hash", &ev->at.reg_hash) < 0) {
		return -1;
	}
	if (dec_kind_fields(d, ev) < 0)
		return -1;
	if (event_problem(ev, p, why, sizeof(why)))
		return dec_fail(d, "%s: %s", ckpt_event_kind__name(ev->kind), why);
	advance(p, ev);
	return 0;
}

/* The header and checksum of a whole file in memory; *count and *payload
 * are what they announce. */
static int check_frame(const uint8_t *p, size_t len, uint32_t interval, const char *name,
		       uint64_t *count, size_t *plen, char *err, size_t errlen)
{
	uint32_t version, fint;
	uint64_t l, stored, computed;

	if (memcmp(p, LOG_MAGIC, len < LOG_MAGIC_LEN ? len : LOG_MAGIC_LEN) != 0)
		return ckpt__errf(err, errlen, "%s: bad magic: not a simuboost log", name);
	if (len < LOG_HDR_SIZE + LOG_SUM_SIZE)
		return ckpt__errf(err, errlen, "%s: truncated (expected at least %u bytes, found %zu)",
				  name, LOG_HDR_SIZE + LOG_SUM_SIZE, len);
	version = ckpt__get_le32(p + 8);
	if (version != CKPT_FORMAT_VERSION)
		return ckpt__errf(err, errlen,
				  "%s: unknown format version %" PRIu32 " (this build reads version %u)",
				  name, version, CKPT_FORMAT_VERSION);
	fint = ckpt__get_le32(p + 12);
	if (fint != interval)
		return ckpt__errf(err, errlen,
				  "%s: wrong interval: the log of interval %" PRIu32 ", expected %" PRIu32,
				  name, fint, interval);
	l = ckpt__get_le64(p + 24);
	if (l > UINT64_MAX - LOG_HDR_SIZE - LOG_SUM_SIZE)
		return ckpt__errf(err, errlen, "%s: impossible payload length %" PRIu64, name, l);
	if (l > len - LOG_HDR_SIZE - LOG_SUM_SIZE)
		return ckpt__errf(err, errlen, "%s: truncated (expected %" PRIu64
				  " bytes, found %zu)", name, l + LOG_HDR_SIZE + LOG_SUM_SIZE, len);
	if (l < len - LOG_HDR_SIZE - LOG_SUM_SIZE)
		return ckpt__errf(err, errlen, "%s: %" PRIu64 " trailing bytes after the checksum "
				  "(expected %" PRIu64 " bytes, found %zu)", name,
				  len - LOG_HDR_SIZE - LOG_SUM_SIZE - l,
				  l + LOG_HDR_SIZE + LOG_SUM_SIZE, len);
	stored = ckpt__get_le64(p + LOG_HDR_SIZE + l);
	computed = XXH3_64bits(p, LOG_HDR_SIZE + (size_t)l);
	if (stored != computed)
		return ckpt__errf(err, errlen, "%s: checksum mismatch (stored 0x%016" PRIx64
				  ", computed 0x%016" PRIx64 ")", name, stored, computed);
	*count = ckpt__get_le64(p + 16);
	*plen = (size_t)l;
	return 0;
}

/* Decodes a file held in `file`, which the log takes over (freed on error). */
static int parse_owned(uint8_t *file, size_t len, uint32_t interval, const char *name,
		       struct ckpt_log **out, char *err, size_t errlen)
{
	struct log_dec d = { .name = name, .err = err, .errlen = errlen };
	struct log_pos pos = { 0 };
	struct ckpt_log *log = NULL;
	uint64_t count = 0;
	size_t plen = 0;

	*out = NULL;
	if (check_frame(file, len, interval, name, &count, &plen, err, errlen) < 0)
		goto fail;
	/* Bounds the allocation below by the input, whatever the header says. */
	if (count > plen / LOG_MIN_EVENT) {
		ckpt__errf(err, errlen, "%s: event count mismatch: the header says %" PRIu64
			   " events, %zu payload bytes hold at most %zu", name, count, plen,
			   plen / LOG_MIN_EVENT);
		goto fail;
	}
	log = calloc(1, sizeof(*log));
	if (!log || !(log->events = calloc(count ? (size_t)count : 1, sizeof(*log->events)))) {
		ckpt__errf(err, errlen, "%s: out of memory for %" PRIu64 " events", name, count);
		goto fail;
	}
	log->interval = interval;
	log->count = (size_t)count;
	log->file = file;
	d.in = (struct ckpt_rbuf){ .p = file + LOG_HDR_SIZE, .len = plen };
	for (d.event = 0; d.event < count; d.event++) {
		if (!ckpt_rbuf__left(&d.in)) {
			ckpt__errf(err, errlen, "%s: event count mismatch: the header says %" PRIu64
				   " events, the payload holds %zu", name, count, d.event);
			goto fail;
		}
		if (dec_event(&d, &pos, &log->events[d.event]) < 0)
			goto fail;
	}
	if (ckpt_rbuf__left(&d.in)) {
		ckpt__errf(err, errlen, "%s: event count mismatch: %zu payload bytes after the %" PRIu64
			   " events the header announces", name, ckpt_rbuf__left(&d.in), count);
		goto fail;
	}
	*out = log;
	return 0;
fail:
	if (log && log->file)
		file = NULL; /* freed with the log */
	ckpt_log__free(log);
	free(file);
	return -1;
}

int ckpt_log__parse(const void *buf, size_t len, uint32_t interval, struct ckpt_log **out,
		    char *err, size_t errlen)
{
	/* A copy: the events' data must outlive the caller's buffer. */
	uint8_t *file = malloc(len ? len : 1);

	*out = NULL;
	if (!file)
		return ckpt__errf(err, errlen, "log: out of memory for %zu bytes", len);
	if (len)
		memcpy(file, buf, len);
	return parse_owned(file, len, interval, "log", out, err, errlen);
}

int ckpt_log__load(struct ckpt_store *st, uint32_t interval, struct ckpt_log **out, char *err,
		   size_t errlen)
{
	char name[CKPT_NAME_MAX];
	void *buf;
	size_t len;

	*out = NULL;
	ckpt_file__name(name, interval, "log");
	if (ckpt_store__read_file(st, name, &buf, &len, err, errlen) < 0)
		return -1;
	return parse_owned(buf, len, interval, name, out, err, errlen);
}

size_t ckpt_log__count(const struct ckpt_log *log)
{
	return log->count;
}

const struct ckpt_event *ckpt_log__event(const struct ckpt_log *log, size_t i)
{
	return i < log->count ? &log->events[i] : NULL;
}

void ckpt_log__free(struct ckpt_log *log)
{
	if (!log)
		return;
	free(log->events);
	free(log->file);
	free(log);
}
