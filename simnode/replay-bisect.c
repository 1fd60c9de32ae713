/* The finer checks of `simuboost replay --bisect`, inside the replay plugin.
 *
 * A recording holds the guest's state only at its events (a register hash
 * at each interrupt, the RIP and order of each port/MMIO access) and at the
 * checkpoints. A first replay finds the divergence and the last event that
 * still matched; the driver (replay.c) then re-runs the interval with these
 * watches, chosen from the kind of divergence:
 *
 *   bisect-from=N       per-instruction checks start at instruction N of
 *                       the interval (the last matching event)
 *   watch-field=NAME    a CPU state field that differed at the stop: the
 *                       instruction that last changed it (repeatable)
 *   watch-word=PA/VAL   an 8-byte guest-physical word that differed, with
 *                       its recorded value: every store to it (repeatable)
 *   watch-landmark=RIP/SYNC  the landmark that was missed: every visit of
 *                       RIP with SYNC accesses done, and its register hash
 *
 * "Instruction N" is the number of instructions the interval executed
 * before that one, the count the replay's verdicts use. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay-priv.h"

#define MAX_WORDS 16
#define MAX_FIELDS 8

struct watched_word {
	uint64_t addr, recorded;
	uint64_t stores;
	uint64_t last_insn, last_pc, last_value;
	bool recorded_seen;            /* the replay held the recorded value ... */
	uint64_t recorded_lost_insn;   /* ... until this store replaced it */
	bool recorded_lost;
};

struct watched_field {
	char name[24];
	uint64_t changes;
	uint64_t last_insn, last_pc, before, after;
};

struct replay_bisect {
	uint64_t from;
	struct watched_word words[MAX_WORDS];
	unsigned nwords;
	struct watched_field fields[MAX_FIELDS];
	unsigned nfields;
	bool landmark;
	uint64_t lm_rip, lm_sync;
	uint64_t lm_visits, lm_first_insn, lm_last_insn, lm_last_hash;

	/* the replay's counters */
	qemu_plugin_u64 insns;
	const uint64_t *insns_at_start, *sync_count;

	GHashTable *store_sites;      /* pc -> struct store_site */

	/* per-instruction tracking of the watched fields */
	bool have_prev;
	uint64_t prev_insn;
	struct qemu_plugin_x86_cpu_state prev;
};

static uint64_t interval_insns(const struct replay_bisect *b)
{
	return qemu_plugin_u64_sum(b->insns) - *b->insns_at_start;
}

/* "A/C", two numbers */
static bool parse_pair(const char *s, uint64_t *a, uint64_t *c)
{
	char first[32];
	const char *slash = strchr(s, '/');
	if (!slash || (size_t)(slash - s) >= sizeof(first))
		return false;
	memcpy(first, s, (size_t)(slash - s));
	first[slash - s] = '\0';
	return replay__parse_u64(first, a) && replay__parse_u64(slash + 1, c);
}

int replay_bisect__arg(struct replay_bisect **bp, const char *key, const char *val)
{
	if (strncmp(key, "bisect-", 7) && strncmp(key, "watch-", 6))
		return 0;
	if (!*bp && !(*bp = calloc(1, sizeof(**bp))))
		return -1;
	struct replay_bisect *b = *bp;
	if (!strcmp(key, "bisect-from"))
		return replay__parse_u64(val, &b->from) ? 1 : -1;
	if (!strcmp(key, "watch-field")) {
		if (b->nfields == MAX_FIELDS || strlen(val) >= sizeof(b->fields[0].name))
			return -1;
		snprintf(b->fields[b->nfields++].name, sizeof(b->fields[0].name), "%s", val);
		return 1;
	}
	if (!strcmp(key, "watch-word")) {
		struct watched_word *w = &b->words[b->nwords];
		if (b->nwords == MAX_WORDS || !parse_pair(val, &w->addr, &w->recorded) ||
		    (w->addr & 7))
			return -1;
		b->nwords++;
		return 1;
	}
	if (!strcmp(key, "watch-landmark")) {
		b->landmark = parse_pair(val, &b->lm_rip, &b->lm_sync);
		return b->landmark ? 1 : -1;
	}
	return -1;
}

void replay_bisect__attach(struct replay_bisect *b, qemu_plugin_u64 insns,
			   const uint64_t *insns_at_start, const uint64_t *sync_count)
{
	b->insns = insns;
	b->insns_at_start = insns_at_start;
	b->sync_count = sync_count;
	b->store_sites = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, g_free);
}

/* Before each instruction: which watched fields did the previous one
 * change, and is this a visit of the missed landmark? */
static void on_insn(unsigned int vcpu, void *udata)
{
	struct replay_bisect *b = udata;
	struct qemu_plugin_x86_cpu_state s;
	uint64_t n = interval_insns(b);
	(void)vcpu;

	if (n < b->from)
		return;
	if (b->nfields)
		replay_state__current(&s);
	else
		replay_state__regs(&s);
	/* A landmark match inside a block restarts the instruction as a block
	 * start (see replay-plugin.c): the same instance, seen twice. */
	if (b->landmark && s.rip == b->lm_rip && *b->sync_count == b->lm_sync &&
	    !(b->lm_visits && n == b->lm_last_insn)) {
		if (!b->lm_visits++)
			b->lm_first_insn = n;
		b->lm_last_insn = n;
		b->lm_last_hash = replay_state__reg_hash(&s);
	}
	if (!b->nfields)
		return;
	if (b->have_prev) {
		struct replay_state_diff d;
		replay_state__compare(&s, &b->prev, &d);
		for (unsigned i = 0; i < d.count && i < REPLAY_MAX_STATE_DIFFS; i++)
			for (unsigned f = 0; f < b->nfields; f++) {
				struct watched_field *w = &b->fields[f];
				if (strcmp(w->name, d.fields[i].name))
					continue;
				w->changes++;
				w->last_insn = b->prev_insn;
				w->last_pc = b->prev.rip;
				w->before = d.fields[i].recorded;
				w->after = d.fields[i].replay;
			}
	}
	b->prev = s;
	b->prev_insn = n;
	b->have_prev = true;
}

/* A storing instruction, one per pc. */
struct store_site {
	struct replay_bisect *b;
	uint64_t pc;
};

/* After a store: did it touch a watched word? */
static void on_store(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
	const struct store_site *site = udata;
	struct replay_bisect *b = site->b;
	(void)vcpu;
	struct qemu_plugin_hwaddr *hw = qemu_plugin_get_hwaddr(info, vaddr);
	if (!hw || qemu_plugin_hwaddr_is_io(hw))
		return;
	uint64_t pa = qemu_plugin_hwaddr_phys_addr(hw);
	uint64_t size = 1ull << qemu_plugin_mem_size_shift(info);
	for (unsigned i = 0; i < b->nwords; i++) {
		struct watched_word *w = &b->words[i];
		if (pa >= w->addr + 8 || pa + size <= w->addr)
			continue;
		uint64_t v;
		if (!qemu_plugin_read_memory_phys(w->addr, &v, sizeof(v)))
			continue;
		w->stores++;
		w->last_insn = interval_insns(b) - 1; /* the store's own count is in */
		w->last_pc = site->pc;
		if (w->recorded_seen && !w->recorded_lost && v != w->recorded) {
			w->recorded_lost = true;
			w->recorded_lost_insn = w->last_insn;
		}
		if (v == w->recorded) {
			w->recorded_seen = true;
			w->recorded_lost = false;
		}
		w->last_value = v;
	}
}

void replay_bisect__instrument(struct replay_bisect *b, struct qemu_plugin_tb *tb)
{
	size_t n = qemu_plugin_tb_n_insns(tb);
	for (size_t i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		if (b->nfields || b->landmark)
			qemu_plugin_register_vcpu_insn_exec_cb(insn, on_insn, QEMU_PLUGIN_CB_R_REGS,
							       b);
		if (b->nwords) {
			uint64_t pc = qemu_plugin_insn_vaddr(insn);
			struct store_site *site = g_hash_table_lookup(b->store_sites, &pc);
			if (!site) {
				site = g_new(struct store_site, 1);
				*site = (struct store_site){ .b = b, .pc = pc };
				g_hash_table_insert(b->store_sites, &site->pc, site);
			}
			qemu_plugin_register_vcpu_mem_cb(insn, on_store, QEMU_PLUGIN_CB_NO_REGS,
							 QEMU_PLUGIN_MEM_W, site);
		}
	}
}

json_t *replay_bisect__result(const struct replay_bisect *b)
{
	json_t *fields = json_array(), *words = json_array();
	for (unsigned i = 0; i < b->nfields; i++) {
		const struct watched_field *w = &b->fields[i];
		json_t *o = json_pack("{s:s, s:I}", "name", w->name, "changes", (json_int_t)w->changes);
		if (w->changes)
			json_object_update_new(o, json_pack("{s:I, s:o, s:o, s:o}", "last_change_at",
							    (json_int_t)w->last_insn, "rip",
							    replay__hex(w->last_pc), "before", replay__hex(w->before),
							    "after", replay__hex(w->after)));
		json_array_append_new(fields, o);
	}
	for (unsigned i = 0; i < b->nwords; i++) {
		const struct watched_word *w = &b->words[i];
		json_t *o = json_pack("{s:o, s:o, s:I, s:b}", "address", replay__hex(w->addr), "recorded",
				      replay__hex(w->recorded), "stores", (json_int_t)w->stores,
				      "recorded_value_seen", w->recorded_seen);
		if (w->stores)
			json_object_update_new(o, json_pack("{s:I, s:o, s:o}", "last_store_at",
							    (json_int_t)w->last_insn, "rip",
							    replay__hex(w->last_pc), "value",
							    replay__hex(w->last_value)));
		if (w->recorded_lost)
			json_object_set_new(o, "recorded_value_overwritten_at",
					    json_integer((json_int_t)w->recorded_lost_insn));
		json_array_append_new(words, o);
	}
	json_t *doc = json_pack("{s:I, s:o, s:o}", "from", (json_int_t)b->from, "fields", fields,
				"words", words);
	if (b->landmark) {
		json_t *lm = json_pack("{s:o, s:I, s:I}", "rip", replay__hex(b->lm_rip), "sync_count",
				       (json_int_t)b->lm_sync, "visits", (json_int_t)b->lm_visits);
		if (b->lm_visits)
			json_object_update_new(lm, json_pack("{s:I, s:I, s:o}", "first_visit_at",
							     (json_int_t)b->lm_first_insn,
							     "last_visit_at", (json_int_t)b->lm_last_insn,
							     "last_visit_hash", replay__hex(b->lm_last_hash)));
		json_object_set_new(doc, "landmark", lm);
	}
	return doc;
}
