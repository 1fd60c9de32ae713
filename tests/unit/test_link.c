/* distributor/link: wire frames over ZeroMQ between a listening
 * coordinator and a connecting node; hostile frames from a raw socket
 * (garbage, another key, a replay, a multi-part message) are counted and
 * dropped, and the good one behind them still arrives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "distributor.h"

#define WAIT_MS 10000 /* a bound for a broken test, not a timing assertion */

static char err[512];

static void test_exchange_and_hostile(void **state)
{
	struct wire_key key, other;
	char endpoint[64];
	struct wire_msg m;
	(void)state;
	snprintf(endpoint, sizeof(endpoint), "ipc:///tmp/test_link.%d", (int)getpid());
	assert_int_equal(wire_key__from_secret(&key, "the secret of this test run"), 0);
	assert_int_equal(wire_key__from_secret(&other, "somebody else's secret text"), 0);

	struct link *coord = link__listen(endpoint, &key, 0, err, sizeof(err));
	assert_non_null(coord);
	struct link *node = link__connect(endpoint, &key, 5, err, sizeof(err));
	assert_non_null(node);
	assert_int_not_equal(link__send(coord, 5, WIRE_WELCOME, "x", 1, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "not heard from"));

	assert_int_equal(link__send(node, 0, WIRE_HELLO, "node 5", 6, err, sizeof(err)), 0);
	assert_int_equal(link__recv(coord, &m, WAIT_MS, err, sizeof(err)), 1);
	assert_int_equal(m.type, WIRE_HELLO);
	assert_int_equal(m.sender, 5);
	assert_memory_equal(m.payload, "node 5", 6);
	assert_int_equal(link__send(coord, 5, WIRE_WELCOME, "ok", 2, err, sizeof(err)), 0);
	assert_int_equal(link__recv(node, &m, WAIT_MS, err, sizeof(err)), 1);
	assert_int_equal(m.type, WIRE_WELCOME);
	assert_int_equal(m.sender, 0);

	/* a raw socket sends what no link would */
	void *ctx = zmq_ctx_new(), *raw = zmq_socket(ctx, ZMQ_DEALER);
	int linger = 0;
	zmq_setsockopt(raw, ZMQ_LINGER, &linger, sizeof(linger));
	assert_int_equal(zmq_connect(raw, endpoint), 0);
	uint8_t frame[256];
	struct wire_msg hello = { .type = WIRE_HELLO, .sender = 5, .seq = 1,
				  .payload = (const uint8_t *)"node 5", .len = 6 };
	size_t n;
	assert_int_equal(zmq_send(raw, "garbage that is no frame at all, 48 bytes long!", 48, 0), 48);
	n = wire__encode(&other, &(struct wire_msg){ .type = WIRE_HELLO, .sender = 9, .seq = 1 },
			 frame, sizeof(frame));
	assert_int_equal(zmq_send(raw, frame, n, 0), (int)n);  /* another key */
	n = wire__encode(&key, &hello, frame, sizeof(frame));
	assert_int_equal(zmq_send(raw, frame, n, 0), (int)n);  /* a replay */
	assert_int_equal(zmq_send(raw, frame, n, ZMQ_SNDMORE), (int)n);
	assert_int_equal(zmq_send(raw, frame, n, 0), (int)n);  /* two parts */
	n = wire__encode(&key, &(struct wire_msg){ .type = WIRE_HEARTBEAT, .sender = 9, .seq = 1 },
			 frame, sizeof(frame));
	assert_int_equal(zmq_send(raw, frame, n, 0), (int)n);  /* good */
	assert_int_equal(link__recv(coord, &m, WAIT_MS, err, sizeof(err)), 1);
	assert_int_equal(m.type, WIRE_HEARTBEAT);
	assert_int_equal(m.sender, 9);
	const struct wire_guard *g = link__guard(coord);
	assert_int_equal(g->counts[WIRE_OK], 2);
	assert_int_equal(g->counts[WIRE_SHORT], 1);     /* the garbage */
	assert_int_equal(g->counts[WIRE_BAD_MAC], 1);
	assert_int_equal(g->counts[WIRE_REPLAYED], 1);
	assert_int_equal(g->counts[WIRE_OVERSIZED], 1);
	/* and the coordinator answers the new peer where it came from */
	assert_int_equal(link__send(coord, 9, WIRE_WELCOME, "", 0, err, sizeof(err)), 0);
	zmq_pollitem_t item = { .socket = raw, .events = ZMQ_POLLIN };
	assert_int_equal(zmq_poll(&item, 1, WAIT_MS), 1);
	assert_true(zmq_recv(raw, frame, sizeof(frame), 0) > 0);
	assert_int_equal(wire__decode(&key, frame, wire__frame_size(0), &m), WIRE_OK);
	assert_int_equal(m.type, WIRE_WELCOME);

	zmq_close(raw);
	zmq_ctx_term(ctx);
	link__close(node);
	link__close(coord);
	unlink(endpoint + strlen("ipc://"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exchange_and_hostile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
