/* libFuzzer target for message payloads (distributor/message.c), what a
 * coordinator, node or page server parses after a frame is accepted: the
 * input is a payload, given to every parser.
 *
 * Properties besides the sanitizers': a parsed HELLO, ASSIGN, RESULT,
 * PAGE_REQUEST, FILE_REQUEST, FILE_DATA or OUTPUT written again parses to
 * the same thing; what a parser points at lies inside the input; PAGE_DATA's
 * entries never run past it; a file name parsed never leaves its directory
 * (no '/', no leading '.').
 *
 * Seed corpus: corpus/message/, a valid payload of each type. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distributor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct wire_msg as_msg(enum wire_type type, const void *p, size_t len)
{
	return (struct wire_msg){ .type = type, .payload = p, .len = (uint32_t)len };
}

static int inside(const uint8_t *p, size_t n, const uint8_t *data, size_t size)
{
	return p >= data && p + n <= data + size;
}

static void hello(const uint8_t *data, size_t size)
{
	char ep[PAGE_ENDPOINT_MAX], again[PAGE_ENDPOINT_MAX];
	struct wire_msg m = as_msg(WIRE_HELLO, data, size);
	if (!msg__hello_parse(&m, ep))
		return;
	struct wire_writer w = { .ok = true };
	msg__hello_write(&w, ep);
	m = as_msg(WIRE_HELLO, w.buf, w.len);
	if (!w.ok || !msg__hello_parse(&m, again) || strcmp(ep, again))
		abort();
	wire_writer__free(&w);
}

static void assign(const uint8_t *data, size_t size)
{
	static struct msg_assign a, b;
	struct wire_msg m = as_msg(WIRE_ASSIGN, data, size);
	if (!msg__assign_parse(&m, &a))
		return;
	struct wire_writer w = { .ok = true };
	msg__assign_write(&w, &a);
	m = as_msg(WIRE_ASSIGN, w.buf, w.len);
	if (!w.ok || !msg__assign_parse(&m, &b) || a.interval != b.interval ||
	    a.npeers != b.npeers)
		abort();
	for (unsigned i = 0; i < a.npeers; i++)
		if (a.peers[i].id != b.peers[i].id || strcmp(a.peers[i].endpoint, b.peers[i].endpoint))
			abort();
	wire_writer__free(&w);
}

static void result(const uint8_t *data, size_t size)
{
	struct msg_result r, again;
	struct wire_msg m = as_msg(WIRE_RESULT, data, size);
	if (!msg__result_parse(&m, &r))
		return;
	if (!inside(r.json, r.len, data, size))
		abort();
	struct wire_writer w = { .ok = true };
	msg__result_write(&w, &r);
	m = as_msg(WIRE_RESULT, w.buf, w.len);
	if (!w.ok || !msg__result_parse(&m, &again) || again.interval != r.interval ||
	    again.ran != r.ran || again.len != r.len || memcmp(again.json, r.json, r.len))
		abort();
	wire_writer__free(&w);
}

static void page_request(const uint8_t *data, size_t size)
{
	struct msg_page_request q, again;
	struct wire_msg m = as_msg(WIRE_PAGE_REQUEST, data, size);
	if (!msg__page_request_parse(&m, &q))
		return;
	if (!inside(q.hashes, (size_t)q.n * 16, data, size))
		abort();
	struct ckpt_hash *h = malloc((q.n ? q.n : 1) * sizeof(*h));
	for (uint32_t i = 0; i < q.n; i++)
		h[i] = msg__page_request_hash(&q, i);
	struct wire_writer w = { .ok = true };
	msg__page_request_write(&w, q.tag, q.flags, h, NULL, q.n);
	m = as_msg(WIRE_PAGE_REQUEST, w.buf, w.len);
	if (!w.ok || !msg__page_request_parse(&m, &again) || again.tag != q.tag ||
	    again.n != q.n || again.flags != q.flags || memcmp(again.hashes, q.hashes, 16u * q.n))
		abort();
	wire_writer__free(&w);
	free(h);
}

static void page_data(const uint8_t *data, size_t size)
{
	struct wire_msg m = as_msg(WIRE_PAGE_DATA, data, size);
	struct wire_reader r;
	uint32_t tag, n;
	if (!msg__page_data_parse(&m, &tag, &n, &r))
		return;
	for (uint32_t i = 0; i < n; i++) {
		struct ckpt_hash h;
		const uint8_t *lz4 = NULL;
		uint32_t len = 0;
		int got = msg__page_data_next(&r, &h, &lz4, &len);
		if (got < 0)
			return;
		if (got && (!inside(lz4, len, data, size) || len > MSG_PAGE_MAX_LZ4))
			abort();
	}
}

static void plain(const char *name)
{
	if (!name[0] || name[0] == '.' || strchr(name, '/'))
		abort();
}

static void file_request(const uint8_t *data, size_t size)
{
	struct msg_file_request q, again;
	struct wire_msg m = as_msg(WIRE_FILE_REQUEST, data, size);
	if (!msg__file_request_parse(&m, &q))
		return;
	plain(q.name);
	struct wire_writer w = { .ok = true };
	msg__file_request_write(&w, &q);
	m = as_msg(WIRE_FILE_REQUEST, w.buf, w.len);
	if (!w.ok || !msg__file_request_parse(&m, &again) || again.tag != q.tag ||
	    again.offset != q.offset || strcmp(again.name, q.name))
		abort();
	wire_writer__free(&w);
}

static void file_data(const uint8_t *data, size_t size)
{
	struct msg_file_data d, again;
	struct wire_msg m = as_msg(WIRE_FILE_DATA, data, size);
	if (!msg__file_data_parse(&m, &d))
		return;
	if (!inside(d.bytes, d.len, data, size) || d.offset > d.size || d.len > d.size - d.offset)
		abort();
	struct wire_writer w = { .ok = true };
	msg__file_data_write(&w, &d);
	m = as_msg(WIRE_FILE_DATA, w.buf, w.len);
	if (!w.ok || !msg__file_data_parse(&m, &again) || again.tag != d.tag ||
	    again.missing != d.missing || again.size != d.size || again.offset != d.offset ||
	    again.len != d.len || memcmp(again.bytes, d.bytes, d.len))
		abort();
	wire_writer__free(&w);
}

static void output(const uint8_t *data, size_t size)
{
	struct msg_output o, again;
	struct wire_msg m = as_msg(WIRE_OUTPUT, data, size);
	if (!msg__output_parse(&m, &o))
		return;
	plain(o.name);
	if (!inside(o.bytes, o.len, data, size) || o.kind >= MSG_OUTPUT__COUNT ||
	    o.offset > o.size || o.len > o.size - o.offset)
		abort();
	struct wire_writer w = { .ok = true };
	msg__output_write(&w, &o);
	m = as_msg(WIRE_OUTPUT, w.buf, w.len);
	if (!w.ok || !msg__output_parse(&m, &again) || again.interval != o.interval ||
	    again.kind != o.kind || strcmp(again.name, o.name) || again.size != o.size ||
	    again.offset != o.offset || again.len != o.len ||
	    memcmp(again.bytes, o.bytes, o.len))
		abort();
	wire_writer__free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hello(data, size);
	assign(data, size);
	result(data, size);
	page_request(data, size);
	page_data(data, size);
	file_request(data, size);
	file_data(data, size);
	output(data, size);
	return 0;
}
