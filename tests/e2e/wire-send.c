/* Sends hostile traffic to a listening simuboost socket (a coordinator, or
 * a node's or the vnode's page server), for tests/e2e/hostile.sh:
 *   wire-send ENDPOINT SECRET_FILE
 * random bytes, truncated and oversized frames, a length that lies, frames
 * under another secret, of another version, of an unknown type, a replayed
 * frame, a message in several parts, and authentic messages whose payloads
 * are malformed (HELLO, RESULT, PAGE_REQUEST, FILE_REQUEST of a path or a
 * pack, OUTPUT named "/") or name an interval never assigned, and a
 * stranger's well-formed FILE_REQUEST and OUTPUT. Prints one line per kind with how many frames it sent, and
 * what came back (a page server answers a page request it can parse). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

#include "distributor.h"

#define SENDER 4242u /* no node of the run has this id */

struct out {
	void *sock;
	struct wire_key key, wrong;
	uint64_t seq;
	unsigned sent;
};

static void raw(struct out *o, const void *buf, size_t len)
{
	if (zmq_send(o->sock, buf, len, 0) >= 0)
		o->sent++;
}

/* An authentic frame (or under key k) into buf; its size. */
static size_t frame(struct out *o, const struct wire_key *k, enum wire_type type,
		    const void *payload, uint32_t len, uint8_t *buf, size_t cap)
{
	struct wire_msg m = { .type = type, .sender = SENDER, .seq = ++o->seq,
			      .payload = payload, .len = len };
	return wire__encode(k, &m, buf, cap);
}

static void kind(struct out *o, const char *name)
{
	printf("%-28s %u\n", name, o->sent);
	o->sent = 0;
}

int main(int argc, char **argv)
{
	static uint8_t buf[1 << 16];
	char secret[256] = "";
	struct out o = { .seq = 1000 };
	if (argc != 3) {
		fprintf(stderr, "usage: wire-send ENDPOINT SECRET_FILE\n");
		return 2;
	}
	FILE *f = fopen(argv[2], "r");
	if (!f || !fgets(secret, sizeof(secret), f)) {
		fprintf(stderr, "wire-send: %s: cannot read\n", argv[2]);
		return 2;
	}
	fclose(f);
	secret[strcspn(secret, "\n")] = '\0';
	if (wire_key__from_secret(&o.key, secret) != 0 ||
	    wire_key__from_secret(&o.wrong, "not the secret of this run at all") != 0)
		return 2;
	void *ctx = zmq_ctx_new();
	o.sock = zmq_socket(ctx, ZMQ_DEALER);
	int linger = 2000;
	zmq_setsockopt(o.sock, ZMQ_LINGER, &linger, sizeof(linger));
	if (zmq_connect(o.sock, argv[1]) != 0) {
		fprintf(stderr, "wire-send: %s: %s\n", argv[1], zmq_strerror(zmq_errno()));
		return 1;
	}
	srand(42);

	for (int i = 0; i < 50; i++) {
		size_t n = (size_t)(rand() % 300);
		for (size_t j = 0; j < n; j++)
			buf[j] = (uint8_t)rand();
		raw(&o, buf, n);
	}
	kind(&o, "random");

	size_t n = frame(&o, &o.key, WIRE_HEARTBEAT, NULL, 0, buf, sizeof(buf));
	for (size_t cut = 0; cut < n; cut += 7)
		raw(&o, buf, cut);
	kind(&o, "truncated");

	uint8_t payload[64] = { 0 };
	n = frame(&o, &o.key, WIRE_HEARTBEAT, payload, sizeof(payload), buf, sizeof(buf));
	uint32_t lie = sizeof(payload) + 1000;
	memcpy(buf + 12, &lie, 4); /* the length field claims more than there is */
	raw(&o, buf, n);
	lie = WIRE_MAX_PAYLOAD + 1;
	memcpy(buf + 12, &lie, 4);
	raw(&o, buf, n);
	n = frame(&o, &o.key, WIRE_HEARTBEAT, payload, sizeof(payload), buf, sizeof(buf));
	memset(buf + n, 0, 100);
	raw(&o, buf, n + 100); /* longer than its length field */
	kind(&o, "oversized or lying length");

	n = frame(&o, &o.wrong, WIRE_HELLO, NULL, 0, buf, sizeof(buf));
	raw(&o, buf, n);
	n = frame(&o, &o.wrong, WIRE_RESULT, payload, sizeof(payload), buf, sizeof(buf));
	raw(&o, buf, n);
	kind(&o, "wrong secret");

	n = frame(&o, &o.key, WIRE_HEARTBEAT, NULL, 0, buf, sizeof(buf));
	buf[4] = 99; /* another version, authentic: the MAC made again */
	crypto_auth_hmacsha256(buf + WIRE_HEADER_SIZE, buf, WIRE_HEADER_SIZE, o.key.bytes);
	raw(&o, buf, n);
	n = frame(&o, &o.key, (enum wire_type)77, NULL, 0, buf, sizeof(buf));
	raw(&o, buf, n);
	n = frame(&o, &o.key, WIRE_HEARTBEAT, NULL, 0, buf, sizeof(buf));
	buf[0] = 'X'; /* magic */
	raw(&o, buf, n);
	kind(&o, "bad version, type or magic");

	n = frame(&o, &o.key, WIRE_HEARTBEAT, NULL, 0, buf, sizeof(buf));
	raw(&o, buf, n);
	raw(&o, buf, n);
	raw(&o, buf, n);
	kind(&o, "replayed (sent 3 times)");

	n = frame(&o, &o.key, WIRE_HEARTBEAT, NULL, 0, buf, sizeof(buf));
	if (zmq_send(o.sock, buf, n, ZMQ_SNDMORE) >= 0 && zmq_send(o.sock, buf, n, 0) >= 0)
		o.sent++;
	kind(&o, "two-part message");

	/* authentic, malformed */
	uint8_t junk[40];
	memset(junk, 0xee, sizeof(junk));
	struct wire_writer w = { .ok = true };
	n = frame(&o, &o.key, WIRE_HELLO, junk, sizeof(junk), buf, sizeof(buf));
	raw(&o, buf, n);
	n = frame(&o, &o.key, WIRE_RESULT, junk, sizeof(junk), buf, sizeof(buf));
	raw(&o, buf, n);
	n = frame(&o, &o.key, WIRE_PAGE_REQUEST, junk, sizeof(junk), buf, sizeof(buf));
	raw(&o, buf, n);
	wire_writer__u32(&w, 7);
	wire_writer__u8(&w, 0);
	wire_writer__u32(&w, PAGE_MAX_REQUEST + 1); /* more hashes than allowed */
	n = frame(&o, &o.key, WIRE_PAGE_REQUEST, w.buf, w.len, buf, sizeof(buf));
	raw(&o, buf, n);
	wire_writer__free(&w);
	/* file names that leave the recording's directory, or are no file of it */
	static const char *const names[] = { "../schedule", "/etc/passwd", "000001.pack" };
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		w = (struct wire_writer){ .ok = true };
		wire_writer__u32(&w, 1);
		wire_writer__blob(&w, names[i], (uint32_t)strlen(names[i]));
		wire_writer__u64(&w, 0);
		n = frame(&o, &o.key, WIRE_FILE_REQUEST, w.buf, w.len, buf, sizeof(buf));
		raw(&o, buf, n);
		wire_writer__free(&w);
	}
	w = (struct wire_writer){ .ok = true };
	msg__output_write(&w, &(struct msg_output){ .interval = 0, .name = "x", .len = 0 });
	memcpy(w.buf + 9, "/", 1); /* the name "/" */
	n = frame(&o, &o.key, WIRE_OUTPUT, w.buf, w.len, buf, sizeof(buf));
	raw(&o, buf, n);
	wire_writer__free(&w);
	kind(&o, "malformed payloads");

	/* authentic and well formed, but meaningless: a result for an interval
	 * never assigned, a page that does not exist */
	const char *res = "{\"interval\":999999,\"verdict\":\"exact\"}";
	w = (struct wire_writer){ .ok = true };
	msg__result_write(&w, &(struct msg_result){ .interval = 999999, .ran = true,
						    .json = (const uint8_t *)res,
						    .len = (uint32_t)strlen(res) });
	n = frame(&o, &o.key, WIRE_RESULT, w.buf, w.len, buf, sizeof(buf));
	raw(&o, buf, n);
	wire_writer__free(&w);
	struct ckpt_hash nowhere = { 0x1234, 0x5678 };
	w = (struct wire_writer){ .ok = true };
	msg__page_request_write(&w, 1, 0, &nowhere, NULL, 1);
	n = frame(&o, &o.key, WIRE_PAGE_REQUEST, w.buf, w.len, buf, sizeof(buf));
	raw(&o, buf, n);
	wire_writer__free(&w);
	/* a stranger's: the recording's metadata, an output of an interval */
	w = (struct wire_writer){ .ok = true };
	msg__file_request_write(&w, &(struct msg_file_request){ .tag = 2, .name = "recording.meta" });
	n = frame(&o, &o.key, WIRE_FILE_REQUEST, w.buf, w.len, buf, sizeof(buf));
	raw(&o, buf, n);
	wire_writer__free(&w);
	w = (struct wire_writer){ .ok = true };
	msg__output_write(&w, &(struct msg_output){ .interval = 0, .name = "schedule", .size = 2,
						    .bytes = (const uint8_t *)"{}", .len = 2 });
	n = frame(&o, &o.key, WIRE_OUTPUT, w.buf, w.len, buf, sizeof(buf));
	raw(&o, buf, n);
	wire_writer__free(&w);
	kind(&o, "unassigned result, no page, a stranger's file request and output");

	/* a page server answers the one request it could parse */
	zmq_pollitem_t item = { .socket = o.sock, .events = ZMQ_POLLIN };
	int answers = 0;
	while (zmq_poll(&item, 1, 1000) > 0 && zmq_recv(o.sock, buf, sizeof(buf), 0) >= 0)
		answers++;
	printf("%-28s %d\n", "answers", answers);
	zmq_close(o.sock);
	zmq_ctx_term(ctx);
	return 0;
}
