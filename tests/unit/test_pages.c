/* distributor/pages.c: pages by content hash between peers, over ipc in a
 * temporary directory. A one-checkpoint recording of NPAGES distinct
 * pages (and zero ones) is the vnode's; nodes are what simnode/node.c
 * makes: a cache, a client that asks each page's home, a server whose
 * fetch-through client asks only the vnode. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "checkpoint.h"
#include "distributor.h"

#define NPAGES 96u
#define NODES 3u

struct node {
	struct page_cache *cache;
	struct page_client *client, *upstream;
	struct page_server *server;
	struct page_peer me;
};

struct fixture {
	char dir[64];
	struct wire_key key;
	struct page_server *vnode;
	struct page_peer peers[1 + NODES];
	struct node nodes[NODES];
	struct ckpt_hash hash[NPAGES];
};

static void fill(uint8_t *page, unsigned i)
{
	for (unsigned w = 0; w < CKPT_PAGE_SIZE / 4; w++) {
		uint32_t v = i * 2654435761u + w; /* incompressible enough, distinct */
		memcpy(page + 4 * w, &v, 4);
	}
}

static void make_recording(struct fixture *f)
{
	static const struct ckpt_info info = {
		.memory_bytes = 2 * NPAGES * CKPT_PAGE_SIZE, .interval_ns = 1000000000, .mode = "cow",
		.cpu_model = "kvm64", .config_path = "vm.cfg", .config_text = "",
		.created_by = "simuboost test",
	};
	char err[256], rec[128];
	uint8_t page[CKPT_PAGE_SIZE];
	snprintf(rec, sizeof(rec), "%s/rec", f->dir);
	struct ckpt_store *st = ckpt_store__create(rec, &info, err, sizeof(err));
	assert_non_null(st);
	struct ckpt_txn *tx = ckpt_txn__begin(st, 0, err, sizeof(err));
	assert_non_null(tx);
	for (unsigned i = 0; i < NPAGES; i++) {
		fill(page, i);
		f->hash[i] = ckpt_hash__page(page);
		assert_int_equal(ckpt_txn__add_page(tx, 2 * i, page, err, sizeof(err)), 0);
	}
	struct ckpt_state s = { .flags = CKPT_FINAL };
	assert_int_equal(ckpt_txn__set_state(tx, &s, err, sizeof(err)), 0);
	assert_int_equal(ckpt_txn__commit(tx, err, sizeof(err)), 0);
	ckpt_store__close(st);
}

static void node_up(struct fixture *f, unsigned i)
{
	struct node *n = &f->nodes[i];
	char err[256];
	n->me.id = i + 1;
	snprintf(n->me.endpoint, sizeof(n->me.endpoint), "ipc://%s/node%u", f->dir, i + 1);
	n->cache = page_cache__new(0);
	n->client = page_client__new(&f->key, n->me.id, n->cache);
	n->upstream = page_client__new(&f->key, n->me.id, n->cache);
	assert_non_null(n->client);
	assert_non_null(n->upstream);
	struct page_server_options so = { .endpoint = n->me.endpoint, .key = &f->key,
					  .self = n->me.id, .cache = n->cache,
					  .upstream = n->upstream };
	n->server = page_server__start(&so, err, sizeof(err));
	assert_non_null(n->server);
	f->peers[1 + i] = n->me;
	page_client__set_peers(n->upstream, f->peers, 1);
}

static void node_down(struct node *n)
{
	page_server__stop(n->server, NULL);
	n->server = NULL;
	page_client__free(n->client);
	page_client__free(n->upstream);
	page_cache__free(n->cache);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256], rec[128];
	snprintf(f->dir, sizeof(f->dir), "/tmp/simuboost-test-pages-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(wire_key__from_secret(&f->key, "test secret of the pages"), 0);
	make_recording(f);
	snprintf(rec, sizeof(rec), "%s/rec", f->dir);
	f->peers[0].id = PAGE_VNODE_ID;
	snprintf(f->peers[0].endpoint, sizeof(f->peers[0].endpoint), "ipc://%s/vnode", f->dir);
	struct page_server_options so = { .endpoint = f->peers[0].endpoint, .key = &f->key,
					  .self = PAGE_VNODE_ID, .recording = rec };
	f->vnode = page_server__start(&so, err, sizeof(err));
	assert_non_null(f->vnode);
	for (unsigned i = 0; i < NODES; i++)
		node_up(f, i);
	for (unsigned i = 0; i < NODES; i++)
		page_client__set_peers(f->nodes[i].client, f->peers, 1 + NODES);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	for (unsigned i = 0; i < NODES; i++)
		if (f->nodes[i].server)
			node_down(&f->nodes[i]);
	page_server__stop(f->vnode, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void check_all(struct fixture *f, struct page_client *c)
{
	char err[256];
	uint8_t *out = malloc((size_t)NPAGES * CKPT_PAGE_SIZE), want[CKPT_PAGE_SIZE];
	assert_int_equal(page_client__get(c, f->hash, NPAGES, out, err, sizeof(err)), 0);
	for (unsigned i = 0; i < NPAGES; i++) {
		fill(want, i);
		assert_memory_equal(out + (size_t)i * CKPT_PAGE_SIZE, want, CKPT_PAGE_SIZE);
	}
	free(out);
}

struct by_peer {
	uint64_t bytes[1 + NODES + 1];
};

static void note(void *ctx, uint32_t peer, uint64_t bytes)
{
	struct by_peer *b = ctx;
	if (peer <= NODES)
		b->bytes[peer] += bytes;
}

static void test_every_node_gets_every_page_and_the_vnode_sends_each_once(void **state)
{
	struct fixture *f = *state;
	for (unsigned i = 0; i < NODES; i++)
		check_all(f, f->nodes[i].client);
	struct page_server_stats vs;
	page_server__stats(f->vnode, &vs);
	/* each content once, however many nodes wanted it */
	assert_int_equal(vs.sent_pages, NPAGES);
	/* the last node got most of its pages from the others */
	struct by_peer b = { { 0 } };
	struct page_client_stats cs;
	page_client__stats(f->nodes[NODES - 1].client, &cs, note, &b);
	assert_true(b.bytes[1] + b.bytes[2] > 0);
	/* asked again: all from the cache, nothing on the wire */
	uint64_t before = cs.bytes_received;
	check_all(f, f->nodes[NODES - 1].client);
	page_client__stats(f->nodes[NODES - 1].client, &cs, NULL, NULL);
	assert_int_equal(cs.bytes_received, before);
	assert_true(cs.cache_hits >= NPAGES);
}

static void test_a_peer_that_disappears_is_passed_over(void **state)
{
	struct fixture *f = *state;
	check_all(f, f->nodes[0].client); /* node 1 is home to some pages */
	node_down(&f->nodes[0]);
	f->nodes[0].server = NULL;
	/* node 3 has nothing yet: the pages whose home was node 1 come from
	 * the others or the vnode */
	check_all(f, f->nodes[2].client);
	struct page_client_stats cs;
	page_client__stats(f->nodes[2].client, &cs, NULL, NULL);
	assert_true(cs.peers_lost >= 1);
}

static void test_a_page_nobody_has_is_named(void **state)
{
	struct fixture *f = *state;
	struct ckpt_hash nowhere = { 0x1111, 0x2222 };
	uint8_t out[CKPT_PAGE_SIZE];
	char err[256];
	assert_int_not_equal(page_client__get(f->nodes[1].client, &nowhere, 1, out, err,
					      sizeof(err)), 0);
	assert_non_null(strstr(err, "00000000000022220000000000001111"));
	assert_non_null(strstr(err, "not in the recording"));
}

static void test_another_key_gets_nothing(void **state)
{
	struct fixture *f = *state;
	struct wire_key other;
	struct page_cache *cache = page_cache__new(0);
	uint8_t out[CKPT_PAGE_SIZE];
	char err[256];
	assert_int_equal(wire_key__from_secret(&other, "some other run's secret"), 0);
	struct page_client *c = page_client__new(&other, 99, cache);
	page_client__set_peers(c, f->peers, 1); /* the vnode only */
	assert_int_not_equal(page_client__get(c, f->hash, 1, out, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "did not answer"));
	struct page_server_stats vs;
	page_server__stats(f->vnode, &vs);
	assert_true(vs.refused[WIRE_BAD_MAC] >= 1);
	page_client__free(c);
	page_cache__free(cache);
}

struct racer {
	struct fixture *f;
	struct page_client *client;
	pthread_barrier_t *start;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	pthread_barrier_wait(r->start);
	check_all(r->f, r->client);
	return NULL;
}

/* A node's fault client and its server's fetch-through client share the
 * cache; wanting the same pages at the same moment, they fetch each from
 * the vnode once between them. */
static void test_two_clients_of_one_cache_fetch_each_page_once(void **state)
{
	struct fixture *f = *state;
	for (unsigned round = 0; round < 10; round++) {
		struct page_server_stats before, after;
		page_server__stats(f->vnode, &before);
		struct page_cache *cache = page_cache__new(0);
		struct page_client *a = page_client__new(&f->key, 50, cache);
		struct page_client *b = page_client__new(&f->key, 50, cache);
		page_client__set_peers(a, f->peers, 1);
		page_client__set_peers(b, f->peers, 1);
		pthread_barrier_t start;
		pthread_barrier_init(&start, NULL, 2);
		struct racer ra = { f, a, &start }, rb = { f, b, &start };
		pthread_t ta, tb;
		assert_int_equal(pthread_create(&ta, NULL, race, &ra), 0);
		assert_int_equal(pthread_create(&tb, NULL, race, &rb), 0);
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		pthread_barrier_destroy(&start);
		page_server__stats(f->vnode, &after);
		assert_int_equal(after.sent_pages - before.sent_pages, NPAGES);
		page_client__free(a);
		page_client__free(b);
		page_cache__free(cache);
	}
}

static void test_cache(void **state)
{
	(void)state;
	struct page_cache *c = page_cache__new(0);
	uint8_t page[CKPT_PAGE_SIZE], back[CKPT_PAGE_SIZE];
	uint64_t pages, bytes, evicted;
	for (unsigned i = 0; i < 5000; i++) { /* past a few growths */
		fill(page, i);
		struct ckpt_hash h = ckpt_hash__page(page);
		page_cache__put(c, &h, page);
	}
	fill(page, 4321);
	struct ckpt_hash h = ckpt_hash__page(page), absent = { 1, 2 };
	assert_int_equal(page_cache__get(c, &h, back), 1);
	assert_memory_equal(back, page, sizeof(page));
	assert_int_equal(page_cache__get(c, &absent, back), 0);
	page_cache__stats(c, &pages, &bytes, &evicted);
	assert_int_equal(pages, 5000);
	assert_true(bytes > 0);
	page_cache__free(c);
}

/* A bounded cache: never past its bound, the pages used since the hand
 * last passed kept, an evicted page absent and welcome again. */
static void test_cache_bound(void **state)
{
	(void)state;
	uint8_t page[CKPT_PAGE_SIZE], back[CKPT_PAGE_SIZE];
	uint64_t pages, bytes, evicted, bound = 64 * 1024;
	struct page_cache *c = page_cache__new(bound);
	fill(page, 100000);
	struct ckpt_hash hot = ckpt_hash__page(page);
	page_cache__put(c, &hot, page);
	for (unsigned i = 0; i < 3000; i++) { /* past several rebuilds */
		fill(page, i);
		struct ckpt_hash h = ckpt_hash__page(page);
		page_cache__put(c, &h, page);
		page_cache__stats(c, &pages, &bytes, &evicted);
		assert_true(bytes <= bound);
		/* hot is used between every two puts: the hand always spares it */
		assert_int_equal(page_cache__get(c, &hot, back), 1);
	}
	assert_true(pages > 1 && pages < 3001);
	assert_int_equal(pages + evicted, 3001);
	fill(page, 0); /* the first cold page: long gone */
	struct ckpt_hash first = ckpt_hash__page(page);
	assert_int_equal(page_cache__get(c, &first, back), 0);
	page_cache__put(c, &first, page);
	assert_int_equal(page_cache__get(c, &first, back), 1);
	assert_memory_equal(back, page, sizeof(page));
	page_cache__free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_every_node_gets_every_page_and_the_vnode_sends_each_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_peer_that_disappears_is_passed_over, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_page_nobody_has_is_named, setup, teardown),
		cmocka_unit_test_setup_teardown(test_another_key_gets_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_clients_of_one_cache_fetch_each_page_once,
						setup, teardown),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_cache_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
