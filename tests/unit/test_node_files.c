/* simnode/node-files.c: a node that starts removes the copies of
 * recordings that nodes which died left in its work directory, and only
 * those: a copy whose lock is held, or that is being made, stays. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "node-files.h"

static void make_copy(const char *dir, const char *name, bool with_lock)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/%s/000000.manifest", dir, name);
	close(open(path, O_WRONLY | O_CREAT, 0644));
	if (with_lock) {
		snprintf(path, sizeof(path), "%s/%s/.lock", dir, name);
		close(open(path, O_WRONLY | O_CREAT, 0644));
	}
}

static bool exists(const char *dir, const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

static void test_stale_copies_go(void **state)
{
	(void)state;
	char dir[] = "/tmp/simuboost-node-files-XXXXXX", path[512];
	assert_non_null(mkdtemp(dir));
	make_copy(dir, "run-dead", true);      /* its node died: no one holds the lock */
	make_copy(dir, "run-live", true);      /* a running node's */
	make_copy(dir, "run-new", false);      /* being made */
	make_copy(dir, "run-old", false);      /* died before it had a lock, long ago */
	make_copy(dir, "not-a-copy", false);
	snprintf(path, sizeof(path), "%s/run-live/.lock", dir);
	int held = open(path, O_RDWR);
	assert_true(held >= 0);
	assert_int_equal(flock(held, LOCK_EX), 0);
	struct timeval old[2] = { { .tv_sec = time(NULL) - 7200 }, { .tv_sec = time(NULL) - 7200 } };
	snprintf(path, sizeof(path), "%s/run-old", dir);
	assert_int_equal(utimes(path, old), 0);

	struct node_files *f = node_files__new(dir, false);
	assert_non_null(f);
	assert_false(exists(dir, "run-dead"));
	assert_true(exists(dir, "run-live"));
	assert_true(exists(dir, "run-new"));
	assert_false(exists(dir, "run-old"));
	assert_true(exists(dir, "not-a-copy"));
	node_files__free(f);

	/* a node told it shares the recording touches nothing */
	close(held);
	f = node_files__new(dir, true);
	assert_true(exists(dir, "run-live"));
	node_files__free(f);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stale_copies_go),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
