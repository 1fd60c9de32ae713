/* distributor/wire: frames round-trip; anything short, long, foreign,
 * tampered with or replayed is refused and counted by reason; payload
 * fields never read past their message. The file messages name only the
 * recording's own files and plain output names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "distributor.h"

static struct wire_key key, other;

static int setup(void **state)
{
	(void)state;
	if (wire_key__from_secret(&key, "a shared secret of this run") != 0 ||
	    wire_key__from_secret(&other, "another run's shared secret") != 0)
		return -1;
	return 0;
}

static size_t sample(uint8_t *frame, size_t cap, uint64_t seq)
{
	static const char payload[] = "interval 17, checkpoint 18";
	struct wire_msg m = { .type = WIRE_ASSIGN, .sender = 7, .seq = seq,
			      .payload = (const uint8_t *)payload, .len = sizeof(payload) };
	return wire__encode(&key, &m, frame, cap);
}

static void test_round_trip(void **state)
{
	uint8_t frame[256];
	struct wire_msg m;
	(void)state;
	size_t n = sample(frame, sizeof(frame), 1);
	assert_int_equal(n, wire__frame_size(27));
	assert_int_equal(wire__decode(&key, frame, n, &m), WIRE_OK);
	assert_int_equal(m.type, WIRE_ASSIGN);
	assert_int_equal(m.sender, 7);
	assert_int_equal(m.seq, 1);
	assert_int_equal(m.len, 27);
	assert_string_equal((const char *)m.payload, "interval 17, checkpoint 18");
	assert_int_equal(sample(frame, n - 1, 1), 0); /* does not fit */
	assert_int_not_equal(wire_key__from_secret(&other, "short"), 0);
	assert_string_equal(wire_type__name(WIRE_PAGE_DATA), "page-data");
}

static void test_refused(void **state)
{
	uint8_t frame[256], bad[300];
	struct wire_msg m;
	(void)state;
	size_t n = sample(frame, sizeof(frame), 1);

	for (size_t cut = 0; cut < n; cut++)
		assert_int_not_equal(wire__decode(&key, frame, cut, &m), WIRE_OK);
	assert_int_equal(wire__decode(&key, frame, 20, &m), WIRE_SHORT);
	memcpy(bad, frame, n);
	bad[n] = 0;
	assert_int_equal(wire__decode(&key, bad, n + 1, &m), WIRE_OVERSIZED);
	/* every bit of the frame is covered */
	for (size_t i = 0; i < n * 8; i++) {
		memcpy(bad, frame, n);
		bad[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_not_equal(wire__decode(&key, bad, n, &m), WIRE_OK);
	}
	memcpy(bad, frame, n);
	bad[0] = 'X';
	assert_int_equal(wire__decode(&key, bad, n, &m), WIRE_BAD_MAGIC);
	memcpy(bad, frame, n);
	bad[40] ^= 1;
	assert_int_equal(wire__decode(&key, bad, n, &m), WIRE_BAD_MAC);
	assert_int_equal(wire__decode(&other, frame, n, &m), WIRE_BAD_MAC);
	/* a length field above the limit */
	memcpy(bad, frame, n);
	uint32_t huge = WIRE_MAX_PAYLOAD + 1;
	memcpy(bad + 12, &huge, 4);
	assert_int_equal(wire__decode(&key, bad, n, &m), WIRE_OVERSIZED);
	/* authentic, but of another version or an unknown type: the MAC is
	 * made here as a peer with the key would */
	for (int which = 0; which < 2; which++) {
		memcpy(bad, frame, n);
		uint16_t v = which ? WIRE_VERSION + 1 : 999;
		memcpy(bad + (which ? 4 : 6), &v, 2);
		crypto_auth_hmacsha256(bad + n - WIRE_MAC_SIZE, bad, n - WIRE_MAC_SIZE, key.bytes);
		assert_int_equal(wire__decode(&key, bad, n, &m),
				 which ? WIRE_BAD_VERSION : WIRE_UNKNOWN_TYPE);
	}
}

static void test_guard(void **state)
{
	uint8_t f1[256], f2[256], f3[256];
	struct wire_msg m;
	struct wire_guard *g = malloc(sizeof(*g));
	(void)state;
	wire_guard__init(g);
	size_t n1 = sample(f1, sizeof(f1), 1), n2 = sample(f2, sizeof(f2), 2);
	size_t n3 = sample(f3, sizeof(f3), 0);
	assert_int_equal(wire_guard__accept(g, &key, f1, n1, &m), WIRE_OK);
	assert_int_equal(wire_guard__accept(g, &key, f2, n2, &m), WIRE_OK);
	assert_int_equal(wire_guard__accept(g, &key, f1, n1, &m), WIRE_REPLAYED);
	assert_int_equal(wire_guard__accept(g, &key, f2, n2, &m), WIRE_REPLAYED);
	assert_int_equal(wire_guard__accept(g, &key, f3, n3, &m), WIRE_REPLAYED);
	assert_int_equal(wire_guard__accept(g, &other, f1, n1, &m), WIRE_BAD_MAC);
	assert_int_equal(wire_guard__accept(g, &key, f1, 3, &m), WIRE_SHORT);
	assert_int_equal(g->counts[WIRE_OK], 2);
	assert_int_equal(g->counts[WIRE_REPLAYED], 3);
	assert_int_equal(g->counts[WIRE_BAD_MAC], 1);
	assert_int_equal(g->counts[WIRE_SHORT], 1);
	assert_string_equal(wire_verdict__name(WIRE_REPLAYED), "replayed");
	free(g);
}

static void test_fields(void **state)
{
	struct wire_writer w = { .ok = true };
	const uint8_t *blob;
	uint32_t n, u32;
	uint64_t u64;
	uint8_t u8;
	(void)state;
	wire_writer__u8(&w, 9);
	wire_writer__u32(&w, 0xdeadbeef);
	wire_writer__u64(&w, 1ull << 40);
	wire_writer__blob(&w, "page", 4);
	assert_true(w.ok);
	struct wire_msg m = { .payload = w.buf, .len = w.len };
	struct wire_reader r = wire_reader__of(&m);
	assert_true(wire_reader__u8(&r, &u8) && u8 == 9);
	assert_true(wire_reader__u32(&r, &u32) && u32 == 0xdeadbeef);
	assert_true(wire_reader__u64(&r, &u64) && u64 == 1ull << 40);
	assert_true(wire_reader__blob(&r, &blob, &n, 16) && n == 4 && !memcmp(blob, "page", 4));
	assert_true(wire_reader__done(&r));
	/* past the end, and every later field, fails */
	assert_false(wire_reader__u8(&r, &u8));
	assert_false(wire_reader__done(&r));
	/* a blob longer than allowed or than what is left */
	r = wire_reader__of(&m);
	r.p += 13;
	r.left -= 13;
	assert_false(wire_reader__blob(&r, &blob, &n, 3));
	m.len -= 1;
	r = wire_reader__of(&m);
	r.p += 13;
	r.left -= 13;
	assert_false(wire_reader__blob(&r, &blob, &n, 16));
	wire_writer__free(&w);
}

/* A FILE_REQUEST for name, parsed. */
static bool request_parses(const char *name)
{
	struct wire_writer w = { .ok = true };
	wire_writer__u32(&w, 5);
	wire_writer__blob(&w, name, (uint32_t)strlen(name));
	wire_writer__u64(&w, 0);
	struct wire_msg m = { .type = WIRE_FILE_REQUEST, .payload = w.buf, .len = w.len };
	struct msg_file_request q;
	bool ok = msg__file_request_parse(&m, &q) && q.tag == 5 && !strcmp(q.name, name);
	wire_writer__free(&w);
	return ok;
}

/* An OUTPUT named name, parsed. */
static bool output_parses(const char *name)
{
	struct msg_output o = { .interval = 3, .kind = MSG_OUTPUT_STATE, .size = 5,
				.bytes = (const uint8_t *)"state", .len = 5 };
	snprintf(o.name, sizeof(o.name), "%s", name);
	struct wire_writer w = { .ok = true };
	msg__output_write(&w, &o);
	struct wire_msg m = { .type = WIRE_OUTPUT, .payload = w.buf, .len = w.len };
	struct msg_output got;
	bool ok = msg__output_parse(&m, &got) && got.interval == 3 && got.len == 5 &&
		  !strcmp(got.name, name);
	wire_writer__free(&w);
	return ok;
}

static bool data_parses(bool missing, uint64_t size, uint64_t offset, uint32_t len)
{
	static const uint8_t bytes[8] = "abcdefg";
	struct msg_file_data d = { .tag = 1, .missing = missing, .size = size, .offset = offset,
				   .bytes = bytes, .len = len };
	struct wire_writer w = { .ok = true };
	msg__file_data_write(&w, &d);
	struct wire_msg m = { .type = WIRE_FILE_DATA, .payload = w.buf, .len = w.len };
	struct msg_file_data got;
	bool ok = msg__file_data_parse(&m, &got) && got.len == len && got.offset == offset;
	wire_writer__free(&w);
	return ok;
}

static void test_file_messages(void **state)
{
	(void)state;
	assert_true(request_parses("recording.meta"));
	assert_true(request_parses("000017.manifest"));
	assert_true(request_parses("000017.log"));
	assert_false(request_parses("000017.pack")); /* pages travel by hash */
	assert_false(request_parses("../000017.log"));
	assert_false(request_parses("/etc/passwd"));
	assert_false(request_parses("00017.log"));
	assert_false(request_parses("000017.manifest.tmp"));
	assert_true(request_parses("plugin.0")); /* the run's plugins, by number */
	assert_true(request_parses("plugin.12"));
	assert_false(request_parses("plugin."));
	assert_false(request_parses("plugin.01"));
	assert_false(request_parses("plugin.1234"));
	assert_false(request_parses("plugin.1/x"));
	assert_true(output_parses("insn-count.000003-000004.state"));
	assert_true(output_parses("000003.log"));
	assert_false(output_parses("../schedule"));
	assert_false(output_parses("states/x"));
	assert_false(output_parses(".hidden"));
	/* a part of a trace: within its file, or refused */
	struct msg_output part = { .interval = 3, .kind = MSG_OUTPUT_TRACE, .name = "000003.trace",
				   .size = 100, .offset = 96, .bytes = (const uint8_t *)"tail",
				   .len = 4 }, got;
	struct wire_writer w = { .ok = true };
	msg__output_write(&w, &part);
	struct wire_msg m = { .type = WIRE_OUTPUT, .payload = w.buf, .len = w.len };
	assert_true(msg__output_parse(&m, &got) && got.offset == 96 && got.size == 100);
	wire_writer__free(&w);
	part.offset = 97;
	w = (struct wire_writer){ .ok = true };
	msg__output_write(&w, &part);
	m = (struct wire_msg){ .type = WIRE_OUTPUT, .payload = w.buf, .len = w.len };
	assert_false(msg__output_parse(&m, &got));
	wire_writer__free(&w);
	assert_true(data_parses(false, 10, 3, 7));
	assert_true(data_parses(true, 0, 0, 0));
	assert_false(data_parses(false, 10, 4, 7)); /* past the file's end */
	assert_false(data_parses(false, 3, 5, 0));
	assert_false(data_parses(true, 7, 0, 7)); /* a missing file with bytes */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_guard),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_file_messages),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
