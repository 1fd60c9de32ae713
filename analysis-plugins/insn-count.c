/* insn-count: instructions executed, by privilege level, and the hot
 * blocks: where control arrives by a jump, call, return, interrupt or
 * exception (any instruction that does not follow the one before it),
 * how often, and how many instructions ran before control left again.
 *
 * Args: top=N (blocks listed, default 20).
 *
 * A block can span an interval boundary. An interval's own state counts
 * its first instruction as a block start; merge takes that back when the
 * previous range's last instruction falls through into it, and gives the
 * instructions of that head run to the block they continue, as a serial
 * run would have. */
#include <glib.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "simuboost-analysis.h"

struct block {
	uint64_t entries, insns;
};

struct state {
	uint64_t insns, by_cpl[4];
	GHashTable *blocks;         /* start pc -> struct block */
	/* the boundary, for merge */
	bool any;                   /* has seen an instruction */
	uint64_t first_pc;          /* the first one, which started a block */
	uint64_t head_insns;        /* instructions of that first block run */
	bool head_open;             /* ... which has not ended yet */
	uint64_t next_pc;           /* after the last instruction */
	uint64_t cur;               /* the start of the block running last */
	struct block *cur_block;
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
	s->blocks = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
	return s;
}

static void state_free(void *plugin, void *state)
{
	struct state *s = state;
	(void)plugin;
	g_hash_table_destroy(s->blocks);
	g_free(s);
}

static struct block *block_at(struct state *s, uint64_t pc)
{
	struct block *b = g_hash_table_lookup(s->blocks, GSIZE_TO_POINTER(pc));
	if (!b) {
		b = g_new0(struct block, 1);
		g_hash_table_insert(s->blocks, GSIZE_TO_POINTER(pc), b);
	}
	return b;
}

static void interval_begin(void *plugin, void *state, uint32_t interval)
{
	(void)plugin, (void)state, (void)interval;
}

static void on_insn(void *state, const struct trace_record *rec)
{
	struct state *s = state;
	uint64_t pc = rec->insn.pc;

	if (!s->any || pc != s->next_pc) {
		if (s->any)
			s->head_open = false;
		else {
			s->any = s->head_open = true;
			s->first_pc = pc;
		}
		s->cur = pc;
		s->cur_block = block_at(s, pc);
		s->cur_block->entries++;
	}
	if (s->head_open)
		s->head_insns++;
	s->cur_block->insns++;
	s->next_pc = pc + rec->insn.size;
	s->insns++;
	s->by_cpl[rec->insn.cpl & 3]++;
}

static int interval_end(void *plugin, void *state, uint32_t interval, const struct sb_memory *mem,
			char *err, size_t errlen)
{
	(void)plugin, (void)state, (void)interval, (void)mem, (void)err, (void)errlen;
	return 0;
}

static int merge(void *plugin, void *into, const void *next_state, char *err, size_t errlen)
{
	struct state *a = into;
	const struct state *b = next_state;
	GHashTableIter it;
	gpointer key, val;
	(void)plugin, (void)err, (void)errlen;

	if (!b->any)
		return 0;
	g_hash_table_iter_init(&it, b->blocks);
	while (g_hash_table_iter_next(&it, &key, &val)) {
		const struct block *from = val;
		struct block *to = block_at(a, GPOINTER_TO_SIZE(key));
		to->entries += from->entries;
		to->insns += from->insns;
	}
	bool falls_through = a->any && a->next_pc == b->first_pc;
	if (falls_through) {
		/* b's head run continues a's last block */
		struct block *head = block_at(a, b->first_pc);
		head->entries--;
		head->insns -= b->head_insns;
		if (!head->entries)
			g_hash_table_remove(a->blocks, GSIZE_TO_POINTER(b->first_pc));
		block_at(a, a->cur)->insns += b->head_insns;
	}
	if (!a->any) {
		a->any = true;
		a->first_pc = b->first_pc;
		a->head_insns = b->head_insns;
		a->head_open = b->head_open;
	} else if (a->head_open) {
		/* a is one block run so far: it goes on through b's head */
		if (falls_through)
			a->head_insns += b->head_insns;
		a->head_open = falls_through && b->head_open;
	}
	if (!(falls_through && b->head_open))
		a->cur = b->cur;
	a->cur_block = block_at(a, a->cur);
	a->next_pc = b->next_pc;
	a->insns += b->insns;
	for (unsigned i = 0; i < 4; i++)
		a->by_cpl[i] += b->by_cpl[i];
	return 0;
}

/* The state as u64 words: the counters, the boundary, then per block
 * pc, entries, insns. */
static int save(void *plugin, const void *state, FILE *out)
{
	const struct state *s = state;
	uint64_t head[11] = { s->insns, s->by_cpl[0], s->by_cpl[1], s->by_cpl[2], s->by_cpl[3],
			      s->any | (uint64_t)s->head_open << 1, s->first_pc, s->head_insns,
			      s->next_pc, s->cur, g_hash_table_size(s->blocks) };
	GHashTableIter it;
	gpointer key, val;
	(void)plugin;

	fwrite(head, sizeof(head), 1, out);
	g_hash_table_iter_init(&it, s->blocks);
	while (g_hash_table_iter_next(&it, &key, &val)) {
		const struct block *b = val;
		uint64_t rec[3] = { GPOINTER_TO_SIZE(key), b->entries, b->insns };
		fwrite(rec, sizeof(rec), 1, out);
	}
	return ferror(out) ? -1 : 0;
}

static void *load(void *plugin, FILE *in, char *err, size_t errlen)
{
	struct state *s = state_new(plugin);
	uint64_t head[11];

	if (fread(head, sizeof(head), 1, in) != 1)
		goto bad;
	s->insns = head[0];
	memcpy(s->by_cpl, head + 1, sizeof(s->by_cpl));
	s->any = head[5] & 1;
	s->head_open = head[5] >> 1 & 1;
	s->first_pc = head[6];
	s->head_insns = head[7];
	s->next_pc = head[8];
	s->cur = head[9];
	for (uint64_t i = 0; i < head[10]; i++) {
		uint64_t rec[3];
		if (fread(rec, sizeof(rec), 1, in) != 1)
			goto bad;
		struct block *b = block_at(s, rec[0]);
		b->entries = rec[1];
		b->insns = rec[2];
	}
	if (s->any && !g_hash_table_contains(s->blocks, GSIZE_TO_POINTER(s->cur)))
		goto bad;
	if (s->any)
		s->cur_block = block_at(s, s->cur);
	return s;
bad:
	snprintf(err, errlen, "insn-count state truncated or inconsistent");
	state_free(plugin, s);
	return NULL;
}

struct ranked {
	uint64_t pc;
	const struct block *b;
};

static int by_heat(const void *x, const void *y)
{
	const struct ranked *a = x, *b = y;
	if (a->b->insns != b->b->insns)
		return a->b->insns < b->b->insns ? 1 : -1;
	return (a->pc > b->pc) - (a->pc < b->pc);
}

static int report(void *plugin, const void *state, FILE *out)
{
	const struct plugin *p = plugin;
	const struct state *s = state;
	guint n = g_hash_table_size(s->blocks);
	struct ranked *v = g_new(struct ranked, n ? n : 1);
	GHashTableIter it;
	gpointer key, val;
	uint64_t entries = 0;
	guint i = 0;

	g_hash_table_iter_init(&it, s->blocks);
	while (g_hash_table_iter_next(&it, &key, &val)) {
		v[i++] = (struct ranked){ GPOINTER_TO_SIZE(key), val };
		entries += ((const struct block *)val)->entries;
	}
	qsort(v, n, sizeof(*v), by_heat);
	fprintf(out, "instructions %" PRIu64 "\n", s->insns);
	for (unsigned c = 0; c < 4; c++)
		if (s->by_cpl[c])
			fprintf(out, "  cpl%u %" PRIu64 " (%.2f%%)\n", c, s->by_cpl[c],
				100.0 * (double)s->by_cpl[c] / (double)s->insns);
	fprintf(out, "blocks %u, entered %" PRIu64 " times\n", n, entries);
	fprintf(out, "%4s  %-18s %14s %16s %7s %6s\n", "rank", "pc", "entries", "instructions",
		"share", "avg");
	for (i = 0; i < n && i < p->top; i++)
		fprintf(out, "%4u  0x%-16" PRIx64 " %14" PRIu64 " %16" PRIu64 " %6.2f%% %6.1f\n",
			i + 1, v[i].pc, v[i].b->entries, v[i].b->insns,
			100.0 * (double)v[i].b->insns / (double)s->insns,
			(double)v[i].b->insns / (double)v[i].b->entries);
	g_free(v);
	return ferror(out) ? -1 : 0;
}

static const struct sb_analysis analysis = {
	.api_version = SB_ANALYSIS_API_VERSION,
	.name = "insn-count",
	.create = create,
	.destroy = destroy,
	.state_new = state_new,
	.state_free = state_free,
	.interval_begin = interval_begin,
	.insn = on_insn,
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
