/* distributor/schedule: every interval runs to one result whatever nodes
 * join, fail or vanish; locality decides between pending intervals; the
 * state survives a restart and refuses damage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "distributor.h"

static char err[512];

static void test_every_interval_once(void **state)
{
	struct sched *s = sched__new(10, 20);
	uint32_t k, seen[10] = { 0 };
	(void)state;
	/* two nodes take turns; node 2 vanishes holding an interval */
	assert_int_equal(sched__next(s, 1, NULL, NULL, &k), 1);
	assert_int_equal(k, 10);
	assert_int_equal(sched__next(s, 2, NULL, NULL, &k), 1);
	assert_int_equal(k, 11);
	assert_int_equal(sched__node_lost(s, 2), 1);
	assert_int_equal(sched__state(s, 11, NULL, NULL), SCHED_PENDING);
	/* the lost node's interval comes first */
	assert_int_equal(sched__next(s, 3, NULL, NULL, &k), 1);
	assert_int_equal(k, 11);
	/* a late result from the lost node is dropped, the new one taken */
	assert_int_equal(sched__done(s, 2, 11, true), 0);
	assert_int_equal(sched__done(s, 3, 11, true), 1);
	assert_int_equal(sched__done(s, 3, 11, true), 0); /* twice */
	assert_int_equal(sched__done(s, 1, 10, true), 1);
	seen[0] = seen[1] = 1;
	while (sched__next(s, 1, NULL, NULL, &k)) {
		assert_true(k >= 12 && k < 20);
		seen[k - 10]++;
		assert_int_equal(sched__done(s, 1, k, true), 1);
	}
	for (int i = 0; i < 10; i++)
		assert_int_equal(seen[i], 1);
	assert_true(sched__finished(s));
	unsigned c[4];
	sched__counts(s, c);
	assert_int_equal(c[SCHED_DONE], 10);
	assert_int_equal(sched__done(s, 1, 99, true), 0); /* never assigned */
	sched__free(s);
}

static void test_failures_retried(void **state)
{
	struct sched *s = sched__new(0, 2);
	uint32_t k, node;
	unsigned attempts;
	(void)state;
	for (unsigned i = 0; i < SCHED_ATTEMPTS; i++) {
		assert_int_equal(sched__next(s, 7 + i, NULL, NULL, &k), 1);
		assert_int_equal(k, 0);
		assert_int_equal(sched__done(s, 7 + i, 0, false), 1);
	}
	assert_int_equal(sched__state(s, 0, &node, &attempts), SCHED_FAILED);
	assert_int_equal(attempts, SCHED_ATTEMPTS);
	assert_false(sched__finished(s));
	assert_int_equal(sched__next(s, 1, NULL, NULL, &k), 1);
	assert_int_equal(k, 1);
	assert_int_equal(sched__done(s, 1, 1, true), 1);
	assert_true(sched__finished(s));
	assert_int_equal(sched__next(s, 1, NULL, NULL, &k), 0);
	sched__free(s);
}

/* node n holds the pages of interval n * 3 best */
static double holds(void *ctx, uint32_t node, uint32_t interval)
{
	(void)ctx;
	return interval == node * 3 ? 1.0 : interval == node * 3 + 1 ? 0.5 : 0.0;
}

static void test_locality(void **state)
{
	struct sched *s = sched__new(0, 10);
	uint32_t k;
	(void)state;
	assert_int_equal(sched__next(s, 2, holds, NULL, &k), 1);
	assert_int_equal(k, 6);
	assert_int_equal(sched__next(s, 2, holds, NULL, &k), 1);
	assert_int_equal(k, 7);
	assert_int_equal(sched__next(s, 2, holds, NULL, &k), 1);
	assert_int_equal(k, 0); /* nothing held: the earliest */
	sched__free(s);
}

/* A finished interval whose result was lost runs again, first in line;
 * one not finished is not redone. */
static void test_redo(void **state)
{
	struct sched *s = sched__new(0, 3);
	uint32_t k;
	(void)state;
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(sched__next(s, 1, NULL, NULL, &k), 1);
		if (k < 2)
			sched__done(s, 1, k, true);
	}
	assert_true(sched__finished(s) == false);     /* 2 still running */
	assert_int_equal(sched__redo(s, 2), 0);
	assert_int_equal(sched__redo(s, 9), 0);
	assert_int_equal(sched__redo(s, 1), 1);
	assert_int_equal(sched__state(s, 1, NULL, NULL), SCHED_PENDING);
	assert_int_equal(sched__redo(s, 1), 0);
	assert_int_equal(sched__next(s, 2, NULL, NULL, &k), 1);
	assert_int_equal(k, 1);
	assert_int_equal(sched__done(s, 2, 1, true), 1);
	assert_int_equal(sched__done(s, 1, 2, true), 1);
	assert_true(sched__finished(s));
	sched__free(s);
}

static void test_restart(void **state)
{
	char path[64];
	struct sched *s = sched__new(5, 9);
	uint32_t k;
	(void)state;
	snprintf(path, sizeof(path), "/tmp/test_schedule.%d", (int)getpid());
	sched__next(s, 1, NULL, NULL, &k); /* 5, done */
	sched__done(s, 1, k, true);
	sched__next(s, 1, NULL, NULL, &k); /* 6, running */
	assert_int_equal(sched__save(s, path, err, sizeof(err)), 0);
	sched__free(s);

	s = sched__load(path, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(sched__state(s, 5, NULL, NULL), SCHED_DONE);
	assert_int_equal(sched__state(s, 6, NULL, NULL), SCHED_PENDING);
	assert_int_equal(sched__next(s, 4, NULL, NULL, &k), 1);
	assert_int_equal(k, 6);
	sched__free(s);

	/* damage: a flipped bit anywhere, any truncation, trailing bytes */
	FILE *f = fopen(path, "rb");
	uint8_t buf[64];
	size_t len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	for (size_t i = 0; i <= len; i++) {
		uint8_t copy[65];
		memcpy(copy, buf, len);
		size_t n = len;
		if (i < len)
			copy[i] ^= 4;
		else
			copy[n++] = 0;
		f = fopen(path, "wb");
		fwrite(copy, 1, n, f);
		fclose(f);
		assert_null(sched__load(path, err, sizeof(err)));
		assert_non_null(strstr(err, path));
		f = fopen(path, "wb");
		fwrite(buf, 1, i < len ? i : 0, f);
		fclose(f);
		assert_null(sched__load(path, err, sizeof(err)));
	}
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_interval_once),
		cmocka_unit_test(test_failures_retried),
		cmocka_unit_test(test_locality),
		cmocka_unit_test(test_redo),
		cmocka_unit_test(test_restart),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
