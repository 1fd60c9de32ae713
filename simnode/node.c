/* A simulation node in a distributed run: joins a coordinator, takes the
 * run's settings, and replays each interval it is assigned here, with the
 * same driver as `simuboost replay` (replay.c), answering with the
 * interval's result. Its guests' RAM is demand-paged from its peers
 * (distributor.h's pages), or on the vnode's host from the recording
 * itself: the node keeps what it fetched and serves it to the others on
 * its own page server. */
#include <arpa/inet.h>
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "distributor.h"
#include "node-files.h"
#include "simnode.h"

#define MAX_SPECS 16
/* A coordinator silent this long is gone for good: the node ends. */
#define SILENCE_S (24 * 3600)
/* An idle node that has heard nothing for this long says HELLO again: a
 * coordinator that restarted (`simulate --resume` on the same endpoint)
 * does not know it, and one that knows it just welcomes it again. */
#define REJOIN_MS 5000

/* A list of plugin specs from the settings, into specs[MAX_SPECS]. */
static int spec_list(json_t *list, const char **specs, unsigned *n, const char *what, char *err,
		     size_t errlen)
{
	json_t *v;
	size_t i;
	json_array_foreach(list, i, v) {
		if (i == MAX_SPECS || !json_is_string(v)) {
			snprintf(err, errlen, "bad %s in the coordinator's settings", what);
			return -1;
		}
		specs[(*n)++] = json_string_value(v);
	}
	return 0;
}

/* The run's settings, as the coordinator's WELCOME carries them. */
static int settings(json_t *doc, struct simnode_replay_options *o, const char **specs,
		    const char **qemu_specs, char *err, size_t errlen)
{
	*o = (struct simnode_replay_options){ .jobs = 1, .timeout_s = 3600 };
	o->recording = json_string_value(json_object_get(doc, "recording"));
	if (!o->recording) {
		snprintf(err, errlen, "the coordinator's settings name no recording");
		return -1;
	}
	o->trace_dir = json_string_value(json_object_get(doc, "trace_dir"));
	o->analysis_dir = json_string_value(json_object_get(doc, "analysis_dir"));
	o->qemu = json_string_value(json_object_get(doc, "qemu"));
	o->budget = (uint64_t)json_integer_value(json_object_get(doc, "budget"));
	o->no_prefetch = json_is_true(json_object_get(doc, "no_prefetch"));
	o->materialize = json_is_true(json_object_get(doc, "materialize"));
	if (json_is_number(json_object_get(doc, "timeout_s")))
		o->timeout_s = json_number_value(json_object_get(doc, "timeout_s"));
	o->qemu_plugin_dir = json_string_value(json_object_get(doc, "qemu_plugin_dir"));
	if (spec_list(json_object_get(doc, "analyses"), specs, &o->nanalyses, "analyses", err,
		      errlen) != 0 ||
	    spec_list(json_object_get(doc, "qemu_plugins"), qemu_specs, &o->nqemu_plugins,
		      "QEMU plugins", err, errlen) != 0)
		return -1;
	o->analyses = specs;
	o->qemu_plugins = qemu_specs;
	return 0;
}

/* Where this node serves pages when not told: beside the coordinator's
 * socket for ipc, else a free port on the address that reaches it. */
static int default_page_endpoint(const char *join, char *out, size_t len, char *err,
				 size_t errlen)
{
	if (!strncmp(join, "ipc://", 6)) {
		snprintf(out, len, "ipc:///tmp/simuboost-pages.%d", (int)getpid());
		return 0;
	}
	char host[256];
	const char *p = strncmp(join, "tcp://", 6) ? NULL : join + 6;
	const char *colon = p ? strrchr(p, ':') : NULL;
	if (!colon || (size_t)(colon - p) >= sizeof(host)) {
		snprintf(err, errlen, "%s: say where to serve pages (--serve)", join);
		return -1;
	}
	memcpy(host, p, (size_t)(colon - p));
	host[colon - p] = '\0';
	/* the local address of a route to the coordinator (a UDP connect
	 * sends nothing) */
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_DGRAM }, *ai = NULL;
	struct sockaddr_in local;
	socklen_t ll = sizeof(local);
	int fd = -1, rc = -1;
	if (getaddrinfo(host, colon + 1, &hints, &ai) == 0 &&
	    (fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) >= 0 &&
	    connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
	    getsockname(fd, (struct sockaddr *)&local, &ll) == 0) {
		char addr[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &local.sin_addr, addr, sizeof(addr));
		snprintf(out, len, "tcp://%s:*", addr);
		rc = 0;
	} else {
		snprintf(err, errlen, "%s: no route to the coordinator's host to serve pages on",
			 join);
	}
	if (fd >= 0)
		close(fd);
	if (ai)
		freeaddrinfo(ai);
	return rc;
}

/* The node's pages: its cache, its server, and its clients: one that asks
 * each page's home (for faults), one that asks only the vnode (for its
 * server's fetch-through, which must not wait on another node). */
struct node_pages {
	struct page_cache *cache;
	struct page_client *client, *upstream;
	struct page_server *server;
};

static int fetch_by_hash(void *ctx, const struct ckpt_hash *h, unsigned n, uint8_t *out,
			 char *err, size_t errlen)
{
	struct node_pages *np = ctx;
	return page_client__get(np->client, h, n, out, err, errlen);
}

static void node_pages__stop(struct node_pages *np)
{
	page_server__stop(np->server, NULL);
	page_client__free(np->client);
	page_client__free(np->upstream);
	page_cache__free(np->cache);
}

static int node_pages__start(struct node_pages *np, const char *join, const char *serve,
			     const struct wire_key *key, uint32_t id, uint64_t cache_bytes,
			     char *err, size_t errlen)
{
	char ep[PAGE_ENDPOINT_MAX];
	*np = (struct node_pages){ 0 };
	if (!serve) {
		if (default_page_endpoint(join, ep, sizeof(ep), err, errlen) != 0)
			return -1;
		serve = ep;
	}
	np->cache = page_cache__new(cache_bytes);
	np->client = np->cache ? page_client__new(key, id, np->cache) : NULL;
	np->upstream = np->cache ? page_client__new(key, id, np->cache) : NULL;
	if (!np->client || !np->upstream) {
		snprintf(err, errlen, "out of memory");
		node_pages__stop(np);
		return -1;
	}
	struct page_server_options so = { .endpoint = serve, .key = key, .self = id,
					  .cache = np->cache, .upstream = np->upstream };
	np->server = page_server__start(&so, err, errlen);
	if (!np->server) {
		node_pages__stop(np);
		return -1;
	}
	return 0;
}

struct peer_bytes {
	uint32_t id[PAGE_MAX_PEERS];
	uint64_t bytes[PAGE_MAX_PEERS];
	unsigned n;
};

static void note_peer_bytes(void *ctx, uint32_t peer, uint64_t bytes)
{
	struct peer_bytes *pb = ctx;
	if (pb->n < PAGE_MAX_PEERS) {
		pb->id[pb->n] = peer;
		pb->bytes[pb->n++] = bytes;
	}
}

/* What the interval's pages cost: bytes from each peer, cache hits. */
static json_t *pages_result(struct node_pages *np, bool read_recording,
			    const struct peer_bytes *before, const struct page_client_stats *sb)
{
	struct peer_bytes after = { .n = 0 };
	struct page_client_stats sa;
	page_client__stats(np->client, &sa, note_peer_bytes, &after);
	json_t *from = json_object();
	for (unsigned i = 0; i < after.n; i++) {
		uint64_t was = 0;
		for (unsigned j = 0; j < before->n; j++)
			if (before->id[j] == after.id[i])
				was = before->bytes[j];
		if (after.bytes[i] > was) {
			char key[16];
			snprintf(key, sizeof(key), "%u", after.id[i]);
			json_object_set_new(from, key, json_integer((json_int_t)(after.bytes[i] - was)));
		}
	}
	struct page_server_stats ss;
	page_server__stats(np->server, &ss);
	uint64_t held, bytes, evicted;
	page_cache__stats(np->cache, &held, &bytes, &evicted);
	return json_pack("{s:s, s:o, s:I, s:I, s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:o}}",
			 "source", read_recording ? "recording" : "peers", "bytes_from", from,
			 "cache_hits", (json_int_t)(sa.cache_hits - sb->cache_hits), "peers_lost",
			 (json_int_t)(sa.peers_lost - sb->peers_lost),
			 "cache", "pages", (json_int_t)held, "bytes", (json_int_t)bytes,
			 "evicted", (json_int_t)evicted,
			 "served", "bytes",
			 (json_int_t)ss.sent_bytes, "pages", (json_int_t)ss.sent_pages, "malformed",
			 (json_int_t)ss.malformed, "refused", wire__refusals_json(ss.refused));
}

struct heartbeat {
	struct link *link;
	double last;
};

/* While an interval replays: HEARTBEAT each second, so that the
 * coordinator can tell a busy node from a dead one. */
static void beat(void *opaque)
{
	struct heartbeat *hb = opaque;
	struct timespec ts;
	char err[256];
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	if (now - hb->last < 1.0)
		return;
	hb->last = now;
	if (link__send(hb->link, 0, WIRE_HEARTBEAT, NULL, 0, err, sizeof(err)) != 0)
		fprintf(stderr, "simnode: heartbeat: %s\n", err);
}

int simnode__serve(const struct simnode_serve_options *so, char *err, size_t errlen)
{
	const char *endpoint = so->join;
	uint32_t id = so->id;
	struct simnode_replay_options o;
	const char *specs[MAX_SPECS], *qemu_specs[MAX_SPECS];
	struct node_pages np;
	struct msg_assign assign;
	json_t *doc = NULL;
	struct wire_msg m;
	int rc = -1;

	if (node_pages__start(&np, endpoint, so->serve, so->key, id, so->cache_bytes, err,
			      errlen) != 0)
		return -1;
	struct node_files *files = node_files__new(so->work_dir, so->read_recording);
	struct link *l = files ? link__connect(endpoint, so->key, id, err, errlen) : NULL;
	if (!l) {
		if (!files)
			snprintf(err, errlen, "out of memory");
		node_files__free(files);
		node_pages__stop(&np);
		return -1;
	}
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	/* HELLO: where this node serves pages */
	struct wire_writer hello = { .ok = true };
	msg__hello_write(&hello, page_server__endpoint(np.server));
	if (!hello.ok || link__send(l, 0, WIRE_HELLO, hello.buf, hello.len, err, errlen) != 0)
		goto out;
	unsigned silent_ms = 0;
	for (;;) {
		int got = link__recv(l, &m, REJOIN_MS, err, errlen);
		if (got < 0)
			goto out;
		if (got == 0) {
			silent_ms += REJOIN_MS;
			if (silent_ms >= SILENCE_S * 1000u) {
				snprintf(err, errlen, "%s: the coordinator has been silent for %d s",
					 endpoint, SILENCE_S);
				goto out;
			}
			if (link__send(l, 0, WIRE_HELLO, hello.buf, hello.len, err, errlen) != 0)
				goto out;
			continue;
		}
		silent_ms = 0;
		if (m.type == WIRE_BYE)
			break;
		if (m.type == WIRE_WELCOME) {
			json_t *was = doc;
			doc = json_loadb((const char *)m.payload, m.len, 0, NULL);
			if (!doc || settings(doc, &o, specs, qemu_specs, err, errlen) != 0) {
				if (!doc)
					snprintf(err, errlen, "the coordinator's settings are not JSON");
				json_decref(was);
				goto out;
			}
			/* welcomed again after a HELLO of an idle node: the same run,
			 * whose files are still good */
			if (!was || !json_equal(was, doc))
				node_files__new_run(files);
			json_decref(was);
			continue;
		}
		if (m.type != WIRE_ASSIGN || !doc || !msg__assign_parse(&m, &assign))
			continue; /* nothing a node acts on */
		uint32_t k = assign.interval;
		struct page_peer vnode[1];
		unsigned nvnode = 0;
		for (unsigned i = 0; i < assign.npeers && !nvnode; i++)
			if (assign.peers[i].id == PAGE_VNODE_ID)
				vnode[nvnode++] = assign.peers[i];
		page_client__set_peers(np.client, assign.peers, assign.npeers);
		page_client__set_peers(np.upstream, vnode, nvnode);
		struct peer_bytes before = { .n = 0 };
		struct page_client_stats sb;
		page_client__stats(np.client, &sb, note_peer_bytes, &before);
		char rerr[1024];
		/* the settings as sent: node_files__prepare may point o elsewhere */
		settings(doc, &o, specs, qemu_specs, err, errlen);
		o.first = k;
		o.last = k + 1;
		/* NULL: from the recording's packs */
		o.page_by_hash = so->read_recording ? NULL : fetch_by_hash;
		o.page_ctx = &np;
		struct heartbeat hb = { .link = l };
		o.tick = beat;
		o.opaque = &hb;
		json_t *res = NULL;
		if (node_files__prepare(files, l, k, &o, beat, &hb, rerr, sizeof(rerr)) == 0 &&
		    (res = simnode__replay(&o, rerr, sizeof(rerr))) &&
		    node_files__send_outputs(files, l, k, rerr, sizeof(rerr)) != 0) {
			json_decref(res);
			res = NULL;
		}
		json_t *one = res ? json_incref(json_array_get(res, 0)) :
				    json_pack("{s:i, s:s, s:s}", "interval", k, "verdict", "error",
					      "detail", rerr);
		json_decref(res);
		json_object_set_new(one, "node", json_integer(id));
		json_object_set_new(one, "host", json_string(host));
		json_object_set_new(one, "recording", json_string(node_files__mode(files)));
		json_object_set_new(one, "pages", pages_result(&np, so->read_recording, &before, &sb));
		const char *verdict = json_string_value(json_object_get(one, "verdict"));
		/* an error is the node's failure, to be retried elsewhere; a
		 * divergence is a result */
		uint8_t ran = verdict && strcmp(verdict, "error") ? 1 : 0;
		char *text = json_dumps(one, JSON_COMPACT);
		json_decref(one);
		struct wire_writer w = { .ok = true };
		msg__result_write(&w, &(struct msg_result){ .interval = k, .ran = ran,
							    .json = (const uint8_t *)text,
							    .len = text ? (uint32_t)strlen(text) : 0 });
		free(text);
		int sent = w.ok ? link__send(l, 0, WIRE_RESULT, w.buf, w.len, err, errlen) : -1;
		wire_writer__free(&w);
		if (sent != 0)
			goto out;
	}
	rc = 0;
out:
	wire_writer__free(&hello);
	json_decref(doc);
	link__close(l);
	node_files__free(files);
	node_pages__stop(&np);
	return rc;
}
