/* simnode/dsm.c, the fault server of demand-paged RAM: this test plays
 * QEMU's part (replay-dsm.c): it maps a memfd, registers it with
 * userfaultfd and hands the descriptor over, then touches the pages, and
 * asks for pages by hash as the plugin does over a copy without packs. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "checkpoint.h"
#include "dsm.h"
#include "replay-dsm-msg.h"

#define PAGE 4096u
#define NPAGES 512u
#define BAD_GPN 77u

struct source {
	unsigned calls;
	bool fail_bad;
};

/* Page g holds g in every word; every seventh page is zero. */
static int fetch(void *ctx, const uint64_t *gpn, unsigned n, uint8_t *out, bool *zero,
		 char *err, size_t errlen)
{
	struct source *s = ctx;
	s->calls++;
	for (unsigned i = 0; i < n; i++) {
		if (s->fail_bad && gpn[i] == BAD_GPN) {
			snprintf(err, errlen, "no peer has it");
			return -1;
		}
		zero[i] = gpn[i] % 7 == 0;
		for (unsigned w = 0; !zero[i] && w < PAGE / 8; w++)
			memcpy(out + (size_t)i * PAGE + w * 8, &gpn[i], 8);
	}
	return 0;
}

/* By hash: the page whose every byte is the hash's low byte; hash lo 0
 * is held by no one. */
static int fetch_hash(void *ctx, const struct ckpt_hash *h, uint8_t *out, char *err,
		      size_t errlen)
{
	(void)ctx;
	if (!h->lo) {
		snprintf(err, errlen, "no peer has it");
		return -1;
	}
	memset(out, (int)(h->lo & 0xff), PAGE);
	return 0;
}

struct ram {
	int memfd, uffd, sv[2];
	uint8_t *base;
	struct dsm *dsm;
	struct source src;
};

/* QEMU's side: map, register, hand over. */
static void ram_up(struct ram *r, bool prefetch)
{
	char err[256] = "";
	r->memfd = memfd_create("simuboost-ram", MFD_CLOEXEC);
	assert_true(r->memfd >= 0);
	assert_int_equal(ftruncate(r->memfd, (off_t)NPAGES * PAGE), 0);
	r->base = mmap(NULL, (size_t)NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, r->memfd, 0);
	assert_true(r->base != MAP_FAILED);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, r->sv), 0);
	struct dsm_source s = { .fetch = fetch, .fetch_hash = fetch_hash, .ctx = &r->src };
	r->dsm = dsm__start(r->sv[0], r->memfd, (uint64_t)NPAGES * PAGE, &s, prefetch, err,
			    sizeof(err));
	assert_non_null(r->dsm);

	r->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM };
	struct uffdio_register reg = {
		.range = { .start = (uint64_t)(uintptr_t)r->base, .len = (uint64_t)NPAGES * PAGE },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR,
	};
	assert_true(r->uffd >= 0);
	assert_int_equal(ioctl(r->uffd, UFFDIO_API, &api), 0);
	assert_int_equal(ioctl(r->uffd, UFFDIO_REGISTER, &reg), 0);
	assert_int_equal(replay_dsm_msg__send_uffd(r->sv[1], r->uffd, (uint64_t)(uintptr_t)r->base,
						   (uint64_t)NPAGES * PAGE),
			 (ssize_t)sizeof(struct replay_dsm_hello));
}

static void ram_down(struct ram *r, struct dsm_stats *st)
{
	/* unregistering wakes anything still waiting; it then faults as plain
	 * shared memory */
	struct uffdio_range range = { .start = (uint64_t)(uintptr_t)r->base,
				      .len = (uint64_t)NPAGES * PAGE };
	ioctl(r->uffd, UFFDIO_UNREGISTER, &range);
	dsm__stop(r->dsm, st);
	close(r->uffd);
	close(r->sv[1]);
	munmap(r->base, (size_t)NPAGES * PAGE);
	close(r->memfd);
}

static void check_page(const struct ram *r, uint64_t g)
{
	uint64_t want = g % 7 == 0 ? 0 : g, got;
	for (unsigned w = 0; w < PAGE / 8; w += 97) {
		memcpy(&got, r->base + g * PAGE + w * 8, 8);
		assert_int_equal(got, want);
	}
}

static void test_sequential_with_prefetch(void **state)
{
	(void)state;
	struct ram r = { 0 };
	struct dsm_stats st;
	ram_up(&r, true);
	for (uint64_t g = 0; g < NPAGES; g++)
		check_page(&r, g);
	ram_down(&r, &st);
	/* a sequential scan: a few faults start each run, prefetch does the rest */
	assert_true(st.faults > 0);
	assert_true(st.faults * 5 <= NPAGES);
	assert_true(st.prefetched > 0);
	assert_int_equal(st.faults + st.prefetch_used, NPAGES);
	assert_true(st.prefetch_used <= st.prefetched);
	assert_true(st.p50_us > 0 && st.p50_us <= st.p99_us && st.p99_us <= st.max_us);
}

static void test_without_prefetch_every_page_faults(void **state)
{
	(void)state;
	struct ram r = { 0 };
	struct dsm_stats st;
	ram_up(&r, false);
	for (uint64_t g = 0; g < NPAGES; g += 2) /* writes fault too */
		r.base[g * PAGE + 8] = r.base[g * PAGE + 8];
	for (uint64_t g = 0; g < NPAGES; g += 2)
		check_page(&r, g);
	ram_down(&r, &st);
	unsigned zeros = 0;
	for (uint64_t g = 0; g < NPAGES; g += 2)
		zeros += g % 7 == 0;
	assert_int_equal(st.faults, NPAGES / 2);
	assert_int_equal(st.zero_faults, zeros);
	assert_int_equal(st.prefetched, 0);
	assert_int_equal(r.src.calls, NPAGES / 2);
}

static void *touch(void *arg)
{
	struct ram *r = arg;
	volatile uint8_t v = r->base[BAD_GPN * PAGE];
	(void)v;
	return NULL;
}

static void test_a_page_that_cannot_be_had_is_named(void **state)
{
	(void)state;
	struct ram r = { .src = { .fail_bad = true } };
	pthread_t t;
	ram_up(&r, false);
	check_page(&r, 3);
	assert_int_equal(pthread_create(&t, NULL, touch, &r), 0);
	const char *why = NULL;
	for (int i = 0; i < 5000 && !(why = dsm__failed(r.dsm)); i++)
		usleep(1000);
	assert_non_null(why);
	assert_non_null(strstr(why, "page 0x4d"));
	assert_non_null(strstr(why, "no peer has it"));
	/* unregistering wakes the waiting thread, whose touch then reads the
	 * memfd; it must be done before ram_down unmaps the memory */
	struct uffdio_range range = { .start = (uint64_t)(uintptr_t)r.base,
				      .len = (uint64_t)NPAGES * PAGE };
	assert_int_equal(ioctl(r.uffd, UFFDIO_UNREGISTER, &range), 0);
	pthread_join(t, NULL);
	ram_down(&r, NULL);
}

/* The plugin's side of a page by hash (replay_dsm__page): request, reply. */
static int ask_page(const struct ram *r, uint64_t lo, struct replay_dsm_page_reply *a)
{
	struct replay_dsm_page_request q = { .magic = REPLAY_DSM_PAGE_MAGIC, .lo = lo, .hi = 9 };
	assert_int_equal(send(r->sv[1], &q, sizeof(q), 0), (ssize_t)sizeof(q));
	assert_int_equal(recv(r->sv[1], a, sizeof(*a), 0), (ssize_t)sizeof(*a));
	assert_int_equal(a->magic, REPLAY_DSM_PAGE_MAGIC);
	return a->status;
}

static void test_page_by_hash_for_the_plugin(void **state)
{
	(void)state;
	struct ram r = { 0 };
	static struct replay_dsm_page_reply a;
	ram_up(&r, false);
	check_page(&r, 5); /* faults are served between requests as before */
	assert_int_equal(ask_page(&r, 0x5a, &a), 0);
	for (unsigned i = 0; i < PAGE; i += 511)
		assert_int_equal(a.page[i], 0x5a);
	assert_int_equal(ask_page(&r, 0, &a), -1); /* nobody holds it */
	check_page(&r, 6);
	ram_down(&r, NULL);
}

static void test_qemu_that_never_attaches(void **state)
{
	(void)state;
	int sv[2], memfd = memfd_create("simuboost-ram", MFD_CLOEXEC);
	char err[256];
	struct source src = { 0 };
	struct dsm_source s = { .fetch = fetch, .ctx = &src };
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	struct dsm *d = dsm__start(sv[0], memfd, PAGE, &s, true, err, sizeof(err));
	assert_non_null(d);
	close(sv[1]); /* QEMU died before its plugin attached */
	struct dsm_stats st;
	dsm__stop(d, &st);
	assert_int_equal(st.faults, 0);
	close(memfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sequential_with_prefetch),
		cmocka_unit_test(test_without_prefetch_every_page_faults),
		cmocka_unit_test(test_a_page_that_cannot_be_had_is_named),
		cmocka_unit_test(test_page_by_hash_for_the_plugin),
		cmocka_unit_test(test_qemu_that_never_attaches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
