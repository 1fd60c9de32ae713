/* page-redundancy: how much of guest memory is zero pages or duplicates
 * of other pages, interval by interval, and how long a page stays
 * redundant (the memory-content study SimuBoost was built for).
 *
 * At the end of every interval the plugin hashes every guest page
 * (XXH3-64): a page is redundant if it is all zeroes or another page has
 * the same content. A row per interval gives zero pages, duplicates,
 * distinct contents and the pages deduplication would save. A page's
 * *redundancy lifetime* is a run of consecutive samples in which it is
 * redundant; runs that began before the first sample or last past the
 * last one are counted apart (censored), the rest go into a histogram.
 *
 * Args: none.
 *
 * Merging joins runs across the boundary: a state keeps, per page, the
 * run touching its first sample and the run touching its last. */
#include <glib.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "simuboost-analysis.h"

#define PAGE_SIZE 4096u
#define BUCKETS 33 /* run lengths 1, 2-3, 4-7, ... */

struct row {
	uint64_t interval, zero, nonzero, distinct, duplicates;
};

struct state {
	uint64_t pages;         /* 0 before the first sample */
	uint64_t samples;
	GArray *rows;           /* struct row */
	uint64_t runs[BUCKETS]; /* completed runs by length bucket */
	uint64_t run_samples;   /* their total length */
	uint32_t *head;         /* per page: the run from the first sample (= samples: all) */
	uint32_t *tail;         /* per page: the run up to the last sample */
};

static void *create(const char *args, char *err, size_t errlen)
{
	if (*args) {
		snprintf(err, errlen, "takes no arguments (got \"%s\")", args);
		return NULL;
	}
	return g_new0(char, 1);
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
	return s;
}

static void state_free(void *plugin, void *state)
{
	struct state *s = state;
	(void)plugin;
	g_array_free(s->rows, TRUE);
	g_free(s->head);
	g_free(s->tail);
	g_free(s);
}

static void size_for(struct state *s, uint64_t pages)
{
	s->pages = pages;
	s->head = g_new0(uint32_t, pages);
	s->tail = g_new0(uint32_t, pages);
}

static unsigned bucket(uint64_t len)
{
	unsigned b = 0;
	while (len > 1 && b < BUCKETS - 1) {
		len >>= 1;
		b++;
	}
	return b;
}

/* Page p of a (over na samples) followed by the same page of a range of
 * nb samples with runs bhead, btail. */
static void join(struct state *a, uint64_t p, uint64_t na, uint32_t bhead, uint32_t btail,
		 uint64_t nb)
{
	bool a_all = a->head[p] == na, b_all = bhead == nb;
	if (!a_all && !b_all && a->tail[p] + bhead) {
		uint64_t len = (uint64_t)a->tail[p] + bhead;
		a->runs[bucket(len)]++;
		a->run_samples += len;
	}
	if (a_all)
		a->head[p] = (uint32_t)(na + bhead);
	a->tail[p] = b_all ? (uint32_t)(a->tail[p] + nb) : btail;
}

static void interval_begin(void *plugin, void *state, uint32_t interval)
{
	(void)plugin, (void)state, (void)interval;
}

static int interval_end(void *plugin, void *state, uint32_t interval, const struct sb_memory *mem,
			char *err, size_t errlen)
{
	struct state *s = state;
	struct row row = { .interval = interval };
	uint64_t *hash = g_new(uint64_t, mem->pages ? mem->pages : 1);
	GHashTable *copies = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, NULL);
	uint8_t page[PAGE_SIZE];
	static const uint8_t zero[PAGE_SIZE];
	int rc = 0;
	(void)plugin;

	if (!s->pages)
		size_for(s, mem->pages);
	if (s->pages != mem->pages) {
		snprintf(err, errlen, "guest memory is %" PRIu64 " pages, was %" PRIu64, mem->pages,
			 s->pages);
		rc = -1;
		goto out;
	}
	/* hash[p]: 0 for a zero page, else its content hash (nonzero) */
	for (uint64_t p = 0; p < mem->pages; p++) {
		if (mem->read_page(mem, p, page) != 0) {
			snprintf(err, errlen, "page 0x%" PRIx64 " unreadable", p);
			rc = -1;
			goto out;
		}
		if (!memcmp(page, zero, PAGE_SIZE)) {
			hash[p] = 0;
			row.zero++;
			continue;
		}
		hash[p] = XXH3_64bits(page, PAGE_SIZE) | 1;
		gpointer n = g_hash_table_lookup(copies, &hash[p]);
		g_hash_table_insert(copies, &hash[p], GSIZE_TO_POINTER(GPOINTER_TO_SIZE(n) + 1));
	}
	row.nonzero = mem->pages - row.zero;
	row.distinct = g_hash_table_size(copies);
	for (uint64_t p = 0; p < mem->pages; p++) {
		bool dup = hash[p] && GPOINTER_TO_SIZE(g_hash_table_lookup(copies, &hash[p])) > 1;
		row.duplicates += dup;
		join(s, p, s->samples, !hash[p] || dup, !hash[p] || dup, 1);
	}
	s->samples++;
	g_array_append_val(s->rows, row);
out:
	g_hash_table_destroy(copies);
	g_free(hash);
	return rc;
}

static int merge(void *plugin, void *into, const void *next_state, char *err, size_t errlen)
{
	struct state *a = into;
	const struct state *b = next_state;
	(void)plugin;

	if (!b->samples)
		return 0;
	if (!a->pages)
		size_for(a, b->pages);
	if (a->pages != b->pages) {
		snprintf(err, errlen, "guest memory of %" PRIu64 " pages follows %" PRIu64, b->pages,
			 a->pages);
		return -1;
	}
	for (uint64_t p = 0; p < a->pages; p++)
		join(a, p, a->samples, b->head[p], b->tail[p], b->samples);
	for (unsigned i = 0; i < BUCKETS; i++)
		a->runs[i] += b->runs[i];
	a->run_samples += b->run_samples;
	a->samples += b->samples;
	g_array_append_vals(a->rows, b->rows->data, b->rows->len);
	return 0;
}

/* u64 pages, samples, run_samples, runs[BUCKETS], row count, rows, then
 * head[pages] and tail[pages] as u32. */
static int save(void *plugin, const void *state, FILE *out)
{
	const struct state *s = state;
	uint64_t head[3] = { s->pages, s->samples, s->run_samples }, n = s->rows->len;
	(void)plugin;
	fwrite(head, sizeof(head), 1, out);
	fwrite(s->runs, sizeof(s->runs), 1, out);
	fwrite(&n, 8, 1, out);
	fwrite(s->rows->data, sizeof(struct row), s->rows->len, out);
	if (s->pages) {
		fwrite(s->head, sizeof(uint32_t), s->pages, out);
		fwrite(s->tail, sizeof(uint32_t), s->pages, out);
	}
	return ferror(out) ? -1 : 0;
}

static void *load(void *plugin, FILE *in, char *err, size_t errlen)
{
	struct state *s = state_new(plugin);
	uint64_t head[3], n;

	if (fread(head, sizeof(head), 1, in) != 1 || fread(s->runs, sizeof(s->runs), 1, in) != 1 ||
	    fread(&n, 8, 1, in) != 1 || n != head[1] || head[0] > (1ull << 40) / PAGE_SIZE)
		goto bad;
	s->samples = head[1];
	s->run_samples = head[2];
	for (uint64_t i = 0; i < n; i++) {
		struct row r;
		if (fread(&r, sizeof(r), 1, in) != 1)
			goto bad;
		g_array_append_val(s->rows, r);
	}
	if (head[0]) {
		/* the per-page runs must be all that is left: no allocation
		 * bigger than the input */
		long here = ftell(in);
		if (here < 0 || fseek(in, 0, SEEK_END) != 0)
			goto bad;
		long end = ftell(in);
		if (end - here != (long)(head[0] * 2 * sizeof(uint32_t)) ||
		    fseek(in, here, SEEK_SET) != 0)
			goto bad;
		size_for(s, head[0]);
		if (fread(s->head, sizeof(uint32_t), s->pages, in) != s->pages ||
		    fread(s->tail, sizeof(uint32_t), s->pages, in) != s->pages)
			goto bad;
		for (uint64_t p = 0; p < s->pages; p++)
			if (s->head[p] > s->samples || s->tail[p] > s->samples)
				goto bad;
	}
	return s;
bad:
	snprintf(err, errlen, "page-redundancy state truncated or inconsistent");
	state_free(plugin, s);
	return NULL;
}

static int report(void *plugin, const void *state, FILE *out)
{
	const struct state *s = state;
	uint64_t whole = 0, from_start = 0, at_end = 0, completed = 0;
	(void)plugin;

	fprintf(out, "%8s %10s %10s %10s %10s %10s %7s\n", "interval", "pages", "zero", "duplicate",
		"distinct", "saveable", "saved");
	for (guint i = 0; i < s->rows->len; i++) {
		const struct row *r = &g_array_index(s->rows, struct row, i);
		uint64_t pages = r->zero + r->nonzero, save = r->zero + r->nonzero - r->distinct;
		fprintf(out, "%8" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64
			" %10" PRIu64 " %6.2f%%\n", r->interval, pages, r->zero, r->duplicates,
			r->distinct, save, pages ? 100.0 * (double)save / (double)pages : 0.0);
	}
	for (uint64_t p = 0; p < s->pages; p++) {
		if (s->samples && s->head[p] == s->samples) {
			whole++;
			continue;
		}
		from_start += s->head[p] > 0;
		at_end += s->tail[p] > 0;
	}
	for (unsigned b = 0; b < BUCKETS; b++)
		completed += s->runs[b];
	fprintf(out, "redundancy lifetimes over %" PRIu64 " samples: %" PRIu64
		" runs ended (mean %.2f intervals), %" PRIu64 " redundant throughout, %" PRIu64
		" from the first sample, %" PRIu64 " still at the last\n",
		s->samples, completed,
		completed ? (double)s->run_samples / (double)completed : 0.0, whole, from_start,
		at_end);
	fprintf(out, "%12s %12s\n", "intervals", "runs");
	for (unsigned b = 0; b < BUCKETS; b++)
		if (s->runs[b])
			fprintf(out, "%5" PRIu64 "-%-6" PRIu64 " %12" PRIu64 "\n", (uint64_t)1 << b,
				((uint64_t)2 << b) - 1, s->runs[b]);
	return ferror(out) ? -1 : 0;
}

static const struct sb_analysis analysis = {
	.api_version = SB_ANALYSIS_API_VERSION,
	.name = "page-redundancy",
	.flags = SB_ANALYSIS_MEMORY,
	.create = create,
	.destroy = destroy,
	.state_new = state_new,
	.state_free = state_free,
	.interval_begin = interval_begin,
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
