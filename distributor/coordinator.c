/* The coordinator of a simulation: see distributor.h. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "distributor.h"

#define MAX_NODES 256
#define POLL_MS 200
/* A node sends HEARTBEAT at least every second while it replays; one
 * silent this long with an interval (killed, or its host gone) is lost. */
#define SILENT_S 15.0

struct node {
	uint32_t id;
	bool busy, gone;
	double heard;                  /* when its last message came */
	char pages[PAGE_ENDPOINT_MAX]; /* where it serves pages; "" if it does not */
	/* an output of its interval that could not be kept (a full disk): its
	 * result is then a failed run */
	char output_lost[300];
};

struct coord {
	const struct coord_options *o;
	uint32_t last;                /* o->last, or more in a recording that grows */
	struct link *link;
	struct sched *sched;
	json_t **results;            /* by interval - first */
	struct node nodes[MAX_NODES];
	unsigned nnodes;
	uint64_t dropped;            /* authentic messages not acted on */
	char err[512];
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct node *node_of(struct coord *c, uint32_t id)
{
	for (unsigned i = 0; i < c->nnodes; i++)
		if (c->nodes[i].id == id)
			return &c->nodes[i];
	return NULL;
}

/* How many of interval k's pages node holds, as far as the coordinator
 * can tell: an interval shares most pages with its neighbours, so the
 * nearer the intervals the node ran, the more. */
static double affinity(void *ctx, uint32_t node, uint32_t k)
{
	struct coord *c = ctx;
	double best = 0;
	for (uint32_t d = 1; d <= 4; d++) {
		uint32_t ran;
		for (int side = -1; side <= 1; side += 2) {
			int64_t j = (int64_t)k + side * (int64_t)d;
			if (j < c->o->first || j >= c->last)
				continue;
			enum sched_state st = sched__state(c->sched, (uint32_t)j, &ran, NULL);
			if ((st == SCHED_DONE || st == SCHED_RUNNING) && ran == node)
				best = best > 1.0 / d ? best : 1.0 / d;
		}
	}
	return best;
}

/* ASSIGN: the interval, then the peers that serve pages: the vnode and
 * every node that is not gone. */
static void write_assign(struct coord *c, struct wire_writer *w, uint32_t k)
{
	struct msg_assign assign = { .interval = k }, *a = &assign;
	if (c->o->pages_endpoint) {
		a->peers[0].id = PAGE_VNODE_ID;
		snprintf(a->peers[0].endpoint, PAGE_ENDPOINT_MAX, "%s", c->o->pages_endpoint);
		a->npeers = 1;
	}
	for (unsigned i = 0; i < c->nnodes && a->npeers < PAGE_MAX_PEERS; i++) {
		const struct node *p = &c->nodes[i];
		if (p->gone || !p->pages[0])
			continue;
		a->peers[a->npeers].id = p->id;
		memcpy(a->peers[a->npeers++].endpoint, p->pages, PAGE_ENDPOINT_MAX);
	}
	msg__assign_write(w, a);
}

/* Gives an idle node its next interval, if one is pending. */
static int feed(struct coord *c, struct node *n)
{
	uint32_t k;
	if (n->busy || n->gone || !sched__next(c->sched, n->id, affinity, c, &k))
		return 0;
	struct wire_writer w = { .ok = true };
	write_assign(c, &w, k);
	int rc = link__send(c->link, n->id, WIRE_ASSIGN, w.buf, w.len, c->err, sizeof(c->err));
	wire_writer__free(&w);
	if (rc != 0) {
		/* unreachable: as good as gone */
		n->gone = true;
		sched__node_lost(c->sched, n->id);
		return 0;
	}
	n->busy = true;
	n->heard = now_s();
	return 1;
}

static void feed_all(struct coord *c)
{
	for (unsigned i = 0; i < c->nnodes; i++)
		feed(c, &c->nodes[i]);
}

static void on_hello(struct coord *c, const struct wire_msg *m)
{
	char pages[PAGE_ENDPOINT_MAX];
	if (!msg__hello_parse(m, pages)) {
		c->dropped++; /* malformed */
		return;
	}
	struct node *n = node_of(c, m->sender);
	if (!n) {
		if (c->nnodes == MAX_NODES)
			return;
		n = &c->nodes[c->nnodes++];
		n->id = m->sender;
	}
	if (n->busy)
		sched__node_lost(c->sched, n->id); /* it restarted: its interval is lost */
	memcpy(n->pages, pages, sizeof(pages));
	n->busy = n->gone = false;
	n->output_lost[0] = '\0';
	if (link__send(c->link, n->id, WIRE_WELCOME, c->o->settings,
		       (uint32_t)strlen(c->o->settings), c->err, sizeof(c->err)) != 0) {
		n->gone = true;
		return;
	}
	feed(c, n);
}

static void on_result(struct coord *c, const struct wire_msg *m)
{
	struct msg_result mr;
	struct node *n = node_of(c, m->sender);
	if (!n || !msg__result_parse(m, &mr)) {
		c->dropped++; /* a stranger's, or malformed */
		return;
	}
	uint32_t k = mr.interval;
	bool ok = mr.ran;
	json_t *res = json_loadb((const char *)mr.json, mr.len, 0, NULL);
	n->busy = false; /* a node runs one interval at a time */
	if (n->output_lost[0] && json_is_object(res)) {
		/* run again, elsewhere if it can be; if not, an error that says why */
		ok = false;
		json_object_set_new(res, "verdict", json_string("error"));
		json_object_set_new(res, "detail", json_string(n->output_lost));
		n->output_lost[0] = '\0';
	}
	if (!json_is_object(res) || sched__done(c->sched, n->id, k, ok && res) != 1) {
		json_decref(res); /* late, twice, or never assigned */
		c->dropped++;
		feed(c, n);
		return;
	}
	enum sched_state st = sched__state(c->sched, k, NULL, NULL);
	if (st == SCHED_DONE || st == SCHED_FAILED) {
		json_decref(c->results[k - c->o->first]);
		c->results[k - c->o->first] = res;
	} else {
		json_decref(res); /* a failed run that will be retried */
	}
	if (c->o->state_path && (st == SCHED_DONE || st == SCHED_FAILED)) {
		/* the result first, durably: a schedule that says done has its
		 * result, after a crash of the machine too */
		char path[4200];
		char *text = json_dumps(res, JSON_COMPACT);
		snprintf(path, sizeof(path), "%s/%06u.json", c->o->results_dir, k);
		if (!text)
			snprintf(c->err, sizeof(c->err), "out of memory");
		if (!text || ckpt_file__publish(path, text, strlen(text), c->err,
						 sizeof(c->err)) != 0 ||
		    sched__save(c->sched, c->o->state_path, c->err, sizeof(c->err)) != 0)
			fprintf(stderr, "coordinator: interval %u: cannot save its result: %s\n", k,
				c->err);
		free(text);
	}
	if (c->o->progress) {
		unsigned counts[4];
		sched__counts(c->sched, counts);
		c->o->progress(c->o->ctx, counts[SCHED_DONE] + counts[SCHED_FAILED],
			       c->last - c->o->first);
	}
	feed_all(c);
}

/* FILE_REQUEST: part of one of the recording's files, or of the run's
 * plugins, for a node whose machine does not hold them. Its parser allows
 * only the recording's own file names and plugin.N. */
static void on_file_request(struct coord *c, const struct wire_msg *m)
{
	struct msg_file_request q;
	if (!c->o->recording || !node_of(c, m->sender) || !msg__file_request_parse(m, &q)) {
		c->dropped++; /* a stranger's, malformed, or not ours to answer */
		return;
	}
	char path[4400] = ""; /* none: missing */
	if (strncmp(q.name, "plugin.", 7)) {
		snprintf(path, sizeof(path), "%s/%s", c->o->recording, q.name);
	} else {
		unsigned long plugin = strtoul(q.name + 7, NULL, 10);
		if (plugin < c->o->nplugins)
			snprintf(path, sizeof(path), "%s", c->o->plugins[plugin]);
	}
	struct msg_file_data d = { .tag = q.tag, .offset = q.offset };
	uint8_t *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) != 0) {
		d.missing = true;
		d.offset = 0;
	} else {
		d.size = (uint64_t)sb.st_size;
		d.offset = q.offset < d.size ? q.offset : d.size;
		uint64_t want = d.size - d.offset < MSG_FILE_CHUNK ? d.size - d.offset : MSG_FILE_CHUNK;
		buf = malloc(want ? want : 1);
		ssize_t n = buf ? pread(fd, buf, want, (off_t)d.offset) : -1;
		if (n < 0) {
			fprintf(stderr, "coordinator: %s: %s\n", path,
				buf ? strerror(errno) : "out of memory");
			d.missing = true;
			d.size = d.offset = 0;
		} else {
			d.bytes = buf;
			d.len = (uint32_t)n;
		}
	}
	if (fd >= 0)
		close(fd);
	struct wire_writer w = { .ok = true };
	msg__file_data_write(&w, &d);
	if (w.ok)
		link__send(c->link, m->sender, WIRE_FILE_DATA, w.buf, w.len, c->err, sizeof(c->err));
	wire_writer__free(&w);
	free(buf);
}

/* OUTPUT: a file of an interval the node is running (an analysis state, a
 * QEMU plugin's log), kept where the run's outputs go, as if the node had
 * written it there. */
static void on_output(struct coord *c, const struct wire_msg *m)
{
	struct msg_output out;
	uint32_t ran;
	if (!node_of(c, m->sender) || !msg__output_parse(m, &out) || out.interval < c->o->first ||
	    out.interval >= c->last || !c->o->output_dirs[out.kind] ||
	    sched__state(c->sched, out.interval, &ran, NULL) != SCHED_RUNNING ||
	    ran != m->sender) {
		c->dropped++; /* a stranger's, malformed, or of an interval not the node's now */
		return;
	}
	char path[4400];
	snprintf(path, sizeof(path), "%s/%s", c->o->output_dirs[out.kind], out.name);
	if (ckpt_file__publish_part(path, out.offset, out.bytes, out.len,
				    out.offset + out.len == out.size, c->err, sizeof(c->err)) != 0) {
		struct node *n = node_of(c, m->sender);
		fprintf(stderr, "coordinator: interval %u: node %u's output: %s\n", out.interval,
			m->sender, c->err);
		if (!n->output_lost[0])
			snprintf(n->output_lost, sizeof(n->output_lost),
				 "interval %u: an output could not be kept: %s", out.interval, c->err);
	}
}

/* More intervals committed: pending, each with room for its result. */
static int grow(struct coord *c, uint32_t last)
{
	uint32_t n = last - c->o->first, old = c->last - c->o->first;
	json_t **r = realloc(c->results, n * sizeof(*r));
	if (!r)
		return -1;
	c->results = r;
	memset(r + old, 0, (n - old) * sizeof(*r));
	if (sched__extend(c->sched, last) != 0)
		return -1;
	c->last = last;
	feed_all(c);
	return 0;
}

json_t *coord__run(const struct coord_options *o, double idle_s, char *err, size_t errlen)
{
	struct coord c = { .o = o, .last = o->last };
	json_t *out = NULL;
	uint32_t total = o->last - o->first;
	bool complete = !o->available;

	c.sched = o->resume ? sched__load(o->state_path, err, errlen) : sched__new(o->first, o->last);
	if (!c.sched) {
		if (!o->resume)
			snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c.results = calloc(total ? total : 1, sizeof(*c.results));
	if (!c.results || sched__extend(c.sched, o->last) != 0)
		goto out; /* (the saved schedule may predate intervals committed since) */
	for (uint32_t k = 0; o->resume && k < total; k++) {
		enum sched_state st = sched__state(c.sched, o->first + k, NULL, NULL);
		char path[4200];
		if (st != SCHED_DONE && st != SCHED_FAILED)
			continue;
		snprintf(path, sizeof(path), "%s/%06u.json", o->results_dir, o->first + k);
		c.results[k] = json_load_file(path, 0, NULL);
		if (!json_is_object(c.results[k])) {
			/* lost with the machine, or damaged since: run it again */
			fprintf(stderr, "coordinator: %s: the result of finished interval %u is "
					"missing or damaged; it runs again\n", path, o->first + k);
			json_decref(c.results[k]);
			c.results[k] = NULL;
			sched__redo(c.sched, o->first + k);
		}
	}
	c.link = link__listen(o->endpoint, o->key, 0, err, errlen);
	if (!c.link)
		goto out;
	double idle_since = now_s();
	while (!complete || !sched__finished(c.sched)) {
		if (o->available) {
			uint32_t now = o->available(o->ctx, &complete);
			if (now > c.last && grow(&c, now) != 0) {
				snprintf(err, errlen, "out of memory");
				total = c.last - o->first;
				goto out;
			}
			total = c.last - o->first;
		}
		struct wire_msg m;
		int got = link__recv(c.link, &m, POLL_MS, err, errlen);
		if (got < 0)
			goto out;
		if (got && m.type == WIRE_HELLO)
			on_hello(&c, &m);
		else if (got && m.type == WIRE_RESULT)
			on_result(&c, &m);
		else if (got && m.type == WIRE_FILE_REQUEST)
			on_file_request(&c, &m);
		else if (got && m.type == WIRE_OUTPUT)
			on_output(&c, &m);
		struct node *from = got ? node_of(&c, m.sender) : NULL;
		if (from)
			from->heard = now_s();
		uint32_t lost[MAX_NODES];
		unsigned nlost = o->lost ? o->lost(o->ctx, lost, MAX_NODES) : 0;
		for (unsigned i = 0; i < c.nnodes && nlost < MAX_NODES; i++)
			if (c.nodes[i].busy && !c.nodes[i].gone &&
			    now_s() - c.nodes[i].heard > SILENT_S)
				lost[nlost++] = c.nodes[i].id;
		for (unsigned i = 0; i < nlost; i++) {
			struct node *n = node_of(&c, lost[i]);
			if (n && !n->gone) {
				n->gone = true;
				n->busy = false;
				sched__node_lost(c.sched, n->id);
			}
		}
		if (nlost)
			feed_all(&c);
		bool any = false;
		for (unsigned i = 0; i < c.nnodes; i++)
			any |= !c.nodes[i].gone;
		if (any)
			idle_since = now_s();
		else if (now_s() - idle_since > idle_s) {
			unsigned counts[4];
			sched__counts(c.sched, counts);
			snprintf(err, errlen, "no simulation node left, %u of %u intervals not done",
				 counts[SCHED_PENDING] + counts[SCHED_RUNNING], total);
			goto out;
		}
	}
	for (unsigned i = 0; i < c.nnodes; i++)
		if (!c.nodes[i].gone)
			link__send(c.link, c.nodes[i].id, WIRE_BYE, NULL, 0, c.err, sizeof(c.err));
	out = json_array();
	for (uint32_t k = 0; k < total; k++)
		json_array_append(out, c.results[k]);
out:
	for (uint32_t k = 0; k < total; k++)
		json_decref(c.results[k]);
	free(c.results);
	if (o->guard && c.link)
		*o->guard = *link__guard(c.link);
	if (o->dropped)
		*o->dropped = c.dropped;
	link__close(c.link);
	sched__free(c.sched);
	return out;
}
