/* Links: wire frames over ZeroMQ sockets, see distributor.h. A listening
 * link is a ROUTER: each incoming message is [peer identity][frame], and
 * the identity a sender id last came from (once its frame was authentic)
 * is where replies to it go. A connecting link is a DEALER: [frame]. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "distributor.h"

#define MAX_PEERS 1024
#define MAX_IDENTITY 256

struct link {
	void *ctx, *sock;
	bool router;
	struct wire_key key;
	uint32_t self;
	uint64_t seq;                   /* of the last frame sent */
	struct wire_guard guard;
	zmq_msg_t last;                 /* the frame the caller's message points into */
	bool have_last;
	uint8_t *out;                   /* encoding buffer */
	size_t out_cap;
	uint32_t npeers;
	struct {
		uint32_t id;
		uint8_t identity[MAX_IDENTITY];
		size_t len;
	} peers[MAX_PEERS];
};

static struct link *open_link(const char *endpoint, const struct wire_key *key, uint32_t self,
			      bool router, char *err, size_t errlen)
{
	struct link *l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, "%s: out of memory", endpoint);
		return NULL;
	}
	l->router = router;
	l->key = *key;
	l->self = self;
	/* sequence numbers from the clock: a process that restarts under the
	 * same sender id goes on above the numbers it used before */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	l->seq = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	wire_guard__init(&l->guard);
	l->ctx = zmq_ctx_new();
	l->sock = l->ctx ? zmq_socket(l->ctx, router ? ZMQ_ROUTER : ZMQ_DEALER) : NULL;
	int linger = 0, mandatory = 1;
	int64_t max = (int64_t)wire__frame_size(WIRE_MAX_PAYLOAD);
	if (!l->sock || zmq_setsockopt(l->sock, ZMQ_LINGER, &linger, sizeof(linger)) != 0 ||
	    /* ZeroMQ drops (and disconnects) a peer that sends more */
	    zmq_setsockopt(l->sock, ZMQ_MAXMSGSIZE, &max, sizeof(max)) != 0 ||
	    (router &&
	     zmq_setsockopt(l->sock, ZMQ_ROUTER_MANDATORY, &mandatory, sizeof(mandatory)) != 0) ||
	    (router ? zmq_bind(l->sock, endpoint) : zmq_connect(l->sock, endpoint)) != 0) {
		snprintf(err, errlen, "%s: %s", endpoint, zmq_strerror(zmq_errno()));
		link__close(l);
		return NULL;
	}
	return l;
}

struct link *link__listen(const char *endpoint, const struct wire_key *key, uint32_t self,
			  char *err, size_t errlen)
{
	return open_link(endpoint, key, self, true, err, errlen);
}

struct link *link__connect(const char *endpoint, const struct wire_key *key, uint32_t self,
			   char *err, size_t errlen)
{
	return open_link(endpoint, key, self, false, err, errlen);
}

int link__send(struct link *l, uint32_t to, enum wire_type type, const void *payload,
	       uint32_t len, char *err, size_t errlen)
{
	size_t need = wire__frame_size(len);
	if (len > WIRE_MAX_PAYLOAD) {
		snprintf(err, errlen, "%s message of %u bytes: above the limit", wire_type__name(type),
			 len);
		return -1;
	}
	if (need > l->out_cap) {
		uint8_t *b = realloc(l->out, need);
		if (!b) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		l->out = b;
		l->out_cap = need;
	}
	struct wire_msg m = { .type = type, .sender = l->self, .seq = ++l->seq,
			      .payload = payload, .len = len };
	size_t n = wire__encode(&l->key, &m, l->out, l->out_cap);
	if (l->router) {
		uint32_t i = 0;
		while (i < l->npeers && l->peers[i].id != to)
			i++;
		if (i == l->npeers) {
			snprintf(err, errlen, "peer %u: not heard from", to);
			return -1;
		}
		if (zmq_send(l->sock, l->peers[i].identity, l->peers[i].len, ZMQ_SNDMORE) < 0)
			goto fail;
	}
	if (zmq_send(l->sock, l->out, n, 0) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "%s to %u: %s", wire_type__name(type), to,
		 zmq_strerror(zmq_errno()));
	return -1;
}

/* Remembers where sender's frames come from. */
static void note_peer(struct link *l, uint32_t sender, const void *identity, size_t len)
{
	uint32_t i = 0;
	while (i < l->npeers && l->peers[i].id != sender)
		i++;
	if (i == MAX_PEERS || len > MAX_IDENTITY)
		return;
	if (i == l->npeers)
		l->npeers++;
	l->peers[i].id = sender;
	memcpy(l->peers[i].identity, identity, len);
	l->peers[i].len = len;
}

int link__recv(struct link *l, struct wire_msg *m, int timeout_ms, char *err, size_t errlen)
{
	zmq_pollitem_t item = { .socket = l->sock, .events = ZMQ_POLLIN };
	for (;;) {
		int rc = zmq_poll(&item, 1, timeout_ms);
		if (rc < 0) {
			if (zmq_errno() == EINTR)
				continue;
			snprintf(err, errlen, "poll: %s", zmq_strerror(zmq_errno()));
			return -1;
		}
		if (rc == 0)
			return 0;
		/* a message: [identity] frame, maybe with parts no one sends */
		zmq_msg_t identity;
		zmq_msg_init(&identity);
		if (l->router && zmq_msg_recv(&identity, l->sock, 0) < 0) {
			zmq_msg_close(&identity);
			continue;
		}
		if (l->have_last)
			zmq_msg_close(&l->last);
		zmq_msg_init(&l->last);
		l->have_last = true;
		bool bad = zmq_msg_recv(&l->last, l->sock, 0) < 0;
		/* one frame per message: more parts make it malformed */
		int more = !bad && zmq_msg_more(&l->last);
		bad |= more;
		while (more) {
			zmq_msg_t extra;
			zmq_msg_init(&extra);
			more = zmq_msg_recv(&extra, l->sock, 0) >= 0 && zmq_msg_more(&extra);
			zmq_msg_close(&extra);
		}
		enum wire_verdict v = WIRE_OVERSIZED;
		if (bad)
			l->guard.counts[WIRE_OVERSIZED]++;
		else
			v = wire_guard__accept(&l->guard, &l->key, zmq_msg_data(&l->last),
					       zmq_msg_size(&l->last), m);
		if (v == WIRE_OK && l->router)
			note_peer(l, m->sender, zmq_msg_data(&identity), zmq_msg_size(&identity));
		zmq_msg_close(&identity);
		if (v == WIRE_OK)
			return 1;
		/* refused: counted by the guard, and dropped */
	}
}

int link__endpoint(const struct link *l, char *out, size_t len, char *err, size_t errlen)
{
	size_t n = len;
	if (zmq_getsockopt(l->sock, ZMQ_LAST_ENDPOINT, out, &n) != 0) {
		snprintf(err, errlen, "bound endpoint: %s", zmq_strerror(zmq_errno()));
		return -1;
	}
	return 0;
}

const struct wire_guard *link__guard(const struct link *l)
{
	return &l->guard;
}

void link__close(struct link *l)
{
	if (!l)
		return;
	if (l->have_last)
		zmq_msg_close(&l->last);
	if (l->sock)
		zmq_close(l->sock);
	if (l->ctx)
		zmq_ctx_term(l->ctx);
	free(l->out);
	free(l);
}
