/* Copy-on-write checkpoints (vnode/cow.c) without a VM: a thread scribbles
 * over "guest RAM" while checkpoints of it are taken, and every committed
 * checkpoint must hold exactly the contents RAM had at its boundary. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "checkpoint.h"
#include "cow.h"

#define PAGES 4096 /* 16 MiB */
#define PAGE CKPT_PAGE_SIZE

struct scribbler {
	uint8_t *ram;
	volatile int stop;
	uint64_t seed;
	uint64_t writes;
};

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Writes 8 bytes at random places, as a guest would, until told to stop. */
static void *scribble(void *arg)
{
	struct scribbler *sc = arg;
	while (!sc->stop) {
		uint64_t r = next_rand(&sc->seed);
		uint64_t off = (r % (PAGES * (uint64_t)PAGE)) & ~7ULL;
		memcpy(sc->ram + off, &r, 8);
		sc->writes++;
	}
	return NULL;
}

static char *make_dir(void)
{
	char tmpl[] = "/tmp/test_cow.XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	char *path = malloc(strlen(d) + 8);
	sprintf(path, "%s/rec", d);
	return path;
}

static void remove_dir(const char *rec)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%.*s'", (int)(strrchr(rec, '/') - rec), rec);
	assert_int_equal(system(cmd), 0);
}

static void ignore_problem(void *opaque, const char *problem)
{
	(void)opaque;
	print_message("%s\n", problem);
}

static void run_checkpoints(bool stop_copy)
{
	uint8_t *ram = mmap(NULL, PAGES * (size_t)PAGE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(ram != MAP_FAILED);
	for (size_t i = 0; i < PAGES; i++)
		memset(ram + i * PAGE, (int)(i & 0xff), PAGE / 2); /* half of each page set */
	struct guest_mem mem = { .host = ram, .size = PAGES * (uint64_t)PAGE,
				 .low_size = PAGES * (uint64_t)PAGE };
	char *dir = make_dir();
	struct ckpt_info info = { .memory_bytes = mem.size, .interval_ns = 1000000, .mode = "cow",
				  .cpu_model = "test", .config_path = "none", .config_text = "",
				  .created_by = "test_cow" };
	char err[512];
	struct ckpt_store *st = ckpt_store__create(dir, &info, err, sizeof(err));
	assert_non_null(st);
	struct cow *c = cow__new(&mem, st, stop_copy, err, sizeof(err));
	if (!c && !stop_copy) {
		/* No userfaultfd here (a container, say): nothing to test. */
		print_message("skipped: %s\n", err);
		ckpt_store__close(st);
		remove_dir(dir);
		free(dir);
		munmap(ram, mem.size);
		skip();
	}
	assert_non_null(c);

	enum { CHECKPOINTS = 4 };
	uint8_t *expect[CHECKPOINTS];
	struct scribbler sc = { .ram = ram, .seed = 0x9e3779b97f4a7c15ULL };
	pthread_t t = 0;
	for (uint32_t k = 0; k < CHECKPOINTS; k++) {
		if (t) {
			sc.stop = 1;
			pthread_join(t, NULL);
			sc.stop = 0;
		}
		/* The boundary: the scribbler (the vCPU) is stopped. */
		expect[k] = malloc(mem.size);
		memcpy(expect[k], ram, mem.size);
		uint64_t pages;
		assert_int_equal(cow__begin(c, k, &pages, err, sizeof(err)), 0);
		if (k == 0)
			assert_int_equal(pages, PAGES); /* every page counts as written */
		struct ckpt_state state = { .guest_time_ns = k * 1000000ULL };
		void *log = NULL;
		size_t log_len = 0;
		if (k > 0) {
			struct ckpt_log_writer *w = ckpt_log_writer__new(k - 1);
			struct ckpt_event ev = { .kind = CKPT_EV_STOP };
			assert_int_equal(ckpt_log_writer__append(w, &ev), 0);
			assert_int_equal(ckpt_log_writer__finish(w, &log, &log_len), 0);
		}
		assert_int_equal(cow__submit(c, &state, log, log_len, err, sizeof(err)), 0);
		pthread_create(&t, NULL, scribble, &sc);
		usleep(20000);
	}
	sc.stop = 1;
	pthread_join(t, NULL);
	assert_int_equal(cow__finish(c, err, sizeof(err)), 0);
	struct cow_stats cs;
	cow__stats(c, &cs);
	assert_int_equal(cs.committed, CHECKPOINTS);
	assert_true(cs.faults > 0);
	if (!stop_copy)
		print_message("%llu scribbles, %llu write faults, %llu waited for a copy\n",
			      (unsigned long long)sc.writes, (unsigned long long)cs.faults,
			      (unsigned long long)cs.wp_faults);
	cow__free(c);

	uint8_t *image = malloc(mem.size);
	for (uint32_t k = 0; k < CHECKPOINTS; k++) {
		assert_int_equal(ckpt_store__materialize(st, k, image, err, sizeof(err)), 0);
		for (size_t p = 0; p < PAGES; p++)
			if (memcmp(image + p * PAGE, expect[k] + p * PAGE, PAGE))
				fail_msg("checkpoint %u: page 0x%zx differs from RAM at the boundary", k, p);
		free(expect[k]);
	}
	assert_int_equal(ckpt_store__verify(st, ignore_problem, NULL, err, sizeof(err)), 0);
	free(image);
	ckpt_store__close(st);
	remove_dir(dir);
	free(dir);
	munmap(ram, mem.size);
}

static void test_cow_checkpoints_hold_boundary_contents(void **state)
{
	(void)state;
	run_checkpoints(false);
}

static void test_stop_copy_checkpoints_hold_boundary_contents(void **state)
{
	(void)state;
	run_checkpoints(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cow_checkpoints_hold_boundary_contents),
		cmocka_unit_test(test_stop_copy_checkpoints_hold_boundary_contents),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
