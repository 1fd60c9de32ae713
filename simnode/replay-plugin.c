/* The replay plugin: loaded into the patched QEMU (simnode/qemu/), it
 * replays intervals of a recording and validates each one against the
 * checkpoint that ends it.
 *
 *   -plugin replay.so,rec=DIR,first=K,last=L,out=FILE[,budget=N][,dsm=FD][,bisect args]
 *
 * replays intervals K..L-1 in one run: it loads checkpoint K's CPU state
 * (the driver maps checkpoint K's RAM as the machine's memory, or with
 * dsm=FD an empty memfd whose pages it serves on demand: replay-dsm.c),
 * serves the
 * guest's port and MMIO reads from the log, checks its writes, injects
 * each interrupt at its landmark and stops at the landmark of checkpoint
 * k+1, where the CPU state and every guest page are compared with the
 * recording. The results go to FILE as JSON (see replay.c), written
 * atomically; QEMU then exits with status 0. A replay that diverges stops
 * at the first divergence.
 *
 * How the landmarks are hit exactly (DESIGN.md, "The hard part"): the
 * next landmark is "armed": its instruction, wherever it is translated,
 * gets a callback that QEMU calls only when the GPRs equal the landmark's,
 * compared inline (qemu_plugin_register_vcpu_insn_exec_regs_eq_cb), since
 * a landmark in a hot loop is passed many times before its registers
 * match. Only the armed instruction is instrumented: timer interrupts land
 * on nearly every instruction of a hot loop, and a compare at each would
 * slow every pass. Re-arming retranslates the old and the new landmark's
 * code (found by physical address through the landmark's CR3, as
 * translated code is shared by every virtual address of a page). On a
 * match inside a block, QEMU restarts the instruction as the start of a
 * block, where the CPU state is complete, and calls back there. The
 * callback compares sync count, RIP and register hash with the next event
 * and, on a match, injects the interrupt and leaves the block before the
 * instruction runs (qemu_plugin_exit_before_insn).
 * Landmarks in hlt (CKPT_LM_HALTED) are handled when the vCPU idles.
 * The bisect arguments add finer checks (replay-bisect.c). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "replay-priv.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define DEFAULT_BUDGET_INSNS_PER_SEC 5000000000ULL /* native CPL3 rate here */
#define DEFAULT_BUDGET_FACTOR 4
#define BUDGET_EXHAUSTED (1ULL << 63)

struct vcpu_counters {
	uint64_t insns;                 /* instructions started */
	uint64_t budget_left;           /* wraps past BUDGET_EXHAUSTED */
	uint64_t armed_gpr[CKPT_GPR__COUNT]; /* the next landmark's GPRs */
};

struct replay {
	struct ckpt_store *store;
	const char *out_path;
	uint32_t first, last;           /* intervals [first, last) */
	uint64_t budget;                /* instructions per interval */

	/* the interval being replayed */
	uint32_t interval;
	struct ckpt_log *log;
	size_t next;                    /* next event of the log */
	uint64_t sync_count;            /* port and MMIO accesses so far */
	uint64_t insns_at_start;
	uint64_t events_replayed;
	uint64_t flag_fixups;           /* landmarks matched after adopting undefined flags */
	bool matched;                   /* an event of this interval matched: */
	size_t last_match;              /* the last one, */
	uint64_t last_match_insns;      /* at this instruction */
	uint64_t wall_start_ns;
	struct ckpt_manifest *end;      /* checkpoint interval+1 */
	struct ckpt_pages pages;           /* its pages, by the time it is reached */

	bool started;                   /* checkpoint `first` is loaded */
	bool finished;

	struct qemu_plugin_scoreboard *counters;
	qemu_plugin_u64 insns;          /* instructions started */
	qemu_plugin_u64 budget_left;    /* wraps past BUDGET_EXHAUSTED */
	/* the next landmark's GPRs, in the order the sites compare them */
	qemu_plugin_u64 armed_gpr[CKPT_GPR__COUNT];
	/* the armed landmark: interval and event index, its RIP and, when the
	 * page tables give it, the physical address of its instruction */
	bool armed;
	uint32_t armed_interval;
	size_t armed_event;
	uint64_t armed_rip, armed_pa;
	bool armed_pa_known;
	bool rearmed;                   /* since the current block began */

	json_t *results;                /* array, one object per interval */
	struct replay_bisect *bisect;   /* NULL unless bisecting */
	struct replay_trace *trace;     /* NULL unless tracing */
	struct replay_dsm dsm;          /* RAM paged in on demand (dsm=) */
	struct replay_page_reader page_reader; /* recorded contents: packs, or the driver */
};

/* QEMU's translation and idle callbacks carry no user data, so the one
 * replay of this QEMU process is reachable from here only. */
static struct replay *the_replay;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t interval_insns(struct replay *r)
{
	return qemu_plugin_u64_sum(r->insns) - r->insns_at_start;
}

static void write_results(struct replay *r, const char *fatal)
{
	json_t *doc = json_pack("{s:i, s:O}", "version", 1, "intervals", r->results);
	char tmp[4096];
	if (fatal)
		json_object_set_new(doc, "error", json_string(fatal));
	snprintf(tmp, sizeof(tmp), "%s.tmp", r->out_path);
	if (json_dump_file(doc, tmp, JSON_INDENT(1)) != 0 || rename(tmp, r->out_path) != 0) {
		fprintf(stderr, "replay: cannot write %s: %s\n", r->out_path, strerror(errno));
		_exit(3);
	}
	json_decref(doc);
}

/* Ends QEMU: the results are complete. exit() from the vCPU thread, as
 * QEMU's isa-debug-exit device does, so that other plugins' exit callbacks
 * run and print what they collected (replay --qemu-plugin). */
static void finish(struct replay *r, const char *fatal)
{
	replay_trace__free(r->trace); /* drops a trace not committed */
	r->trace = NULL;
	write_results(r, fatal);
	r->out_path = NULL; /* on_qemu_exit: nothing more to say */
	exit(0);
}

static json_t *interval_result(struct replay *r, const char *verdict)
{
	return json_pack("{s:i, s:s, s:I, s:I, s:I, s:I, s:f}", "interval", r->interval, "verdict",
			 verdict, "instructions", (json_int_t)interval_insns(r), "events",
			 (json_int_t)r->events_replayed, "events_total",
			 (json_int_t)ckpt_log__count(r->log), "undefined_flag_fixups",
			 (json_int_t)r->flag_fixups, "wall_s",
			 (double)(now_ns() - r->wall_start_ns) / 1e9);
}

static const struct ckpt_event *next_event(struct replay *r)
{
	return r->next < ckpt_log__count(r->log) ? ckpt_log__event(r->log, r->next) : NULL;
}

/* The next event happened as recorded. */
static void match(struct replay *r)
{
	r->matched = true;
	r->last_match = r->next;
	r->last_match_insns = interval_insns(r);
	r->next++;
	r->events_replayed++;
}

/* Reports the interval diverged and ends the replay. kind names the class
 * of divergence; detail says what was expected and what happened. */
static void diverged(struct replay *r, const char *kind, const char *detail, json_t *extra)
{
	struct qemu_plugin_x86_cpu_state s;
	json_t *res = interval_result(r, "diverged");
	json_t *div;

	replay_state__current(&s);
	div = json_pack("{s:s, s:s, s:I, s:o, s:I}", "kind", kind, "detail", detail, "event",
			(json_int_t)r->next, "rip", replay__hex(s.rip), "at_instruction",
			(json_int_t)interval_insns(r));
	if (extra)
		json_object_update_new(div, extra);
	/* Where to look: between the last event that matched and here. */
	json_object_set_new(div, "last_match",
			    r->matched ? json_pack("{s:I, s:I}", "event", (json_int_t)r->last_match,
						   "at_instruction",
						   (json_int_t)r->last_match_insns) :
					 json_null());
	const struct ckpt_event *ev = next_event(r);
	if (ev)
		json_object_set_new(div, "expected",
				    json_pack("{s:s, s:I, s:o, s:b}", "kind",
					      ckpt_event_kind__name(ev->kind), "sync_count",
					      (json_int_t)ev->at.sync_count, "rip", replay__hex(ev->at.rip),
					      "halted", (ev->at.flags & CKPT_LM_HALTED) != 0));
	if (r->bisect)
		json_object_set_new(res, "bisect", replay_bisect__result(r->bisect));
	json_object_set_new(res, "divergence", div);
	json_array_append_new(r->results, res);
	finish(r, NULL);
}

/* The register order of the inline compare: the ones most likely to
 * change between passes over an instruction first, the stack last. */
static const enum ckpt_gpr gpr_compare_order[CKPT_GPR__COUNT] = {
	CKPT_RAX, CKPT_RCX, CKPT_RDX, CKPT_RSI, CKPT_RDI, CKPT_R8, CKPT_R9, CKPT_R10,
	CKPT_R11, CKPT_R12, CKPT_R13, CKPT_R14, CKPT_R15, CKPT_RBX, CKPT_RBP, CKPT_RSP,
};
/* QEMU's names of the same registers (target/i386/tcg/translate.c). */
static const char *const gpr_compare_names[CKPT_GPR__COUNT] = {
	"rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10",
	"r11", "r12", "r13", "r14", "r15", "rbx", "rbp", "rsp",
};

/* Translated code of the instruction at pa goes, so that its next
 * execution is translated again: QEMU drops the blocks holding guest RAM
 * that is written, as self-modifying code needs. */
static void retranslate(uint64_t pa)
{
	uint8_t byte;
	if (qemu_plugin_read_memory_phys(pa, &byte, 1))
		qemu_plugin_write_memory_phys(pa, &byte, 1);
}

/* Arms the next landmark, past the accesses before it, if it is another
 * landmark than the armed one: its GPRs go to the scoreboard the armed
 * instruction compares with, and the code of both is retranslated. Then
 * r->rearmed says the current block must be left (it may hold the new
 * landmark's instruction, uninstrumented). Re-arming happens only at
 * landmarks and interval starts: the next landmark does not change at an
 * access. */
static void arm(struct replay *r)
{
	const struct ckpt_event *lm = NULL;
	size_t i;
	for (i = r->next; r->log && i < ckpt_log__count(r->log); i++) {
		const struct ckpt_event *ev = ckpt_log__event(r->log, i);
		if (ckpt_event_kind__at_landmark(ev->kind)) {
			lm = ev->at.flags & CKPT_LM_HALTED ? NULL : ev;
			break;
		}
	}
	if (lm && r->armed && r->armed_interval == r->interval && r->armed_event == i)
		return;
	if (!lm && !r->armed)
		return;
	if (r->armed && r->armed_pa_known)
		retranslate(r->armed_pa);
	r->armed = lm != NULL;
	r->rearmed = true;
	if (!lm)
		return;
	for (int g = 0; g < CKPT_GPR__COUNT; g++)
		qemu_plugin_u64_set(r->armed_gpr[g], 0, lm->at.gpr[gpr_compare_order[g]]);
	struct qemu_plugin_x86_cpu_state s;
	replay_state__current(&s);
	r->armed_interval = r->interval;
	r->armed_event = i;
	r->armed_rip = lm->at.rip;
	r->armed_pa_known = replay_state__phys(&s, lm->at.cr3, replay_state__code_linear(&s, lm->at.rip),
					       &r->armed_pa);
	if (r->armed_pa_known)
		retranslate(r->armed_pa);
}

/* Console input reaches the guest through logged UART reads; the event
 * itself is informational. */
static void skip_informational(struct replay *r)
{
	const struct ckpt_event *ev;
	while ((ev = next_event(r)) && ev->kind == CKPT_EV_CONSOLE_IN)
		r->next++;
	arm(r);
}

static void describe_event(const struct ckpt_event *ev, char *buf, size_t len)
{
	if (!ev) {
		snprintf(buf, len, "end of log");
		return;
	}
	ckpt_event__format(ev, buf, len);
}

/* ---- intervals ------------------------------------------------------- */

static int begin_interval(struct replay *r, uint32_t k, char *err, size_t errlen)
{
	if (r->log)
		ckpt_log__free(r->log);
	r->log = NULL;
	if (ckpt_log__load(r->store, k, &r->log, err, errlen) != 0)
		return -1;
	if (r->end)
		ckpt_manifest__free(r->end);
	r->end = NULL;
	if (ckpt_manifest__load(r->store, k + 1, &r->end, err, errlen) != 0)
		return -1;
	r->interval = k;
	r->next = 0;
	r->sync_count = 0;
	r->events_replayed = 0;
	r->flag_fixups = 0;
	r->matched = false;
	r->insns_at_start = qemu_plugin_u64_sum(r->insns);
	qemu_plugin_u64_set(r->budget_left, 0, r->budget);
	r->wall_start_ns = now_ns();
	if (r->trace &&
	    replay_trace__begin(r->trace, k, &r->pages, &r->page_reader, err, errlen) != 0)
		return -1;
	skip_informational(r);
	return 0;
}

static bool read_ram(uint64_t addr, void *buf, size_t len)
{
	return qemu_plugin_read_memory_phys(addr, buf, len);
}

/* The stop landmark of interval r->interval is reached: compare with the
 * next checkpoint, record the verdict, and go on with the next interval. */
static void end_interval(struct replay *r)
{
	struct qemu_plugin_x86_cpu_state got, want;
	struct replay_state_diff sd;
	struct replay_page_diff pd;
	char err[512];

	uint8_t *resident = NULL;

	if (r->dsm.attached)
		replay_dsm__interval_end(&r->dsm, r->interval);
	replay_state__current(&got);
	if (replay_state__from_ckpt(&r->end->cpu, &want, err, sizeof(err)) != 0 ||
	    (r->trace && replay_trace__ad_bits(r->trace, r->end, err, sizeof(err)) != 0) ||
	    ckpt_pages__advance(&r->pages, err, sizeof(err)) != 0 ||
	    (r->dsm.attached && replay_dsm__resident(&r->dsm, &resident, err, sizeof(err)) != 0) ||
	    replay_pages__compare(&r->pages, r->end, resident, read_ram, &r->page_reader, &pd, err,
				  sizeof(err)) !=
		    0) {
		char msg[700];
		snprintf(msg, sizeof(msg), "checkpoint %u: %s", r->interval + 1, err);
		finish(r, msg);
	}
	free(resident);
	replay_state__compare(&got, &want, &sd);
	if (sd.count || pd.differing) {
		json_t *regs = json_array(), *pages = json_array();
		for (unsigned i = 0; i < sd.count && i < REPLAY_MAX_STATE_DIFFS; i++)
			json_array_append_new(regs, json_pack("{s:s, s:o, s:o}", "name",
							      sd.fields[i].name, "replay",
							      replay__hex(sd.fields[i].replay), "recorded",
							      replay__hex(sd.fields[i].recorded)));
		for (unsigned i = 0; i < pd.listed; i++)
			json_array_append_new(pages, json_pack("{s:o, s:s, s:i, s:o, s:o}", "gpn",
							       replay__hex(pd.pages[i].gpn), "class",
							       pd.pages[i].pt_ad_only ? "pt-ad" : "other",
							       "offset", pd.pages[i].offset, "replay",
							       replay__hex(pd.pages[i].replay), "recorded",
							       replay__hex(pd.pages[i].recorded)));
		char detail[256];
		const char *kind = sd.count ? "state" : pd.other ? "pages" : "pt-ad";
		snprintf(detail, sizeof(detail),
			 "stop landmark of checkpoint %u reached, but %u CPU state fields and "
			 "%" PRIu64 " pages (%" PRIu64 " only in page-table A/D bits) differ",
			 r->interval + 1, sd.count, pd.differing, pd.pt_ad_only);
		diverged(r, kind, detail,
			 json_pack("{s:i, s:o, s:{s:I, s:I, s:I, s:o}}", "state_fields", sd.count,
				   "state", regs, "pages", "differing", (json_int_t)pd.differing,
				   "pt_ad_only", (json_int_t)pd.pt_ad_only, "other",
				   (json_int_t)pd.other, "first", pages));
	}
	json_t *result = interval_result(r, "exact");
	if (r->trace) {
		json_t *records = replay_trace__end(r->trace, r->interval + 1 >= r->last, err,
						    sizeof(err));
		if (!records)
			finish(r, err);
		json_object_update(result, records);
		json_decref(records);
		/* the interval's trace is written and committed: its time too */
		json_object_set_new(result, "wall_s",
				    json_real((double)(now_ns() - r->wall_start_ns) / 1e9));
	}
	json_array_append_new(r->results, result);
	if (r->interval + 1 >= r->last) {
		r->finished = true;
		finish(r, NULL);
	}
	if (begin_interval(r, r->interval + 1, err, sizeof(err)) != 0)
		finish(r, err);
}

/* Acts on every asynchronous event due at the current point. state is the
 * CPU state here; halted says whether the vCPU sits in hlt. Returns true if
 * an interrupt was injected. */
/* Does the state match the landmark? The hash leaves out the RFLAGS bits
 * the landmark carries (see CKPT_LM_RFLAGS_MASK); *rflags gets the
 * recorded ones. */
static bool landmark_matches(const struct ckpt_landmark *lm,
			     const struct qemu_plugin_x86_cpu_state *state, uint64_t hash,
			     uint64_t *rflags)
{
	*rflags = (state->rflags & ~CKPT_RFLAGS_CARRIED) | ckpt_landmark__unpack_rflags(lm->flags);
	return lm->reg_hash == hash;
}

static bool at_landmark(struct replay *r, struct qemu_plugin_x86_cpu_state *state, bool halted)
{
	uint64_t hash = replay_state__reg_hash(state);

	for (;;) {
		const struct ckpt_event *ev = next_event(r);
		uint64_t rflags;
		if (!ev || ckpt_event_kind__is_access(ev->kind))
			return false;
		const struct ckpt_landmark *lm = &ev->at;
		if (lm->sync_count != r->sync_count || lm->rip != state->rip ||
		    ((lm->flags & CKPT_LM_HALTED) != 0) != halted ||
		    !landmark_matches(lm, state, hash, &rflags))
			return false;
		if (rflags != state->rflags) {
			/* Adopt the hardware's undefined flags and RF, so that
			 * an interrupt frame and the next checkpoint agree. */
			state->rflags = rflags;
			if (!qemu_plugin_set_cpu_state(state, sizeof(*state)))
				finish(r, "qemu_plugin_set_cpu_state failed");
			hash = replay_state__reg_hash(state);
			r->flag_fixups++;
		}
		match(r);
		switch (ev->kind) {
		case CKPT_EV_IRQ:
			if (!qemu_plugin_inject_interrupt((int)ev->value))
				diverged(r, "injection", "an injected interrupt was not taken", NULL);
			if (r->trace)
				replay_trace__interrupt(r->trace, ev->value, state->rip);
			skip_informational(r);
			return true;
		case CKPT_EV_DMA:
			if (!qemu_plugin_write_memory_phys(ev->addr, ev->data, ev->size)) {
				char d[128];
				snprintf(d, sizeof(d), "DMA to 0x%" PRIx64 " (%u bytes) is outside RAM",
					 ev->addr, ev->size);
				diverged(r, "dma", d, NULL);
			}
			break;
		case CKPT_EV_STOP:
			end_interval(r);
			break;
		default:
			break;
		}
		skip_informational(r);
	}
}

/* ---- QEMU callbacks ---------------------------------------------------- */

static void start(struct replay *r)
{
	struct ckpt_manifest *m;
	struct qemu_plugin_x86_cpu_state s;
	char err[512];

	if (ckpt_manifest__load(r->store, r->first, &m, err, sizeof(err)) != 0)
		finish(r, err);
	if (replay_state__from_ckpt(&m->cpu, &s, err, sizeof(err)) != 0) {
		char msg[600];
		snprintf(msg, sizeof(msg), "checkpoint %u: %s", r->first, err);
		finish(r, msg);
	}
	ckpt_manifest__free(m);
	if (!qemu_plugin_set_cpu_state(&s, sizeof(s)))
		finish(r, "qemu_plugin_set_cpu_state refused the checkpoint's state");
	if (ckpt_pages__init(&r->pages, r->store, r->first, err, sizeof(err)) != 0 ||
	    begin_interval(r, r->first, err, sizeof(err)) != 0)
		finish(r, err);
	r->started = true;
}

/* First instruction of every block until the checkpoint is loaded: the
 * machine has just come out of reset. */
static void on_reset_insn(unsigned int vcpu, void *udata)
{
	struct replay *r = udata;
	(void)vcpu;
	if (r->started)
		return;
	start(r);
	qemu_plugin_exit_before_insn();
}

/* The armed landmark's instruction, with the landmark's GPRs; called at
 * a block start only. */
static void on_landmark_insn(unsigned int vcpu, void *udata)
{
	struct replay *r = udata;
	struct qemu_plugin_x86_cpu_state s;
	const struct ckpt_event *ev;
	(void)vcpu;

	ev = next_event(r);
	if (!r->started || !ev || ckpt_event_kind__is_access(ev->kind) ||
	    ev->at.sync_count != r->sync_count || ev->at.rip != r->armed_rip)
		return;
	/* The GPRs matched; the rest of RFLAGS decides. */
	replay_state__regs(&s);
	if (s.rip != r->armed_rip || replay_state__reg_hash(&s) != ev->at.reg_hash)
		return;
	replay_state__current(&s);
	r->rearmed = false;
	if (at_landmark(r, &s, false) || r->rearmed)
		qemu_plugin_exit_before_insn();
}

/* Is the instruction at vaddr the armed landmark's, at this address or
 * another mapping of its page? Without the landmark's physical address
 * (its page was not mapped when it was armed, or the paging mode is not
 * walked) only its virtual address counts, and code translated before the
 * arming is not retranslated: 64-bit guests that map code before they run
 * it are what this handles. */
static bool is_armed_insn(struct replay *r, uint64_t vaddr)
{
	if (!r->armed)
		return false;
	if (!r->armed_pa_known)
		return vaddr == r->armed_rip;
	if ((vaddr ^ r->armed_pa) & 0xfff)
		return false;
	struct qemu_plugin_x86_cpu_state s;
	uint64_t pa;
	replay_state__current(&s);
	return replay_state__phys(&s, s.cr3, replay_state__code_linear(&s, vaddr), &pa) &&
	       pa == r->armed_pa;
}

static void on_budget_exhausted(unsigned int vcpu, void *udata)
{
	struct replay *r = udata;
	char d[160];
	(void)vcpu;
	if (!r->started)
		return;
	snprintf(d, sizeof(d),
		 "over the instruction budget of %" PRIu64 " for one interval without reaching "
		 "its stop landmark",
		 r->budget);
	diverged(r, "budget", d, NULL);
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	struct replay *r = the_replay;
	size_t n = qemu_plugin_tb_n_insns(tb);
	(void)id;

	/* The checks see an instruction before the replay acts on it. */
	if (r->bisect)
		replay_bisect__instrument(r->bisect, tb);
	qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(tb, QEMU_PLUGIN_INLINE_ADD_U64,
							  r->budget_left, (uint64_t)-(int64_t)n);
	qemu_plugin_register_vcpu_tb_exec_cond_cb(tb, on_budget_exhausted, QEMU_PLUGIN_CB_NO_REGS,
						  QEMU_PLUGIN_COND_GE, r->budget_left,
						  BUDGET_EXHAUSTED, r);
	/* A block is translated for one privilege level (QEMU's TB flags). */
	if (r->trace) {
		struct qemu_plugin_x86_cpu_state s;
		replay_state__current(&s);
		replay_trace__instrument_block(r->trace, tb, &s);
	}
	for (size_t i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		uint64_t pc = qemu_plugin_insn_vaddr(insn);
		/* Callbacks first: one that leaves the block must do so before
		 * the instruction is counted (or traced). */
		if (i == 0 && !r->started)
			qemu_plugin_register_vcpu_insn_exec_cb(insn, on_reset_insn,
							       QEMU_PLUGIN_CB_RW_REGS, r);
		if (is_armed_insn(r, pc) &&
		    !qemu_plugin_register_vcpu_insn_exec_regs_eq_cb(
			    insn, on_landmark_insn, QEMU_PLUGIN_CB_RW_REGS, CKPT_GPR__COUNT,
			    gpr_compare_names, r->armed_gpr, r))
			finish(r, "this QEMU's translator has no globals named rax..r15 to compare "
				  "at landmarks");
		if (r->trace)
			replay_trace__instrument(r->trace, insn, (unsigned)i);
		qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(insn, QEMU_PLUGIN_INLINE_ADD_U64,
								    r->insns, 1);
	}
}

static void on_idle(qemu_plugin_id_t id, unsigned int vcpu)
{
	struct replay *r = the_replay;
	struct qemu_plugin_x86_cpu_state s;
	(void)id;
	(void)vcpu;

	if (!r->started || r->finished)
		return;
	replay_state__current(&s);
	if (!(s.flags & QEMU_PLUGIN_X86_HALTED))
		return;
	if (at_landmark(r, &s, true))
		return;
	/* Halted with nothing to wake it: no timer exists here, so only the log
	 * could, and it does not. */
	char d[300], e[200];
	describe_event(next_event(r), e, sizeof(e));
	snprintf(d, sizeof(d), "the guest halted at rip 0x%" PRIx64 " after %" PRIu64
		 " port/MMIO accesses, but the next event is: %s", s.rip, r->sync_count, e);
	diverged(r, "halted", d, NULL);
}

/* A device access: the next event must be this very access. */
static const struct ckpt_event *expect_access(struct replay *r, enum ckpt_event_kind kind,
					      uint64_t addr, unsigned size, uint64_t value)
{
	const struct ckpt_event *ev = next_event(r);

	if (!ev || ev->kind != kind || ev->addr != addr || ev->size != size ||
	    ((kind == CKPT_EV_PIO_WRITE || kind == CKPT_EV_MMIO_WRITE) && ev->value != value)) {
		char d[400], e[200];
		struct qemu_plugin_x86_cpu_state s;
		replay_state__current(&s);
		struct ckpt_event got = { .kind = kind, .addr = addr, .size = size, .value = value,
					  .at.sync_count = r->sync_count, .at.rip = s.rip };
		char g[200];
		describe_event(ev, e, sizeof(e));
		ckpt_event__format(&got, g, sizeof(g));
		snprintf(d, sizeof(d), "expected %s; the guest made %s", e, g);
		diverged(r, ev && !ckpt_event_kind__is_access(ev->kind) ? "landmark-missed" : "io", d, NULL);
	}
	match(r);
	r->sync_count++;
	skip_informational(r);
	return ev;
}

static bool on_io_read(unsigned int vcpu, enum qemu_plugin_io_space space, uint64_t addr,
		       unsigned int size, uint64_t *value, void *udata)
{
	struct replay *r = udata;
	(void)vcpu;
	if (!r->started) {
		*value = 0; /* the reset vector fetch of an empty machine */
		return true;
	}
	bool pio = space == QEMU_PLUGIN_IO_PORT;
	*value = expect_access(r, pio ? CKPT_EV_PIO_READ : CKPT_EV_MMIO_READ, addr, size, 0)->value;
	if (r->trace)
		replay_trace__event(r->trace, pio ? TRACE_EV_PIO_READ : TRACE_EV_MMIO_READ, addr, 0,
				    *value, size);
	return true;
}

static void on_io_write(unsigned int vcpu, enum qemu_plugin_io_space space, uint64_t addr,
			unsigned int size, uint64_t value, void *udata)
{
	struct replay *r = udata;
	(void)vcpu;
	if (!r->started)
		return;
	bool pio = space == QEMU_PLUGIN_IO_PORT;
	expect_access(r, pio ? CKPT_EV_PIO_WRITE : CKPT_EV_MMIO_WRITE, addr, size, value);
	if (r->trace)
		replay_trace__event(r->trace, pio ? TRACE_EV_PIO_WRITE : TRACE_EV_MMIO_WRITE, addr, 0,
				    value, size);
}

static void on_qemu_exit(qemu_plugin_id_t id, void *udata)
{
	struct replay *r = udata;
	(void)id;
	/* QEMU ended on its own (a guest shutdown, a signal) before the replay
	 * did: report what was reached. */
	if (!r->finished && r->out_path)
		write_results(r, r->started ? "QEMU exited before the stop landmark was reached"
					    : "QEMU exited before the guest started");
}

/* ---- set-up ------------------------------------------------------------ */

/* QEMU reports only that the plugin failed to load; the result file says
 * why, so that the driver names the file or checkpoint at fault. */
static int install_failed(struct replay *r, const char *why)
{
	fprintf(stderr, "replay: %s\n", why);
	write_results(r, why);
	return -1;
}

/* Loads every log of intervals [first, last), so that a bad one is named
 * before the guest starts. */
static int check_logs(struct replay *r, char *err, size_t errlen)
{
	for (uint32_t k = r->first; k < r->last; k++) {
		struct ckpt_log *log;
		if (ckpt_log__load(r->store, k, &log, err, errlen) != 0)
			return -1;
		ckpt_log__free(log);
	}
	return 0;
}

static int read_packed(void *ctx, const struct ckpt_page_ref *ref, void *out, char *err,
		       size_t errlen)
{
	return ckpt_store__read_page(ctx, ref, out, err, errlen);
}

static int read_by_hash(void *ctx, const struct ckpt_page_ref *ref, void *out, char *err,
			size_t errlen)
{
	return replay_dsm__page(ctx, &ref->hash, out, err, errlen);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
					   char **argv)
{
	struct replay *r = calloc(1, sizeof(*r));
	const char *rec = NULL;
	uint64_t first = UINT64_MAX, last = UINT64_MAX, budget = 0, dsm_sock = UINT64_MAX;
	char err[512];

	if (!r)
		return -1;
	if (strcmp(info->target_name, "x86_64") != 0 || !info->system_emulation) {
		fprintf(stderr, "replay: needs qemu-system-x86_64\n");
		return -1;
	}
	for (int i = 0; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (!eq)
			goto bad;
		*eq = '\0';
		const char *key = argv[i], *val = eq + 1;
		int taken = replay_bisect__arg(&r->bisect, key, val);
		if (!taken)
			taken = replay_trace__arg(&r->trace, key, val);
		if (taken < 0)
			goto bad;
		if (taken)
			continue;
		if (!strcmp(key, "rec"))
			rec = val;
		else if (!strcmp(key, "out"))
			r->out_path = val;
		else if (!strcmp(key, "first") ? !replay__parse_u64(val, &first) :
			 !strcmp(key, "last")  ? !replay__parse_u64(val, &last) :
			 !strcmp(key, "budget") ? !replay__parse_u64(val, &budget) :
			 !strcmp(key, "dsm")    ? !replay__parse_u64(val, &dsm_sock) : true)
			goto bad;
		continue;
bad:
		fprintf(stderr, "replay: bad argument '%s=%s' (want rec=, first=, last=, out=, "
				"budget=, dsm=, trace=, analysis=, analysis-out=, bisect-from=, watch-field=, watch-word=, watch-landmark=)\n",
			argv[i], eq ? eq + 1 : "");
		return -1;
	}
	if (!rec || !r->out_path || first == UINT64_MAX) {
		fprintf(stderr, "replay: rec=, first= and out= are required\n");
		return -1;
	}
	r->results = json_array();
	r->store = ckpt_store__open(rec, err, sizeof(err));
	if (!r->store)
		return install_failed(r, err);
	uint32_t count = ckpt_store__count(r->store);
	if (last == UINT64_MAX)
		last = first + 1;
	if (first >= last || last >= count + 0ULL) {
		fprintf(stderr, "replay: %s: intervals %" PRIu64 "..%" PRIu64
			" are out of range: the recording has %u checkpoints, so intervals 0..%d\n",
			rec, first, last - 1, count, (int)count - 2);
		return -1;
	}
	if (dsm_sock != UINT64_MAX &&
	    replay_dsm__attach(&r->dsm, (int)dsm_sock, ckpt_store__info(r->store)->memory_bytes, err,
			       sizeof(err)) != 0)
		return install_failed(r, err);
	/* a node's copy of a recording has manifests and logs, no packs */
	char pack0[4200];
	snprintf(pack0, sizeof(pack0), "%s/000000.pack", rec);
	r->page_reader = access(pack0, F_OK) == 0 ?
		(struct replay_page_reader){ .read = read_packed, .ctx = r->store } :
		(struct replay_page_reader){ .read = read_by_hash, .ctx = &r->dsm };
	r->first = (uint32_t)first;
	r->last = (uint32_t)last;
	r->budget = budget ? budget :
		ckpt_store__info(r->store)->interval_ns * (DEFAULT_BUDGET_INSNS_PER_SEC / 1000000) /
		1000 * DEFAULT_BUDGET_FACTOR;
	if (r->budget >= BUDGET_EXHAUSTED)
		r->budget = BUDGET_EXHAUSTED - 1;
	r->counters = qemu_plugin_scoreboard_new(sizeof(struct vcpu_counters));
	r->insns = qemu_plugin_scoreboard_u64_in_struct(r->counters, struct vcpu_counters, insns);
	r->budget_left =
		qemu_plugin_scoreboard_u64_in_struct(r->counters, struct vcpu_counters, budget_left);
	for (int i = 0; i < CKPT_GPR__COUNT; i++)
		r->armed_gpr[i] = (qemu_plugin_u64){
			r->counters, offsetof(struct vcpu_counters, armed_gpr) + i * sizeof(uint64_t)
		};
	if (r->bisect)
		replay_bisect__attach(r->bisect, r->insns, &r->insns_at_start, &r->sync_count);
	if (r->trace) {
		if (replay_trace__attach(r->trace, r->insns, &r->insns_at_start, err,
					 sizeof(err)) != 0 ||
		    replay_trace__check(r->trace, err, sizeof(err)) != 0)
			return install_failed(r, err);
	}
	if (check_logs(r, err, sizeof(err)) != 0)
		return install_failed(r, err);
	the_replay = r;
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
	qemu_plugin_register_vcpu_idle_cb(id, on_idle);
	qemu_plugin_register_io_cb(id, on_io_read, on_io_write, r);
	qemu_plugin_register_atexit_cb(id, on_qemu_exit, r);
	return 0;
}
