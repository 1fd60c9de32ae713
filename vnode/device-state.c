/* Device state encoding: the little-endian field helpers the devices use,
 * and devices__save()/devices__restore(), which wrap the three device blobs
 * into one checksummed container for a checkpoint.
 *
 * Container, version 1 (all integers little-endian):
 *   "SBDEV"              5 bytes magic
 *   u16 version
 *   u16 section count
 *   per section:         4-byte tag ("PIC ", "PIT ", "UART"), u32 length,
 *                        then that many bytes: the device's own blob
 *   u64 XXH3-64          of every byte before it
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "device-state.h"
#include "devices.h"

#define DEVICES_MAGIC       "SBDEV"
#define DEVICES_MAGIC_LEN   5
#define DEVICES_VERSION     1
#define DEVICES_HEADER_LEN  (DEVICES_MAGIC_LEN + 2 + 2)
#define DEVICES_SECTION_HDR (DSTATE_TAG_LEN + 4)
#define DEVICES_SUM_LEN     8
#define DEVICES_NR_SECTIONS 3

/* ---- writer */

void dstate__put_bytes(struct dstate_writer *w, const void *p, size_t n)
{
	if (w->buf && n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void dstate__put_u8(struct dstate_writer *w, uint8_t v)
{
	dstate__put_bytes(w, &v, 1);
}

void dstate__put_u16(struct dstate_writer *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	dstate__put_bytes(w, b, sizeof(b));
}

void dstate__put_u32(struct dstate_writer *w, uint32_t v)
{
	uint8_t b[4];
	for (unsigned i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(v >> (8 * i));
	dstate__put_bytes(w, b, sizeof(b));
}

void dstate__put_u64(struct dstate_writer *w, uint64_t v)
{
	uint8_t b[8];
	for (unsigned i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(v >> (8 * i));
	dstate__put_bytes(w, b, sizeof(b));
}

void dstate__put_bool(struct dstate_writer *w, bool v)
{
	dstate__put_u8(w, v ? 1 : 0);
}

void dstate__put_header(struct dstate_writer *w, const char tag[DSTATE_TAG_LEN], uint16_t version)
{
	dstate__put_bytes(w, tag, DSTATE_TAG_LEN);
	dstate__put_u16(w, version);
}

/* ---- reader */

void dstate__reader_init(struct dstate_reader *r, const char *dev, const uint8_t *buf, size_t len,
			 char *err, size_t errlen)
{
	*r = (struct dstate_reader){
		.buf = buf, .len = buf ? len : 0, .dev = dev, .err = err, .errlen = errlen,
	};
}

void dstate__fail(struct dstate_reader *r, const char *field, const char *fmt, ...)
{
	if (r->failed)
		return;
	r->failed = true;
	if (!r->err || !r->errlen)
		return;

	char msg[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(r->err, r->errlen, "%s: %s%s%s: %s", r->dev,
		 r->scope ? r->scope : "", r->scope ? "." : "", field, msg);
}

/* Returns the next n bytes, or NULL (and fails) if the blob ends first. */
static const uint8_t *dstate__take(struct dstate_reader *r, const char *field, size_t n)
{
	if (r->failed)
		return NULL;
	if (r->len - r->off < n) {
		dstate__fail(r, field, "truncated: needs %zu bytes at offset %zu, the blob has %zu",
			     n, r->off, r->len);
		return NULL;
	}
	const uint8_t *p = r->buf + r->off;
	r->off += n;
	return p;
}

static uint64_t dstate__get_le(struct dstate_reader *r, const char *field, size_t n)
{
	const uint8_t *p = dstate__take(r, field, n);
	uint64_t v = 0;

	if (!p)
		return 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

uint8_t dstate__get_u8(struct dstate_reader *r, const char *field)
{
	return (uint8_t)dstate__get_le(r, field, 1);
}

uint16_t dstate__get_u16(struct dstate_reader *r, const char *field)
{
	return (uint16_t)dstate__get_le(r, field, 2);
}

uint32_t dstate__get_u32(struct dstate_reader *r, const char *field)
{
	return (uint32_t)dstate__get_le(r, field, 4);
}

uint64_t dstate__get_u64(struct dstate_reader *r, const char *field)
{
	return dstate__get_le(r, field, 8);
}

uint8_t dstate__get_u8_max(struct dstate_reader *r, const char *field, uint8_t max)
{
	uint8_t v = dstate__get_u8(r, field);

	if (v > max) {
		dstate__fail(r, field, "%u is out of range (0..%u)", v, max);
		return 0;
	}
	return v;
}

bool dstate__get_bool(struct dstate_reader *r, const char *field)
{
	uint8_t v = dstate__get_u8(r, field);

	/* Anything but 0/1 is corruption, not "true". */
	if (v > 1) {
		dstate__fail(r, field, "%u is not a boolean (0 or 1)", v);
		return false;
	}
	return v;
}

void dstate__get_bytes(struct dstate_reader *r, const char *field, void *p, size_t n)
{
	const uint8_t *src = dstate__take(r, field, n);

	if (src && n)
		memcpy(p, src, n);
}

void dstate__get_header(struct dstate_reader *r, const char tag[DSTATE_TAG_LEN], uint16_t version)
{
	const uint8_t *t = dstate__take(r, "tag", DSTATE_TAG_LEN);

	if (t && memcmp(t, tag, DSTATE_TAG_LEN) != 0) {
		dstate__fail(r, "tag", "is %02x %02x %02x %02x, expected \"%.4s\"",
			     t[0], t[1], t[2], t[3], tag);
		return;
	}
	uint16_t v = dstate__get_u16(r, "version");
	if (!r->failed && v != version)
		dstate__fail(r, "version", "%u is not supported (this build reads version %u)",
			     v, version);
}

int dstate__finish(struct dstate_reader *r)
{
	if (!r->failed && r->off != r->len) {
		const char *scope = r->scope;
		r->scope = NULL;
		dstate__fail(r, "length", "%zu trailing bytes after the last field (blob is %zu bytes, fields end at %zu)",
			     r->len - r->off, r->len, r->off);
		r->scope = scope;
	}
	return r->failed ? -1 : 0;
}

/* ---- the aggregate */

struct devices_section {
	const char *tag;
	const uint8_t *buf;
	size_t len;
};

static size_t devices__encode(const struct pic *pic, const struct pit *pit, const struct uart *uart,
			      uint8_t *buf)
{
	struct dstate_writer w = { .buf = buf };

	dstate__put_bytes(&w, DEVICES_MAGIC, DEVICES_MAGIC_LEN);
	dstate__put_u16(&w, DEVICES_VERSION);
	dstate__put_u16(&w, DEVICES_NR_SECTIONS);

	/* Each device measures itself first, then writes straight into place. */
	size_t n = pic__save(pic, NULL, 0);
	dstate__put_bytes(&w, DSTATE_TAG_PIC, DSTATE_TAG_LEN);
	dstate__put_u32(&w, (uint32_t)n);
	if (buf)
		pic__save(pic, buf + w.len, n);
	w.len += n;

	n = pit__save(pit, NULL, 0);
	dstate__put_bytes(&w, DSTATE_TAG_PIT, DSTATE_TAG_LEN);
	dstate__put_u32(&w, (uint32_t)n);
	if (buf)
		pit__save(pit, buf + w.len, n);
	w.len += n;

	n = uart__save(uart, NULL, 0);
	dstate__put_bytes(&w, DSTATE_TAG_UART, DSTATE_TAG_LEN);
	dstate__put_u32(&w, (uint32_t)n);
	if (buf)
		uart__save(uart, buf + w.len, n);
	w.len += n;

	uint64_t sum = buf ? XXH3_64bits(buf, w.len) : 0;
	dstate__put_u64(&w, sum);
	return w.len;
}

size_t devices__save(const struct pic *pic, const struct pit *pit, const struct uart *uart,
		     uint8_t *buf, size_t cap)
{
	size_t need = devices__encode(pic, pit, uart, NULL);

	if (buf && need <= cap)
		devices__encode(pic, pit, uart, buf);
	return need;
}

static uint16_t devices__le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t devices__le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t devices__le64(const uint8_t *p)
{
	return (uint64_t)devices__le32(p) | (uint64_t)devices__le32(p + 4) << 32;
}

/* Prints a tag for a message; hostile tags are not printable. */
static void devices__tag_str(const uint8_t *tag, char out[DSTATE_TAG_LEN * 4 + 1])
{
	char *o = out;
	for (unsigned i = 0; i < DSTATE_TAG_LEN; i++) {
		if (tag[i] >= 0x20 && tag[i] < 0x7f && tag[i] != '\\')
			*o++ = (char)tag[i];
		else
			o += sprintf(o, "\\x%02x", tag[i]);
	}
	*o = 0;
}

#define devices__fail(err, errlen, ...) \
	(snprintf((err), (errlen), "devices: " __VA_ARGS__), -1)

/* Splits the container into its three sections after checking the framing
 * and the checksum; the device blobs themselves are not looked at. */
static int devices__parse(const uint8_t *buf, size_t len, struct devices_section sec[DEVICES_NR_SECTIONS],
			  char *err, size_t errlen)
{
	static const size_t min_len = DEVICES_HEADER_LEN + DEVICES_SUM_LEN;

	if (!buf || len < min_len)
		return devices__fail(err, errlen, "blob of %zu bytes is shorter than the smallest valid one (%zu)",
				     buf ? len : 0, min_len);
	if (memcmp(buf, DEVICES_MAGIC, DEVICES_MAGIC_LEN) != 0)
		return devices__fail(err, errlen, "bad magic: not an %s device-state blob", DEVICES_MAGIC);
	uint16_t version = devices__le16(buf + DEVICES_MAGIC_LEN);
	if (version != DEVICES_VERSION)
		return devices__fail(err, errlen, "version %u is not supported (this build reads version %u)",
				     version, DEVICES_VERSION);

	size_t end = len - DEVICES_SUM_LEN;
	uint64_t stored = devices__le64(buf + end), computed = XXH3_64bits(buf, end);
	if (stored != computed)
		return devices__fail(err, errlen, "checksum mismatch over %zu bytes: stored %016" PRIx64
				     ", computed %016" PRIx64, end, stored, computed);

	uint16_t count = devices__le16(buf + DEVICES_MAGIC_LEN + 2);
	size_t off = DEVICES_HEADER_LEN;
	for (unsigned i = 0; i < count; i++) {
		if (end - off < DEVICES_SECTION_HDR)
			return devices__fail(err, errlen, "section %u of %u: header at offset %zu runs past the end (%zu)",
					     i, count, off, end);
		const uint8_t *tag = buf + off;
		size_t n = devices__le32(buf + off + DSTATE_TAG_LEN);
		char tag_str[DSTATE_TAG_LEN * 4 + 1];
		devices__tag_str(tag, tag_str);
		off += DEVICES_SECTION_HDR;
		if (n > end - off)
			return devices__fail(err, errlen, "section %u (\"%s\"): length %zu at offset %zu runs past the end (%zu)",
					     i, tag_str, n, off, end);

		unsigned k;
		for (k = 0; k < DEVICES_NR_SECTIONS; k++)
			if (memcmp(tag, sec[k].tag, DSTATE_TAG_LEN) == 0)
				break;
		if (k == DEVICES_NR_SECTIONS)
			return devices__fail(err, errlen, "section %u: unknown tag \"%s\"", i, tag_str);
		if (sec[k].buf)
			return devices__fail(err, errlen, "section %u: second \"%s\" section", i, tag_str);
		sec[k].buf = buf + off;
		sec[k].len = n;
		off += n;
	}
	if (off != end)
		return devices__fail(err, errlen, "%zu bytes after the last of %u sections", end - off, count);
	for (unsigned k = 0; k < DEVICES_NR_SECTIONS; k++)
		if (!sec[k].buf)
			return devices__fail(err, errlen, "no \"%s\" section", sec[k].tag);
	return 0;
}

/* Restores the three sections into the given devices; fails at the first
 * bad section, so callers must have validated them all beforehand. */
static int devices__apply(struct pic *pic, struct pit *pit, struct uart *uart,
			  const struct devices_section sec[DEVICES_NR_SECTIONS], char *err, size_t errlen)
{
	if (pic__restore(pic, sec[0].buf, sec[0].len, err, errlen) < 0)
		return -1;
	if (pit__restore(pit, sec[1].buf, sec[1].len, err, errlen) < 0)
		return -1;
	/* Last, so that its IRQ callback drives a PIC already in its restored
	 * state (where the line already has the level: no new edge). */
	return uart__restore(uart, sec[2].buf, sec[2].len, err, errlen);
}

int devices__restore(struct pic *pic, struct pit *pit, struct uart *uart,
		     const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	struct devices_section sec[DEVICES_NR_SECTIONS] = {
		{ .tag = DSTATE_TAG_PIC }, { .tag = DSTATE_TAG_PIT }, { .tag = DSTATE_TAG_UART },
	};

	if (devices__parse(buf, len, sec, err, errlen) < 0)
		return -1;

	/* All or nothing: a bad UART section must not leave a restored PIC
	 * behind. Restoring into throwaway devices first validates every
	 * section with the very code that will apply it, and restoring does not
	 * depend on the target's previous state, so the real pass cannot fail. */
	struct pic *tpic = pic__new();
	struct pit *tpit = pit__new(NULL, NULL);
	struct uart *tuart = uart__new(-1, -1, NULL, NULL);
	int ret;
	if (!tpic || !tpit || !tuart)
		ret = devices__fail(err, errlen, "out of memory for validating the sections");
	else
		ret = devices__apply(tpic, tpit, tuart, sec, err, errlen);
	uart__free(tuart);
	pit__free(tpit);
	pic__free(tpic);
	if (ret < 0)
		return -1;
	return devices__apply(pic, pit, uart, sec, err, errlen);
}
