/* working-set: the memory working set of every interval (distinct
 * guest-physical pages read and written, and the accesses) and, over the
 * whole run, how often each page is written: in how many intervals, and
 * how many stores.
 *
 * Args: top=N (most-written pages listed, default 20). */
#include <glib.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "simuboost-analysis.h"

#define PAGE_SHIFT 12
#define TOUCHED 1u
#define WRITTEN 2u

struct row {
	uint64_t interval, loads, stores, touched, written;
};

struct page_writes {
	uint64_t stores, intervals;
};

struct state {
	GArray *rows;               /* struct row, one per interval ended */
	GHashTable *touched;        /* page -> 1: every page touched in the range */
	GHashTable *writes;         /* page -> struct page_writes */
	/* the interval running */
	uint32_t interval;
	uint64_t loads, stores;
	GHashTable *cur;            /* page -> stores << 2 | WRITTEN | TOUCHED */
	uint64_t last_page;         /* cached entry of cur, not yet stored in it */
	uint64_t last_val;          /* 0: none */
};

struct plugin {
	unsigned top;
};

static void *create(const char *args, char *err, size_t errlen)
{
	unsigned long top = 20;
	if (sb_analysis_arg_uint(args, "top", &top) < 0 || (*args && strncmp(args, "top=", 4))) {
		snprintf(err, errlen, "bad argument \"%s\" (expected top=N, N > 0)", args);
		return NULL;
	}
	struct plugin *p = g_new0(struct plugin, 1);
	p->top = (unsigned)top;
	return p;
}

static void destroy(void *plugin)
{
	g_free(plugin);
}

static void *state_new(void *plugin)
{
	struct state *s = g_new0(struct state, 1);
	(void)plugin;
	s->rows = g_array_new(FALSE, FALSE, sizeof(struct row));
	s->touched = g_hash_table_new(g_direct_hash, g_direct_equal);
	s->writes = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
	s->cur = g_hash_table_new(g_direct_hash, g_direct_equal);
	return s;
}

static void state_free(void *plugin, void *state)
{
	struct state *s = state;
	(void)plugin;
	g_array_free(s->rows, TRUE);
	g_hash_table_destroy(s->touched);
	g_hash_table_destroy(s->writes);
	g_hash_table_destroy(s->cur);
	g_free(s);
}

static struct page_writes *writes_of(struct state *s, uint64_t page)
{
	struct page_writes *w = g_hash_table_lookup(s->writes, GSIZE_TO_POINTER(page));
	if (!w) {
		w = g_new0(struct page_writes, 1);
		g_hash_table_insert(s->writes, GSIZE_TO_POINTER(page), w);
	}
	return w;
}

static void interval_begin(void *plugin, void *state, uint32_t interval)
{
	struct state *s = state;
	(void)plugin;
	s->interval = interval;
	s->loads = s->stores = 0;
	s->last_val = 0;
	g_hash_table_remove_all(s->cur);
}

static void flush_last(struct state *s)
{
	if (s->last_val)
		g_hash_table_insert(s->cur, GSIZE_TO_POINTER(s->last_page),
				    GSIZE_TO_POINTER(s->last_val));
	s->last_val = 0;
}

static void on_mem(void *state, const struct trace_record *rec)
{
	struct state *s = state;
	uint64_t page = rec->mem.paddr >> PAGE_SHIFT;

	if (!s->last_val || page != s->last_page) {
		flush_last(s);
		s->last_page = page;
		s->last_val = GPOINTER_TO_SIZE(g_hash_table_lookup(s->cur, GSIZE_TO_POINTER(page))) |
			      TOUCHED;
	}
	if (rec->mem.write) {
		s->last_val = (s->last_val | WRITTEN) + 4;
		s->stores++;
	} else {
		s->loads++;
	}
}

static int interval_end(void *plugin, void *state, uint32_t interval, const struct sb_memory *mem,
			char *err, size_t errlen)
{
	struct state *s = state;
	struct row row = { .interval = interval, .loads = s->loads, .stores = s->stores };
	GHashTableIter it;
	gpointer key, val;
	(void)plugin, (void)mem, (void)err, (void)errlen;

	flush_last(s);
	g_hash_table_iter_init(&it, s->cur);
	while (g_hash_table_iter_next(&it, &key, &val)) {
		uint64_t v = GPOINTER_TO_SIZE(val);
		row.touched++;
		g_hash_table_add(s->touched, key);
		if (v & WRITTEN) {
			struct page_writes *w = writes_of(s, GPOINTER_TO_SIZE(key));
			row.written++;
			w->stores += v >> 2;
			w->intervals++;
		}
	}
	g_array_append_val(s->rows, row);
	return 0;
}

static int merge(void *plugin, void *into, const void *next_state, char *err, size_t errlen)
{
	struct state *a = into;
	const struct state *b = next_state;
	GHashTableIter it;
	gpointer key, val;
	(void)plugin, (void)err, (void)errlen;

	g_array_append_vals(a->rows, b->rows->data, b->rows->len);
	g_hash_table_iter_init(&it, b->touched);
	while (g_hash_table_iter_next(&it, &key, &val))
		g_hash_table_add(a->touched, key);
	g_hash_table_iter_init(&it, b->writes);
	while (g_hash_table_iter_next(&it, &key, &val)) {
		const struct page_writes *from = val;
		struct page_writes *to = writes_of(a, GPOINTER_TO_SIZE(key));
		to->stores += from->stores;
		to->intervals += from->intervals;
	}
	return 0;
}

/* u64 words: row count, rows; touched count, pages; written count, then
 * page, stores, intervals each. */
static int save(void *plugin, const void *state, FILE *out)
{
	const struct state *s = state;
	uint64_t n = s->rows->len;
	GHashTableIter it;
	gpointer key, val;
	(void)plugin;

	fwrite(&n, 8, 1, out);
	fwrite(s->rows->data, sizeof(struct row), s->rows->len, out);
	n = g_hash_table_size(s->touched);
	fwrite(&n, 8, 1, out);
	g_hash_table_iter_init(&it, s->touched);
	while (g_hash_table_iter_next(&it, &key, &val)) {
		uint64_t page = GPOINTER_TO_SIZE(key);
		fwrite(&page, 8, 1, out);
	}
	n = g_hash_table_size(s->writes);
	fwrite(&n, 8, 1, out);
	g_hash_table_iter_init(&it, s->writes);
	while (g_hash_table_iter_next(&it, &key, &val)) {
		const struct page_writes *w = val;
		uint64_t rec[3] = { GPOINTER_TO_SIZE(key), w->stores, w->intervals };
		fwrite(rec, sizeof(rec), 1, out);
	}
	return ferror(out) ? -1 : 0;
}

static void *load(void *plugin, FILE *in, char *err, size_t errlen)
{
	struct state *s = state_new(plugin);
	uint64_t n;

	if (fread(&n, 8, 1, in) != 1)
		goto bad;
	for (uint64_t i = 0; i < n; i++) {
		struct row r;
		if (fread(&r, sizeof(r), 1, in) != 1)
			goto bad;
		g_array_append_val(s->rows, r);
	}
	if (fread(&n, 8, 1, in) != 1)
		goto bad;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t page;
		if (fread(&page, 8, 1, in) != 1)
			goto bad;
		g_hash_table_add(s->touched, GSIZE_TO_POINTER(page));
	}
	if (fread(&n, 8, 1, in) != 1)
		goto bad;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t rec[3];
		if (fread(rec, sizeof(rec), 1, in) != 1)
			goto bad;
		struct page_writes *w = writes_of(s, rec[0]);
		w->stores = rec[1];
		w->intervals = rec[2];
	}
	return s;
bad:
	snprintf(err, errlen, "working-set state truncated");
	state_free(plugin, s);
	return NULL;
}

struct ranked {
	uint64_t page;
	const struct page_writes *w;
};

static int by_stores(const void *x, const void *y)
{
	const struct ranked *a = x, *b = y;
	if (a->w->stores != b->w->stores)
		return a->w->stores < b->w->stores ? 1 : -1;
	return (a->page > b->page) - (a->page < b->page);
}

static int report(void *plugin, const void *state, FILE *out)
{
	const struct plugin *p = plugin;
	const struct state *s = state;
	guint n = g_hash_table_size(s->writes);
	struct ranked *v = g_new(struct ranked, n ? n : 1);
	GHashTableIter it;
	gpointer key, val;
	guint i = 0;

	fprintf(out, "%8s %14s %14s %10s %10s\n", "interval", "loads", "stores", "pages", "written");
	for (i = 0; i < s->rows->len; i++) {
		const struct row *r = &g_array_index(s->rows, struct row, i);
		fprintf(out, "%8" PRIu64 " %14" PRIu64 " %14" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n",
			r->interval, r->loads, r->stores, r->touched, r->written);
	}
	fprintf(out, "run: %u pages touched (%.1f MiB), %u written\n",
		g_hash_table_size(s->touched), g_hash_table_size(s->touched) / 256.0, n);
	i = 0;
	g_hash_table_iter_init(&it, s->writes);
	while (g_hash_table_iter_next(&it, &key, &val))
		v[i++] = (struct ranked){ GPOINTER_TO_SIZE(key), val };
	qsort(v, n, sizeof(*v), by_stores);
	fprintf(out, "%4s  %-18s %14s %10s\n", "rank", "page", "stores", "intervals");
	for (i = 0; i < n && i < p->top; i++)
		fprintf(out, "%4u  0x%-16" PRIx64 " %14" PRIu64 " %10" PRIu64 "\n", i + 1,
			v[i].page << PAGE_SHIFT, v[i].w->stores, v[i].w->intervals);
	g_free(v);
	return ferror(out) ? -1 : 0;
}

static const struct sb_analysis analysis = {
	.api_version = SB_ANALYSIS_API_VERSION,
	.name = "working-set",
	.create = create,
	.destroy = destroy,
	.state_new = state_new,
	.state_free = state_free,
	.interval_begin = interval_begin,
	.mem = on_mem,
	.interval_end = interval_end,
	.save = save,
	.load = load,
	.merge = merge,
	.report = report,
};

const struct sb_analysis *simuboost_analysis(void);
const struct sb_analysis *simuboost_analysis(void)
{
	return &analysis;
}
