/* Pages between peers by content hash: the cache every peer keeps, the
 * server that answers PAGE_REQUEST from it (the vnode's from the
 * recording), and the client that finds a page's holder. See
 * distributor.h. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <lz4.h>
#include <xxhash.h>
#include <zmq.h>

#include "checkpoint.h"
#include "distributor.h"

#define PAGE CKPT_PAGE_SIZE
#define POLL_MS 100
#define REQUEST_TIMEOUT_MS 3000

/* ---- the cache: hash -> lz4 bytes --------------------------------------- */

/* A slot's hash is kept from the moment a fetch of it from the vnode is
 * claimed: a node's two clients (its faults' and its server's
 * fetch-through) share the cache, and the second to want a page the
 * first is fetching waits for it instead of fetching it again. */
enum slot_state {
	SLOT_EMPTY,
	SLOT_FETCHING,              /* claimed; lz4 not yet here */
	SLOT_ABANDONED,             /* the fetch failed; may be claimed again */
	SLOT_HELD,
};

struct cached {
	struct ckpt_hash hash;
	uint8_t state;
	bool referenced;            /* since the clock hand last passed */
	uint32_t len;
	uint8_t *lz4;
};

/* Bounded by max bytes of lz4 (0: no bound): past it, pages go in CLOCK
 * order (a hand sweeps the slots, sparing once each page used since it
 * last passed), and an evicted page is fetched again if wanted. */
struct page_cache {
	pthread_mutex_t lock;
	pthread_cond_t landed;      /* a fetching slot was settled */
	struct cached *slots;
	size_t cap, used;           /* cap: a power of two; used: not empty */
	size_t hand;
	uint64_t held, bytes, max, evicted;
};

struct page_cache *page_cache__new(uint64_t max_bytes)
{
	struct page_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->max = max_bytes;
	c->cap = 1024;
	c->slots = calloc(c->cap, sizeof(*c->slots));
	if (!c->slots) {
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->landed, NULL);
	return c;
}

void page_cache__free(struct page_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->cap; i++)
		free(c->slots[i].lz4);
	free(c->slots);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->landed);
	free(c);
}

static struct cached *slot_of(struct cached *slots, size_t cap, const struct ckpt_hash *h)
{
	for (size_t i = h->lo & (cap - 1);; i = (i + 1) & (cap - 1))
		if (slots[i].state == SLOT_EMPTY || ckpt_hash__eq(&slots[i].hash, h))
			return &slots[i];
}

/* The slots anew, without the abandoned ones (evicted, or fetches that
 * failed: nothing but a hash); twice as many unless at most a quarter of
 * them stay live. */
static bool rebuild_cache(struct page_cache *c)
{
	size_t live = 0;
	for (size_t i = 0; i < c->cap; i++)
		live += c->slots[i].state == SLOT_HELD || c->slots[i].state == SLOT_FETCHING;
	size_t cap = 2 * (live + 1) > c->cap / 2 ? c->cap * 2 : c->cap;
	struct cached *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return false;
	for (size_t i = 0; i < c->cap; i++)
		if (c->slots[i].state == SLOT_HELD || c->slots[i].state == SLOT_FETCHING)
			*slot_of(slots, cap, &c->slots[i].hash) = c->slots[i];
	free(c->slots);
	c->slots = slots;
	c->cap = cap;
	c->used = live;
	c->hand = 0;
	return true;
}

/* Past the bound: the first held page the hand finds unused since it
 * last passed goes (its slot stays, abandoned, for the probe chains). */
static void evict(struct page_cache *c, const struct cached *keep)
{
	for (size_t swept = 0; c->max && c->bytes > c->max && swept < 2 * c->cap + 2; swept++) {
		struct cached *s = &c->slots[c->hand];
		c->hand = (c->hand + 1) & (c->cap - 1);
		if (s->state != SLOT_HELD || s == keep)
			continue;
		if (s->referenced) {
			s->referenced = false;
			continue;
		}
		free(s->lz4);
		s->lz4 = NULL;
		c->bytes -= s->len;
		c->held--;
		c->evicted++;
		s->len = 0;
		s->state = SLOT_ABANDONED;
	}
}

/* h's slot, made if absent (then empty); NULL when out of memory. Locked. */
static struct cached *slot_for(struct page_cache *c, const struct ckpt_hash *h)
{
	if (2 * (c->used + 1) > c->cap && !rebuild_cache(c))
		return NULL;
	struct cached *s = slot_of(c->slots, c->cap, h);
	if (s->state == SLOT_EMPTY) {
		s->hash = *h;
		s->state = SLOT_ABANDONED;
		c->used++;
	}
	return s;
}

/* Keeps a compressed page (copied). */
static void cache_put_lz4(struct page_cache *c, const struct ckpt_hash *h, const void *lz4,
			  uint32_t len)
{
	pthread_mutex_lock(&c->lock);
	struct cached *s = slot_for(c, h);
	if (!s || s->state == SLOT_HELD)
		goto out;
	uint8_t *copy = malloc(len);
	if (!copy)
		goto out;
	memcpy(copy, lz4, len);
	if (s->state == SLOT_FETCHING)
		pthread_cond_broadcast(&c->landed);
	s->lz4 = copy;
	s->len = len;
	s->state = SLOT_HELD;
	s->referenced = true;
	c->held++;
	c->bytes += len;
	evict(c, s);
out:
	pthread_mutex_unlock(&c->lock);
}

enum claim { CLAIM_HELD, CLAIM_MINE, CLAIM_BUSY };

/* Before fetching h from the vnode: HELD if it is here already, BUSY if
 * someone else is fetching it, MINE if the caller is to fetch it (and
 * settle it with cache_put_lz4 or cache_unclaim). An out-of-memory cache
 * lets the caller fetch unclaimed. */
static enum claim cache_claim(struct page_cache *c, const struct ckpt_hash *h)
{
	pthread_mutex_lock(&c->lock);
	struct cached *s = slot_for(c, h);
	enum claim r = !s ? CLAIM_MINE : s->state == SLOT_HELD ? CLAIM_HELD :
		       s->state == SLOT_FETCHING ? CLAIM_BUSY : CLAIM_MINE;
	if (s && r == CLAIM_MINE)
		s->state = SLOT_FETCHING;
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* A claimed fetch that did not bring h. */
static void cache_unclaim(struct page_cache *c, const struct ckpt_hash *h)
{
	pthread_mutex_lock(&c->lock);
	struct cached *s = slot_of(c->slots, c->cap, h);
	if (s->state == SLOT_FETCHING) {
		s->state = SLOT_ABANDONED;
		pthread_cond_broadcast(&c->landed);
	}
	pthread_mutex_unlock(&c->lock);
}

/* Waits until nobody is fetching h. */
static void cache_wait_landed(struct page_cache *c, const struct ckpt_hash *h)
{
	pthread_mutex_lock(&c->lock);
	while (slot_of(c->slots, c->cap, h)->state == SLOT_FETCHING)
		pthread_cond_wait(&c->landed, &c->lock);
	pthread_mutex_unlock(&c->lock);
}

void page_cache__put(struct page_cache *c, const struct ckpt_hash *h, const void *page)
{
	char lz4[LZ4_COMPRESSBOUND(PAGE)];
	int n = LZ4_compress_default(page, lz4, PAGE, (int)sizeof(lz4));
	if (n > 0)
		cache_put_lz4(c, h, lz4, (uint32_t)n);
}

/* A page's compressed bytes into lz4 (LZ4_COMPRESSBOUND(PAGE)): their
 * length, 0 if absent. */
static int cache_get_lz4(struct page_cache *c, const struct ckpt_hash *h, char *lz4)
{
	pthread_mutex_lock(&c->lock);
	struct cached *s = slot_of(c->slots, c->cap, h);
	uint32_t len = s->state == SLOT_HELD ? s->len : 0;
	if (len) {
		memcpy(lz4, s->lz4, len);
		s->referenced = true;
	}
	pthread_mutex_unlock(&c->lock);
	return (int)len;
}

static bool cache_has(struct page_cache *c, const struct ckpt_hash *h)
{
	pthread_mutex_lock(&c->lock);
	bool have = slot_of(c->slots, c->cap, h)->state == SLOT_HELD;
	pthread_mutex_unlock(&c->lock);
	return have;
}

/* Decompresses lz4 bytes into page and checks they are h's content. */
static bool unpack(const struct ckpt_hash *h, const uint8_t *lz4, uint32_t len, void *page)
{
	if (LZ4_decompress_safe((const char *)lz4, page, (int)len, PAGE) != (int)PAGE)
		return false;
	struct ckpt_hash got = ckpt_hash__page(page);
	return ckpt_hash__eq(&got, h);
}

int page_cache__get(struct page_cache *c, const struct ckpt_hash *h, void *page)
{
	int rc = 0;
	pthread_mutex_lock(&c->lock);
	struct cached *s = slot_of(c->slots, c->cap, h);
	if (s->state == SLOT_HELD) {
		rc = unpack(h, s->lz4, s->len, page) ? 1 : -1;
		s->referenced = true;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void page_cache__stats(struct page_cache *c, uint64_t *pages, uint64_t *bytes,
			uint64_t *evicted)
{
	pthread_mutex_lock(&c->lock);
	*pages = c->held;
	*bytes = c->bytes;
	*evicted = c->evicted;
	pthread_mutex_unlock(&c->lock);
}

/* ---- the client ----------------------------------------------------------- */

struct peer_link {
	struct page_peer peer;
	struct link *link;
	bool dead;
	uint64_t received;          /* payload bytes of its answers */
};

struct page_client {
	pthread_mutex_t lock;       /* one request at a time */
	struct wire_key key;
	uint32_t self;              /* this peer's id in the ranking */
	uint32_t link_id;           /* the sender id of this client's links */
	struct page_cache *cache;
	struct peer_link peers[PAGE_MAX_PEERS];
	unsigned npeers;
	uint32_t next_tag;
	struct page_client_stats stats;
};

struct page_client *page_client__new(const struct wire_key *key, uint32_t self,
				     struct page_cache *cache)
{
	struct page_client *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	c->key = *key;
	c->self = self;
	c->cache = cache;
	/* each client's links send under their own id: a server judges
	 * sequence numbers per sender */
	do {
		if (getrandom(&c->link_id, sizeof(c->link_id), 0) != sizeof(c->link_id))
			c->link_id = (uint32_t)time(NULL) ^ (uint32_t)(uintptr_t)c;
	} while (c->link_id == 0);
	return c;
}

void page_client__free(struct page_client *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->npeers; i++)
		link__close(c->peers[i].link);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int page_client__set_peers(struct page_client *c, const struct page_peer *peers, unsigned n)
{
	pthread_mutex_lock(&c->lock);
	struct peer_link next[PAGE_MAX_PEERS] = { 0 };
	unsigned m = 0;
	for (unsigned i = 0; i < n && m < PAGE_MAX_PEERS; i++) {
		next[m].peer = peers[i];
		/* keep a link (and its liveness) that is still wanted */
		for (unsigned j = 0; j < c->npeers; j++)
			if (c->peers[j].link && c->peers[j].peer.id == peers[i].id &&
			    !strcmp(c->peers[j].peer.endpoint, peers[i].endpoint)) {
				next[m] = c->peers[j];
				c->peers[j].link = NULL;
			}
		m++;
	}
	for (unsigned j = 0; j < c->npeers; j++)
		link__close(c->peers[j].link);
	memcpy(c->peers, next, sizeof(next));
	c->npeers = m;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* Rendezvous rank of peer for hash: the highest is its home. */
static uint64_t rank(const struct ckpt_hash *h, uint32_t peer)
{
	uint64_t in[3] = { h->lo, h->hi, peer };
	return XXH3_64bits(in, sizeof(in));
}

/* The live peer (not self, not the vnode) that is h's home; -1 if self or
 * none is. */
static int home_of(const struct page_client *c, const struct ckpt_hash *h)
{
	int best = -1;
	uint64_t best_rank = rank(h, c->self);
	for (unsigned i = 0; i < c->npeers; i++) {
		const struct peer_link *p = &c->peers[i];
		if (p->dead || p->peer.id == PAGE_VNODE_ID || p->peer.id == c->self)
			continue;
		uint64_t r = rank(h, p->peer.id);
		if (r > best_rank) {
			best_rank = r;
			best = (int)i;
		}
	}
	return best;
}

static int vnode_of(const struct page_client *c)
{
	for (unsigned i = 0; i < c->npeers; i++)
		if (c->peers[i].peer.id == PAGE_VNODE_ID)
			return (int)i;
	return -1;
}

/* Asks peer p for the pages want[] (indexes into h/out), n of them;
 * fills got[] for those it sent. -1 if it did not answer. */
static int ask(struct page_client *c, struct peer_link *p, const struct ckpt_hash *h,
	       const unsigned *want, unsigned n, uint8_t *out, bool *got, bool through,
	       char *err, size_t errlen)
{
	if (!p->link) {
		p->link = link__connect(p->peer.endpoint, &c->key, c->link_id, err, errlen);
		if (!p->link)
			return -1;
	}
	uint32_t tag = ++c->next_tag;
	struct wire_writer w = { .ok = true };
	msg__page_request_write(&w, tag, through ? MSG_PAGE_FETCH_THROUGH : 0, h, want, n);
	int rc = w.ok ? link__send(p->link, 0, WIRE_PAGE_REQUEST, w.buf, w.len, err, errlen) : -1;
	wire_writer__free(&w);
	if (rc != 0)
		return -1;
	for (;;) {
		struct wire_msg m;
		int got_msg = link__recv(p->link, &m, REQUEST_TIMEOUT_MS, err, errlen);
		if (got_msg <= 0) {
			if (got_msg == 0)
				snprintf(err, errlen, "peer %u (%s) did not answer within %d ms",
					 p->peer.id, p->peer.endpoint, REQUEST_TIMEOUT_MS);
			return -1;
		}
		struct wire_reader r;
		uint32_t rtag, count;
		if (m.type != WIRE_PAGE_DATA || !msg__page_data_parse(&m, &rtag, &count, &r) ||
		    rtag != tag || count != n)
			continue; /* an answer to an earlier request that timed out */
		p->received += m.len;
		c->stats.bytes_received += m.len;
		for (unsigned i = 0; i < n; i++) {
			struct ckpt_hash mh;
			const uint8_t *lz4;
			uint32_t len;
			int has = msg__page_data_next(&r, &mh, &lz4, &len);
			if (has < 0 || !ckpt_hash__eq(&mh, &h[want[i]]))
				break; /* malformed: the rest are asked elsewhere */
			if (!has)
				continue;
			uint8_t *page = out + (size_t)want[i] * PAGE;
			if (!unpack(&mh, lz4, len, page))
				continue; /* damaged: as if absent, asked elsewhere */
			cache_put_lz4(c->cache, &mh, lz4, len);
			got[want[i]] = true;
		}
		return 0;
	}
}

/* Of the pages want[0..k) about to be asked of the vnode: those another
 * client of this cache brought meanwhile are taken from it, those it is
 * fetching go to busy[] to be waited for, and the rest, claimed, stay in
 * want[]; returns how many stay. */
static unsigned claim_for_vnode(struct page_client *c, const struct ckpt_hash *h,
				unsigned *want, unsigned k, uint8_t *out, bool *got,
				unsigned *busy, unsigned *nbusy)
{
	unsigned mine = 0;
	for (unsigned j = 0; j < k; j++) {
		unsigned i = want[j];
		switch (cache_claim(c->cache, &h[i])) {
		case CLAIM_HELD:
			if (page_cache__get(c->cache, &h[i], out + (size_t)i * PAGE) == 1) {
				got[i] = true;
				c->stats.cache_hits++;
				break;
			}
			/* damaged in memory: fetched again */
			__attribute__((fallthrough));
		case CLAIM_MINE:
			want[mine++] = i;
			break;
		case CLAIM_BUSY:
			busy[(*nbusy)++] = i;
			break;
		}
	}
	return mine;
}

int page_client__get(struct page_client *c, const struct ckpt_hash *h, unsigned n,
		     uint8_t *out, char *err, size_t errlen)
{
	/* direct[i]: ask the vnode itself (this peer is the home, or the home
	 * answered without it) */
	bool *got = calloc(n ? n : 1, sizeof(*got)), *direct = calloc(n ? n : 1, sizeof(*direct));
	unsigned *want = calloc(n ? n : 1, sizeof(*want)), *busy = calloc(n ? n : 1, sizeof(*busy));
	int rc = -1;
	if (!got || !want || !direct || !busy) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	pthread_mutex_lock(&c->lock);
	unsigned missing = 0;
	for (unsigned i = 0; i < n; i++) {
		got[i] = page_cache__get(c->cache, &h[i], out + (size_t)i * PAGE) == 1;
		c->stats.cache_hits += got[i];
		missing += !got[i];
	}
	/* Each pass asks every holder once for its missing pages: a page's
	 * home (which fetches it from the vnode once), or the vnode. A home
	 * that does not answer is dropped, and the next in rank is the home
	 * in the next pass; one that lacks a page sends the page to the vnode.
	 * A page the other client of this cache is fetching from the vnode is
	 * waited for, not fetched twice. Each pass drops a peer, settles
	 * pages or waits for another's fetch to settle, so it ends. */
	while (missing) {
		for (int pi = -1; pi < (int)c->npeers; pi++) {
			unsigned k = 0;
			for (unsigned i = 0; i < n; i++)
				if (!got[i] && (direct[i] ? -1 : home_of(c, &h[i])) == pi)
					want[k++] = i;
			if (!k)
				continue;
			int target = pi >= 0 ? pi : vnode_of(c);
			if (target < 0) {
				snprintf(err, errlen, "page %016" PRIx64 "%016" PRIx64
						      ": the vnode, which holds every page, is not known",
					 h[want[0]].hi, h[want[0]].lo);
				goto unlock;
			}
			struct peer_link *p = &c->peers[target];
			unsigned nbusy = 0;
			if (pi < 0)
				k = claim_for_vnode(c, h, want, k, out, got, busy, &nbusy);
			int asked = k ? ask(c, p, h, want, k, out, got, pi >= 0, err, errlen) : 0;
			if (pi < 0) {
				for (unsigned j = 0; j < k; j++)
					if (!got[want[j]])
						cache_unclaim(c->cache, &h[want[j]]);
				/* holding no claim now, so two clients cannot wait on each other */
				for (unsigned j = 0; j < nbusy; j++)
					cache_wait_landed(c->cache, &h[busy[j]]);
			}
			if (asked != 0) {
				if (pi < 0)
					goto unlock; /* the vnode: no one else to ask */
				p->dead = true;
				c->stats.peers_lost++;
				continue;
			}
			for (unsigned j = 0; j < k; j++) {
				if (!got[want[j]] && pi < 0) {
					snprintf(err, errlen, "page %016" PRIx64 "%016" PRIx64
							      ": not in the recording",
						 h[want[j]].hi, h[want[j]].lo);
					goto unlock;
				}
				direct[want[j]] = true;
			}
		}
		missing = 0;
		for (unsigned i = 0; i < n; i++)
			missing += !got[i];
	}
	rc = 0;
unlock:
	pthread_mutex_unlock(&c->lock);
out:
	free(got);
	free(direct);
	free(want);
	free(busy);
	return rc;
}

void page_client__stats(struct page_client *c, struct page_client_stats *s,
			void (*per_peer)(void *ctx, uint32_t peer, uint64_t bytes), void *ctx)
{
	pthread_mutex_lock(&c->lock);
	*s = c->stats;
	for (unsigned i = 0; per_peer && i < c->npeers; i++)
		if (c->peers[i].received)
			per_peer(ctx, c->peers[i].peer.id, c->peers[i].received);
	pthread_mutex_unlock(&c->lock);
}

/* ---- the server ------------------------------------------------------------ */

/* The vnode's pages: every stored content of the recording by hash. */
struct store_index {
	struct ckpt_store *store;
	uint32_t indexed;           /* manifests 0..indexed-1 are in */
	struct ckpt_page_ref *refs; /* open addressing by hash; gpn unused */
	bool *used;
	size_t cap, n;
};

static struct ckpt_page_ref *index_slot(struct store_index *x, const struct ckpt_hash *h)
{
	for (size_t i = h->lo & (x->cap - 1);; i = (i + 1) & (x->cap - 1))
		if (!x->used[i] || ckpt_hash__eq(&x->refs[i].hash, h))
			return &x->refs[i];
}

static bool index_put(struct store_index *x, const struct ckpt_page_ref *ref)
{
	if (2 * (x->n + 1) > x->cap) {
		struct store_index bigger = *x;
		bigger.cap = x->cap ? 2 * x->cap : 4096;
		bigger.refs = calloc(bigger.cap, sizeof(*bigger.refs));
		bigger.used = calloc(bigger.cap, sizeof(*bigger.used));
		if (!bigger.refs || !bigger.used) {
			free(bigger.refs);
			free(bigger.used);
			return false;
		}
		for (size_t i = 0; i < x->cap; i++)
			if (x->used[i]) {
				struct ckpt_page_ref *s = index_slot(&bigger, &x->refs[i].hash);
				*s = x->refs[i];
				bigger.used[s - bigger.refs] = true;
			}
		free(x->refs);
		free(x->used);
		*x = bigger;
	}
	struct ckpt_page_ref *s = index_slot(x, &ref->hash);
	if (!x->used[s - x->refs]) {
		*s = *ref;
		x->used[s - x->refs] = true;
		x->n++;
	}
	return true;
}

/* Takes in the checkpoints committed since the last call: a recording
 * that is still being made grows. */
static int index_update(struct store_index *x, const char *dir, char *err, size_t errlen)
{
	struct ckpt_store *st = ckpt_store__open(dir, err, errlen);
	if (!st)
		return -1;
	ckpt_store__close(x->store);
	x->store = st;
	for (uint32_t k = x->indexed; k < ckpt_store__count(st); k++) {
		struct ckpt_manifest *m;
		if (ckpt_manifest__load(st, k, &m, err, errlen) != 0)
			return -1;
		for (uint64_t i = 0; i < m->page_count; i++)
			if (!(m->pages[i].flags & CKPT_PAGE_ZERO) && !index_put(x, &m->pages[i])) {
				ckpt_manifest__free(m);
				snprintf(err, errlen, "out of memory");
				return -1;
			}
		ckpt_manifest__free(m);
		x->indexed = k + 1;
	}
	return 0;
}

struct page_server {
	struct link *link;
	char endpoint[PAGE_ENDPOINT_MAX];
	struct page_cache *cache;
	struct page_client *upstream; /* the vnode, for fetch-through; NULL on the vnode */
	const char *recording;        /* the vnode's */
	struct store_index index;
	pthread_t thread;
	_Atomic bool stop;
	_Atomic uint64_t sent_bytes, sent_pages, requests, malformed;
};

/* The vnode: page h from the recording into page; false if it has none. */
static bool from_store(struct page_server *s, const struct ckpt_hash *h, void *page)
{
	char err[256];
	for (int pass = 0; pass < 2; pass++) {
		if (s->index.cap) {
			struct ckpt_page_ref *ref = index_slot(&s->index, h);
			if (s->index.used[ref - s->index.refs])
				return ckpt_store__read_page(s->index.store, ref, page, err,
							     sizeof(err)) == 0;
		}
		if (pass == 0 && index_update(&s->index, s->recording, err, sizeof(err)) != 0)
			return false;
	}
	return false;
}

static void serve_request(struct page_server *s, const struct wire_msg *m)
{
	struct msg_page_request q;
	if (!msg__page_request_parse(m, &q)) {
		atomic_fetch_add(&s->malformed, 1);
		return; /* dropped */
	}
	uint32_t n = q.n;
	struct ckpt_hash *h = malloc((size_t)(n ? n : 1) * sizeof(*h));
	uint8_t *page = malloc((size_t)(n ? n : 1) * PAGE);
	if (!h || !page)
		goto out;
	for (uint32_t i = 0; i < n; i++)
		h[i] = msg__page_request_hash(&q, i);
	/* a home fetches what it lacks from the vnode, all at once */
	if (s->upstream && (q.flags & MSG_PAGE_FETCH_THROUGH)) {
		struct ckpt_hash *lack = malloc((size_t)(n ? n : 1) * sizeof(*lack));
		unsigned k = 0;
		for (uint32_t i = 0; lack && i < n; i++)
			if (!cache_has(s->cache, &h[i]))
				lack[k++] = h[i];
		char err[256];
		if (k) /* what the vnode sends lands in the cache */
			page_client__get(s->upstream, lack, k, page, err, sizeof(err));
		free(lack);
	}
	struct wire_writer w = { .ok = true };
	msg__page_data_begin(&w, q.tag, n);
	uint64_t pages = 0;
	for (uint32_t i = 0; i < n; i++) {
		char lz4[LZ4_COMPRESSBOUND(PAGE)];
		int len = s->recording ? (from_store(s, &h[i], page) ?
				  LZ4_compress_default((const char *)page, lz4, PAGE, (int)sizeof(lz4)) :
				  0) :
			  cache_get_lz4(s->cache, &h[i], lz4);
		msg__page_data_add(&w, &h[i], len > 0 ? lz4 : NULL, (uint32_t)len);
		pages += len > 0;
	}
	char err[256];
	if (w.ok && link__send(s->link, m->sender, WIRE_PAGE_DATA, w.buf, w.len, err,
			       sizeof(err)) == 0) {
		atomic_fetch_add(&s->sent_bytes, w.len);
		atomic_fetch_add(&s->sent_pages, pages);
	}
	wire_writer__free(&w);
out:
	free(h);
	free(page);
}

static void *serve(void *arg)
{
	struct page_server *s = arg;
	char err[256];
	while (!atomic_load(&s->stop)) {
		struct wire_msg m;
		int got = link__recv(s->link, &m, POLL_MS, err, sizeof(err));
		if (got < 0)
			break;
		if (got && m.type == WIRE_PAGE_REQUEST) {
			atomic_fetch_add(&s->requests, 1);
			serve_request(s, &m);
		}
	}
	return NULL;
}

struct page_server *page_server__start(const struct page_server_options *o, char *err,
				       size_t errlen)
{
	struct page_server *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->cache = o->cache;
	s->upstream = o->upstream;
	s->recording = o->recording;
	if (s->recording && index_update(&s->index, s->recording, err, errlen) != 0)
		goto bad;
	s->link = link__listen(o->endpoint, o->key, o->self, err, errlen);
	if (!s->link || link__endpoint(s->link, s->endpoint, sizeof(s->endpoint), err, errlen) != 0)
		goto bad;
	int rc = pthread_create(&s->thread, NULL, serve, s);
	if (rc != 0) {
		snprintf(err, errlen, "page server thread: %s", strerror(rc));
		goto bad;
	}
	return s;
bad:
	link__close(s->link);
	ckpt_store__close(s->index.store);
	free(s->index.refs);
	free(s->index.used);
	free(s);
	return NULL;
}

const char *page_server__endpoint(const struct page_server *s)
{
	return s->endpoint;
}

void page_server__stats(struct page_server *s, struct page_server_stats *stats)
{
	stats->sent_bytes = atomic_load(&s->sent_bytes);
	stats->sent_pages = atomic_load(&s->sent_pages);
	stats->requests = atomic_load(&s->requests);
	stats->malformed = atomic_load(&s->malformed);
	/* the server thread counts them: a snapshot, maybe a frame behind */
	memcpy(stats->refused, link__guard(s->link)->counts, sizeof(stats->refused));
}

void page_server__stop(struct page_server *s, struct page_server_stats *stats)
{
	if (!s)
		return;
	atomic_store(&s->stop, true);
	pthread_join(s->thread, NULL);
	if (stats)
		page_server__stats(s, stats);
	link__close(s->link);
	ckpt_store__close(s->index.store);
	free(s->index.refs);
	free(s->index.used);
	free(s);
}
