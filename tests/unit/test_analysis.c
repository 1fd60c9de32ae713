/* analysis-plugins/: the host (load, states on disk, merge) and the example
 * plugins' contract: states of single intervals merged in order report
 * exactly what one state through every interval reports. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "analysis.h"

#define INTERVALS 5
#define PAGES 64

static char err[1024];

/* The records of interval k: a loop of two blocks (0x1000: 5 instructions,
 * 0x2000: 3) cut at interval boundaries mid-block, stores and loads on a
 * few pages, and system calls, one of which blocks across intervals. */
static const unsigned interval_insns[INTERVALS] = { 7, 13, 1, 2, 20 };

static size_t stream(uint32_t k, struct trace_record *out, size_t max)
{
	size_t n = 0;
	uint64_t before = 0;
	for (uint32_t i = 0; i < k; i++)
		before += interval_insns[i];
	for (uint64_t i = 0; i < interval_insns[k]; i++) {
		uint64_t g = before + i, pos = g % 8;
		uint64_t pc = pos < 5 ? 0x1000 + 3 * pos : 0x2000 + 3 * (pos - 5);
		out[n++] = (struct trace_record){ .kind = TRACE_INSN, .icount = i,
						  .insn = { .pc = pc, .size = 3, .cpl = g % 3 ? 3 : 0 } };
		if (g % 2 == 0)
			out[n++] = (struct trace_record){
				.kind = TRACE_MEM, .icount = i,
				.mem = { .vaddr = 0x8000 + 4096 * (g % 3), .paddr = 0x40000 + 4096 * (g % 3),
					 .size = 8, .write = g % 4 == 0, .value = g } };
		struct trace_record ev = { .kind = TRACE_EVENT, .icount = i };
		if (k == 0 && i == 0) /* returns from a call made before the run */
			ev.event = (__typeof__(ev.event)){ .kind = TRACE_EV_SYSRET, .a = 5, .b = 0x3002,
						       .c = 0x9000 };
		else if (k == 0 && i == 3) /* write(1, 0x2000, 16), answered in interval 4 */
			ev.event = (__typeof__(ev.event)){ .kind = TRACE_EV_SYSCALL, .a = 1, .b = 0x3000,
						       .c = 0x9000, .args = { 1, 0x2000, 16 } };
		else if (k == 1 && i == 2) /* getpid() of another process, answered at once */
			ev.event = (__typeof__(ev.event)){ .kind = TRACE_EV_SYSCALL, .a = 39, .b = 0x5000,
						       .c = 0xa000 };
		else if (k == 1 && i == 4)
			ev.event = (__typeof__(ev.event)){ .kind = TRACE_EV_SYSRET, .a = 77, .b = 0x5002,
						       .c = 0xa000 };
		else if (k == 4 && i == 10)
			ev.event = (__typeof__(ev.event)){ .kind = TRACE_EV_SYSRET, .a = 16, .b = 0x3002,
						       .c = 0x9000 };
		if (ev.event.kind)
			out[n++] = ev;
		assert_true(n + 3 <= max);
	}
	return n;
}

/* Guest memory at the end of interval k: pages 32.. zero, pages 0..7 one
 * content until interval 2, pages 8.. distinct, page 40 nonzero from
 * interval 3 on. */
static int read_page(const struct sb_memory *m, uint64_t gpn, void *out)
{
	uint32_t k = *(const uint32_t *)m->host;
	memset(out, 0, 4096);
	uint64_t *w = out;
	if (gpn < 8)
		w[0] = k < 2 ? 0xaa : 0xaa00 + gpn;
	else if (gpn < 32)
		w[0] = 0x1000 + gpn;
	else if (gpn == 40 && k >= 3)
		w[1] = 1;
	return 0;
}

static void feed(struct analysis_state *s, uint32_t k)
{
	struct trace_record recs[128];
	uint32_t at = k;
	struct sb_memory mem = { .pages = PAGES, .read_page = read_page, .host = &at };
	size_t n = stream(k, recs, 128);
	analysis_state__begin(s, k);
	for (size_t i = 0; i < n; i++)
		analysis_state__record(s, &recs[i]);
	assert_int_equal(analysis_state__end(s, &mem, err, sizeof(err)), 0);
}

static char *report_of(struct analysis_state *s)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_int_equal(analysis_state__report(s, f, err, sizeof(err)), 0);
	fclose(f);
	return text;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);
	assert_non_null(f);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static struct analysis *load(const char *name, const char *args)
{
	char spec[512];
	snprintf(spec, sizeof(spec), "%s/%s.so%s%s", ANALYSES_DIR, name, *args ? "," : "", args);
	struct analysis *a = analysis__load(spec, err, sizeof(err));
	if (!a)
		fail_msg("%s", err);
	return a;
}

/* The serial report, and the report of single-interval states saved,
 * loaded and merged: they must be equal. Returns the serial one. */
static char *check_merge(const char *name, const char *args)
{
	struct analysis *a = load(name, args);
	char dir[] = "/tmp/test_analysis.XXXXXX", out[128];
	assert_non_null(mkdtemp(dir));

	struct analysis_state *serial = analysis_state__new(a, err, sizeof(err));
	for (uint32_t k = 0; k < INTERVALS; k++)
		feed(serial, k);
	char *want = report_of(serial);
	analysis_state__free(serial);

	uint32_t bounds[INTERVALS + 1];
	for (uint32_t k = 0; k < INTERVALS; k++) {
		struct analysis_state *s = analysis_state__new(a, err, sizeof(err));
		feed(s, k);
		assert_int_equal(analysis_state__save(s, dir, err, sizeof(err)), 0);
		analysis_state__free(s);
		bounds[k] = k;
	}
	bounds[INTERVALS] = INTERVALS;
	snprintf(out, sizeof(out), "%s/report.txt", dir);
	if (analysis__merge_report(a, dir, bounds, INTERVALS, out, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	char *got = read_file(out);
	assert_string_equal(got, want);
	free(got);

	/* a merge in two halves: [0,2) and [2,5) */
	struct analysis_state *left = analysis_state__new(a, err, sizeof(err));
	struct analysis_state *right = analysis_state__new(a, err, sizeof(err));
	for (uint32_t k = 0; k < INTERVALS; k++)
		feed(k < 2 ? left : right, k);
	assert_int_equal(analysis_state__merge(left, right, err, sizeof(err)), 0);
	got = report_of(left);
	assert_string_equal(got, want);
	free(got);
	analysis_state__free(left);

	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	analysis__close(a);
	return want;
}

static void test_insn_count(void **state)
{
	(void)state;
	char *r = check_merge("insn-count", "top=5");
	/* 43 instructions: block 0x1000 runs 5 at a time, 0x2000 3 */
	assert_non_null(strstr(r, "instructions 43\n"));
	assert_non_null(strstr(r, "blocks 2, entered 11 times\n"));
	assert_non_null(strstr(r, "   1  0x1000                          6               28  65.12%"));
	assert_non_null(strstr(r, "   2  0x2000                          5               15  34.88%"));
	free(r);
}

static void test_working_set(void **state)
{
	(void)state;
	char *r = check_merge("working-set", "top=3");
	assert_non_null(strstr(r, "run: 3 pages touched"));
	assert_non_null(strstr(r, "0x40000"));
	free(r);
}

static void test_syscalls(void **state)
{
	(void)state;
	char *r = check_merge("syscalls", "");
	assert_non_null(strstr(r, "0:3 write(0x1, 0x2000, 0x10, 0x0, 0x0, 0x0) = 16\n"));
	assert_non_null(strstr(r, "1:2 getpid(0x0, 0x0, 0x0, 0x0, 0x0, 0x0) = 77\n"));
	assert_non_null(strstr(r, "2 system calls, 1 returns from calls before the run\n"));
	free(r);
}

static void test_page_redundancy(void **state)
{
	(void)state;
	char *r = check_merge("page-redundancy", "");
	/* interval 0: 32 zero, 8 pages share one content, 24 distinct */
	assert_non_null(strstr(r, "       0         64         32          8         25         39"));
	/* pages 0..7 stop being duplicates after interval 1: 8 runs of 2 end;
	 * page 40 stops being zero in interval 3: a run from the start */
	assert_non_null(strstr(r, "0 runs ended"));
	assert_non_null(strstr(r, "31 redundant throughout, 9 from the first sample"));
	free(r);
}

static void test_bad_states_and_plugins(void **state)
{
	(void)state;
	struct analysis *a = load("insn-count", "");
	struct analysis *w = load("working-set", "");
	char dir[] = "/tmp/test_analysis.XXXXXX", path[256];
	assert_non_null(mkdtemp(dir));

	struct analysis_state *s = analysis_state__new(a, err, sizeof(err));
	feed(s, 0);
	assert_int_equal(analysis_state__save(s, dir, err, sizeof(err)), 0);
	analysis_state__free(s);
	analysis__state_path(path, sizeof(path), dir, "insn-count", 0, 1);
	char *buf = read_file(path);
	FILE *f = fopen(path, "rb");
	fseek(f, 0, SEEK_END);
	size_t len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	assert_int_equal(fread(buf, 1, len, f), len);
	fclose(f);

	/* every truncation and a flipped bit anywhere are refused */
	for (size_t cut = 0; cut < len; cut += 7) {
		assert_null(analysis_state__parse(a, buf, cut, path, err, sizeof(err)));
		assert_non_null(strstr(err, path));
	}
	for (size_t i = 0; i < len; i += 5) {
		buf[i] ^= 0x10;
		assert_null(analysis_state__parse(a, buf, len, path, err, sizeof(err)));
		buf[i] ^= 0x10;
	}
	buf[len / 2] ^= 1;
	assert_null(analysis_state__parse(a, buf, len, path, err, sizeof(err)));
	assert_non_null(strstr(err, "checksum mismatch"));
	buf[len / 2] ^= 1;
	s = analysis_state__parse(a, buf, len, path, err, sizeof(err));
	assert_non_null(s);
	analysis_state__free(s);
	/* another plugin's state, another range */
	assert_null(analysis_state__parse(w, buf, len, path, err, sizeof(err)));
	assert_non_null(strstr(err, "a state of analysis \"insn-count\""));
	assert_null(analysis_state__load(a, dir, 1, 2, err, sizeof(err)));
	assert_non_null(strstr(err, "insn-count.000001-000002.state"));
	free(buf);

	/* merging out of order */
	struct analysis_state *x = analysis_state__new(a, err, sizeof(err));
	struct analysis_state *y = analysis_state__new(a, err, sizeof(err));
	feed(x, 0);
	feed(y, 2);
	assert_int_not_equal(analysis_state__merge(x, y, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "cannot follow"));
	analysis_state__free(x);

	/* plugins that cannot load */
	assert_null(analysis__load(ANALYSES_DIR "/insn-count.so,top=x", err, sizeof(err)));
	assert_non_null(strstr(err, "bad argument"));
	assert_null(analysis__load("/nonexistent/x.so", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/x.so"));
	assert_null(analysis__load("", err, sizeof(err)));

	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	analysis__close(a);
	analysis__close(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_insn_count),
		cmocka_unit_test(test_working_set),
		cmocka_unit_test(test_syscalls),
		cmocka_unit_test(test_page_redundancy),
		cmocka_unit_test(test_bad_states_and_plugins),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
