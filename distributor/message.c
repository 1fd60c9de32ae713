/* Message payloads, written and parsed in one place: see distributor.h. A
 * parser gets an authentic frame from a peer that may still be buggy or
 * hostile, so every field is bounds-checked and nothing may be left over. */
#include <string.h>

#include "checkpoint.h"
#include "distributor.h"

static bool read_endpoint(struct wire_reader *r, char out[PAGE_ENDPOINT_MAX])
{
	const uint8_t *p;
	uint32_t len;
	if (!wire_reader__blob(r, &p, &len, PAGE_ENDPOINT_MAX - 1) || memchr(p, '\0', len))
		return false;
	memcpy(out, p, len);
	out[len] = '\0';
	return true;
}

static void write_endpoint(struct wire_writer *w, const char *endpoint)
{
	wire_writer__blob(w, endpoint, (uint32_t)strnlen(endpoint, PAGE_ENDPOINT_MAX - 1));
}

void msg__hello_write(struct wire_writer *w, const char *pages_endpoint)
{
	write_endpoint(w, pages_endpoint ? pages_endpoint : "");
}

bool msg__hello_parse(const struct wire_msg *m, char pages_endpoint[PAGE_ENDPOINT_MAX])
{
	struct wire_reader r = wire_reader__of(m);
	pages_endpoint[0] = '\0';
	if (m->len == 0)
		return true; /* a node that serves no pages */
	return read_endpoint(&r, pages_endpoint) && wire_reader__done(&r);
}

void msg__assign_write(struct wire_writer *w, const struct msg_assign *a)
{
	wire_writer__u32(w, a->interval);
	wire_writer__u32(w, a->npeers);
	for (unsigned i = 0; i < a->npeers; i++) {
		wire_writer__u32(w, a->peers[i].id);
		write_endpoint(w, a->peers[i].endpoint);
	}
}

bool msg__assign_parse(const struct wire_msg *m, struct msg_assign *a)
{
	struct wire_reader r = wire_reader__of(m);
	uint32_t n;
	if (!wire_reader__u32(&r, &a->interval) || !wire_reader__u32(&r, &n) ||
	    n > PAGE_MAX_PEERS)
		return false;
	for (uint32_t i = 0; i < n; i++)
		if (!wire_reader__u32(&r, &a->peers[i].id) ||
		    !read_endpoint(&r, a->peers[i].endpoint))
			return false;
	a->npeers = n;
	return wire_reader__done(&r);
}

void msg__result_write(struct wire_writer *w, const struct msg_result *res)
{
	wire_writer__u32(w, res->interval);
	wire_writer__u8(w, res->ran ? 1 : 0);
	wire_writer__blob(w, res->json, res->len);
}

bool msg__result_parse(const struct wire_msg *m, struct msg_result *res)
{
	struct wire_reader r = wire_reader__of(m);
	uint8_t ran;
	if (!wire_reader__u32(&r, &res->interval) || !wire_reader__u8(&r, &ran) || ran > 1 ||
	    !wire_reader__blob(&r, &res->json, &res->len, WIRE_MAX_PAYLOAD))
		return false;
	res->ran = ran;
	return wire_reader__done(&r);
}

static void write_hash(struct wire_writer *w, const struct ckpt_hash *h)
{
	wire_writer__u64(w, h->lo);
	wire_writer__u64(w, h->hi);
}

static bool read_hash(struct wire_reader *r, struct ckpt_hash *h)
{
	return wire_reader__u64(r, &h->lo) && wire_reader__u64(r, &h->hi);
}

void msg__page_request_write(struct wire_writer *w, uint32_t tag, uint8_t flags,
			     const struct ckpt_hash *h, const unsigned *which, unsigned n)
{
	wire_writer__u32(w, tag);
	wire_writer__u8(w, flags);
	wire_writer__u32(w, n);
	for (unsigned i = 0; i < n; i++)
		write_hash(w, &h[which ? which[i] : i]);
}

bool msg__page_request_parse(const struct wire_msg *m, struct msg_page_request *q)
{
	struct wire_reader r = wire_reader__of(m);
	if (!wire_reader__u32(&r, &q->tag) || !wire_reader__u8(&r, &q->flags) ||
	    (q->flags & ~MSG_PAGE_FETCH_THROUGH) || !wire_reader__u32(&r, &q->n) ||
	    q->n > PAGE_MAX_REQUEST || r.left != q->n * 16u)
		return false;
	q->hashes = r.p;
	return true;
}

struct ckpt_hash msg__page_request_hash(const struct msg_page_request *q, uint32_t i)
{
	struct ckpt_hash h;
	struct wire_reader r = { .p = q->hashes + 16u * i, .left = 16, .ok = true };
	read_hash(&r, &h);
	return h;
}

void msg__page_data_begin(struct wire_writer *w, uint32_t tag, uint32_t n)
{
	wire_writer__u32(w, tag);
	wire_writer__u32(w, n);
}

void msg__page_data_add(struct wire_writer *w, const struct ckpt_hash *h, const void *lz4,
			uint32_t len)
{
	write_hash(w, h);
	wire_writer__u8(w, lz4 ? 0 : 1);
	if (lz4)
		wire_writer__blob(w, lz4, len);
}

bool msg__page_data_parse(const struct wire_msg *m, uint32_t *tag, uint32_t *n,
			  struct wire_reader *rest)
{
	*rest = wire_reader__of(m);
	return wire_reader__u32(rest, tag) && wire_reader__u32(rest, n) && *n <= PAGE_MAX_REQUEST;
}

int msg__page_data_next(struct wire_reader *r, struct ckpt_hash *h, const uint8_t **lz4,
			uint32_t *len)
{
	uint8_t status;
	if (!read_hash(r, h) || !wire_reader__u8(r, &status) || status > 1)
		return -1;
	if (status == 1)
		return 0;
	return wire_reader__blob(r, lz4, len, MSG_PAGE_MAX_LZ4) ? 1 : -1;
}

/* A name read from a blob: at most MSG_NAME_MAX bytes, no NUL. */
static bool read_name(struct wire_reader *r, char out[MSG_NAME_MAX + 1])
{
	const uint8_t *p;
	uint32_t len;
	if (!wire_reader__blob(r, &p, &len, MSG_NAME_MAX) || !len || memchr(p, '\0', len))
		return false;
	memcpy(out, p, len);
	out[len] = '\0';
	return true;
}

/* recording.meta, six digits then .manifest or .log, or plugin.N (the
 * run's analyses, then its QEMU plugins, N from 0) */
static bool recording_file(const char *name)
{
	if (!strcmp(name, "recording.meta"))
		return true;
	if (!strncmp(name, "plugin.", 7)) {
		const char *n = name + 7;
		size_t digits = strspn(n, "0123456789");
		return digits >= 1 && digits <= 3 && !n[digits] && (n[0] != '0' || digits == 1);
	}
	for (int i = 0; i < 6; i++)
		if (name[i] < '0' || name[i] > '9')
			return false;
	return !strcmp(name + 6, ".manifest") || !strcmp(name + 6, ".log");
}

/* A plain file name: nothing that leaves the directory or hides in it. */
static bool plain_name(const char *name)
{
	if (name[0] == '.')
		return false;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' || *c == '_'))
			return false;
	return true;
}

void msg__file_request_write(struct wire_writer *w, const struct msg_file_request *q)
{
	wire_writer__u32(w, q->tag);
	wire_writer__blob(w, q->name, (uint32_t)strnlen(q->name, MSG_NAME_MAX));
	wire_writer__u64(w, q->offset);
}

bool msg__file_request_parse(const struct wire_msg *m, struct msg_file_request *q)
{
	struct wire_reader r = wire_reader__of(m);
	return wire_reader__u32(&r, &q->tag) && read_name(&r, q->name) &&
	       recording_file(q->name) && wire_reader__u64(&r, &q->offset) &&
	       wire_reader__done(&r);
}

/* A part of a file: u64 the file's size, u64 offset, blob of bytes. */
static void write_part(struct wire_writer *w, uint64_t size, uint64_t offset,
		       const uint8_t *bytes, uint32_t len)
{
	wire_writer__u64(w, size);
	wire_writer__u64(w, offset);
	wire_writer__blob(w, bytes, len);
}

/* The same read, ending the payload; the part lies within the file. */
static bool read_part(struct wire_reader *r, uint64_t *size, uint64_t *offset,
		      const uint8_t **bytes, uint32_t *len)
{
	return wire_reader__u64(r, size) && wire_reader__u64(r, offset) &&
	       wire_reader__blob(r, bytes, len, MSG_FILE_CHUNK) && wire_reader__done(r) &&
	       *offset <= *size && *len <= *size - *offset;
}

void msg__file_data_write(struct wire_writer *w, const struct msg_file_data *d)
{
	wire_writer__u32(w, d->tag);
	wire_writer__u8(w, d->missing ? 1 : 0);
	write_part(w, d->size, d->offset, d->bytes, d->len);
}

bool msg__file_data_parse(const struct wire_msg *m, struct msg_file_data *d)
{
	struct wire_reader r = wire_reader__of(m);
	uint8_t status;
	if (!wire_reader__u32(&r, &d->tag) || !wire_reader__u8(&r, &status) || status > 1 ||
	    !read_part(&r, &d->size, &d->offset, &d->bytes, &d->len))
		return false;
	d->missing = status == 1;
	return !(d->missing && d->len); /* a missing file has no bytes */
}

void msg__output_write(struct wire_writer *w, const struct msg_output *o)
{
	wire_writer__u32(w, o->interval);
	wire_writer__u8(w, (uint8_t)o->kind);
	wire_writer__blob(w, o->name, (uint32_t)strnlen(o->name, MSG_NAME_MAX));
	write_part(w, o->size, o->offset, o->bytes, o->len);
}

bool msg__output_parse(const struct wire_msg *m, struct msg_output *o)
{
	struct wire_reader r = wire_reader__of(m);
	uint8_t kind;
	if (!wire_reader__u32(&r, &o->interval) || !wire_reader__u8(&r, &kind) ||
	    kind >= MSG_OUTPUT__COUNT || !read_name(&r, o->name) || !plain_name(o->name) ||
	    !read_part(&r, &o->size, &o->offset, &o->bytes, &o->len))
		return false;
	o->kind = (enum msg_output_kind)kind;
	return true;
}
