/* Internals of the replay plugin (simnode/replay-*.c), which runs inside
 * the patched QEMU. Nothing outside simnode/ includes this. */
#ifndef SIMUBOOST_REPLAY_PRIV_H
#define SIMUBOOST_REPLAY_PRIV_H

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>
#include <qemu-plugin.h>

#include "checkpoint.h"
#include "trace.h"

/* Control register bits the replay reads. */
#define CR0_PG (1ull << 31)
#define CR4_LA57 (1ull << 12)
#define EFER_LMA (1ull << 10)

#ifndef QEMU_PLUGIN_REPLAY_API
#error "qemu-plugin.h lacks the simuboost replay API: build QEMU with simnode/qemu/build.sh"
#endif

static inline json_t *replay__hex(uint64_t v)
{
	return json_sprintf("0x%" PRIx64, v);
}

/* A plugin argument's number: decimal, or hex with 0x; nothing after it. */
static inline bool replay__parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end)
		return false;
	*out = v;
	return true;
}

/* ---- CPU state (replay-state.c) ---- */

/* The current vCPU's complete state; exits QEMU if it cannot be read. */
void replay_state__current(struct qemu_plugin_x86_cpu_state *s);
/* Only its general registers, RIP, RFLAGS and flags: much cheaper, and
 * all that replay_state__reg_hash needs. */
void replay_state__regs(struct qemu_plugin_x86_cpu_state *s);

int replay_state__from_ckpt(const struct ckpt_cpu_state *c, struct qemu_plugin_x86_cpu_state *q,
			    char *err, size_t errlen);
/* The linear address of the instruction at rip. */
uint64_t replay_state__code_linear(const struct qemu_plugin_x86_cpu_state *s, uint64_t rip);
/* The physical address of linear address va in s's paging mode, with the
 * page-table root cr3: no paging, or 4-level long-mode paging. Other modes
 * (32-bit paging, 5 levels) and unmapped addresses: false. */
bool replay_state__phys(const struct qemu_plugin_x86_cpu_state *s, uint64_t cr3, uint64_t va,
			uint64_t *pa);
/* The landmark hash (ckpt_landmark__reg_hash) of a plugin state. */
uint64_t replay_state__reg_hash(const struct qemu_plugin_x86_cpu_state *q);

#define REPLAY_MAX_STATE_DIFFS 8

struct replay_state_field {
	char name[24];
	uint64_t replay, recorded;
};

struct replay_state_diff {
	unsigned count; /* all differences; the first REPLAY_MAX_STATE_DIFFS are listed */
	struct replay_state_field fields[REPLAY_MAX_STATE_DIFFS];
};

/* Compares the replay's state r with the recorded e, field by field. */
void replay_state__compare(const struct qemu_plugin_x86_cpu_state *r,
			   const struct qemu_plugin_x86_cpu_state *e, struct replay_state_diff *d);

/* ---- guest pages (replay-pages.c) ---- */

#define REPLAY_MAX_PAGE_DIFFS 16

struct replay_page_diff {
	uint64_t differing;      /* pages whose content differs */
	uint64_t pt_ad_only;     /* ... only in page-table accessed/dirty bits */
	uint64_t other;
	unsigned listed;
	struct {
		uint64_t gpn;
		bool pt_ad_only;
		uint32_t offset;            /* first differing 8-byte word */
		uint64_t replay, recorded;  /* its values */
	} pages[REPLAY_MAX_PAGE_DIFFS];
};

/* A recorded page's content by its reference (never a zero page): from
 * the recording's packs, or, where a node's copy of the recording has
 * none, by hash from the driver (replay_dsm__page). */
struct replay_page_reader {
	int (*read)(void *ctx, const struct ckpt_page_ref *ref, void *out, char *err,
		    size_t errlen);
	void *ctx;
};
/* Page gpn of p through pr: zero pages filled, others read. */
int replay_page_reader__read(const struct replay_page_reader *pr, const struct ckpt_pages *p,
			     uint64_t gpn, void *out, char *err, size_t errlen);

/* Compares guest RAM as read through read_ram (len bytes at guest
 * physical address addr) with p, the recorded pages at the checkpoint that
 * ends the interval, whose manifest is end, read through pr where they
 * differ. resident: NULL, or one byte per page, 1 if it is in RAM
 * (replay-dsm.c); a page not in RAM has not been touched since the replay
 * started and is read only if end changed it. */
int replay_pages__compare(struct ckpt_pages *p, const struct ckpt_manifest *end,
			  const uint8_t *resident,
			  bool (*read_ram)(uint64_t addr, void *buf, size_t len),
			  const struct replay_page_reader *pr, struct replay_page_diff *d,
			  char *err, size_t errlen);

/* ---- demand-paged RAM (replay-dsm.c; the driver's side is dsm.c) ---- */

struct replay_dsm {
	bool attached;
	int sock;                   /* to the driver */
	uint64_t base, ram_bytes;   /* QEMU's mapping of guest RAM */
};

/* Registers guest RAM (ram_bytes, the memfd replay.c names) with
 * userfaultfd and sends the descriptor over sock, which it keeps. */
int replay_dsm__attach(struct replay_dsm *d, int sock, uint64_t ram_bytes, char *err,
		       size_t errlen);
/* Tells the driver the guest reached the end of interval: what it reads
 * from RAM after this is the replay's validation. */
void replay_dsm__interval_end(const struct replay_dsm *d, uint32_t interval);
/* One byte per guest page, 1 if it is in RAM, malloc'd into *vec. */
int replay_dsm__resident(const struct replay_dsm *d, uint8_t **vec, char *err, size_t errlen);
/* A page's content by hash, from the driver (which asks its source: a
 * node's peers). For a copy of a recording without packs. */
int replay_dsm__page(const struct replay_dsm *d, const struct ckpt_hash *hash, void *out,
		     char *err, size_t errlen);

/* ---- --bisect's finer checks (replay-bisect.c) ---- */

struct replay_bisect;

/* Takes a plugin argument if it is bisect's (bisect-*, watch-*), creating
 * *b on the first. Returns 1 if taken, 0 if not bisect's, -1 if bad. */
int replay_bisect__arg(struct replay_bisect **b, const char *key, const char *val);
/* The replay's instruction counter and sync count, which the checks read. */
void replay_bisect__attach(struct replay_bisect *b, qemu_plugin_u64 insns,
			   const uint64_t *insns_at_start, const uint64_t *sync_count);
/* Adds the checks to a block being translated. */
void replay_bisect__instrument(struct replay_bisect *b, struct qemu_plugin_tb *tb);
/* What the watches saw, for the interval's result. */
json_t *replay_bisect__result(const struct replay_bisect *b);

/* ---- records: full traces and analyses (replay-trace.c) ---- */

struct replay_trace;

/* Takes the plugin arguments trace=DIR, analysis=SPEC (repeatable) and
 * analysis-out=DIR, creating *t. Returns 1 if taken, 0 if not the trace's,
 * -1 if bad. */
int replay_trace__arg(struct replay_trace **t, const char *key, const char *val);
/* Whether the arguments taken make sense together. */
int replay_trace__check(const struct replay_trace *t, char *err, size_t errlen);
/* The replay's instruction counter, which numbers the records; maps the
 * buffer memory accesses are recorded into. */
int replay_trace__attach(struct replay_trace *t, qemu_plugin_u64 insns,
			 const uint64_t *insns_at_start, char *err, size_t errlen);
/* Starts interval k: its trace, DIR/NNNNNN.trace (written on commit
 * only), and the analyses' interval. start: the guest's pages at the
 * interval's start (checkpoint k), which stay so until the interval ends,
 * read through pr. */
int replay_trace__begin(struct replay_trace *t, uint32_t interval, struct ckpt_pages *start,
			const struct replay_page_reader *pr, char *err, size_t errlen);
/* Instruments a block for its instructions' records; s is the state it is
 * translated in (privilege level, IDT). Then each of its instructions,
 * number index in the block: its accesses' records, and its event if it
 * is a SYSCALL, SYSRET or MOV to CR3. */
void replay_trace__instrument_block(struct replay_trace *t, struct qemu_plugin_tb *tb,
				    const struct qemu_plugin_x86_cpu_state *s);
void replay_trace__instrument(struct replay_trace *t, struct qemu_plugin_insn *insn,
			      unsigned index);
void replay_trace__event(struct replay_trace *t, enum trace_event_kind kind, uint64_t a,
			 uint64_t b, uint64_t c, unsigned size);
/* An interrupt injected at rip: its event, and at the handler's first
 * instruction the stores of its delivery (the frame the CPU pushed). */
void replay_trace__interrupt(struct replay_trace *t, uint64_t vector, uint64_t rip);
/* Before the end: the page-table entries in pages the interval dirtied
 * (end, the next checkpoint's manifest) whose content differs from what the
 * recorded stores left only in accessed/dirty bits, which the MMU sets
 * outside any memory callback: one event each (when memory is traced). */
int replay_trace__ad_bits(struct replay_trace *t, const struct ckpt_manifest *end, char *err,
			  size_t errlen);
/* The interval ended exact: ends the analyses' interval and commits the
 * trace; after the last interval of the run, saves the analyses' states.
 * Returns {trace: {path, instructions}, analyses: [state paths]} (each
 * only if there is one), or NULL with err. */
json_t *replay_trace__end(struct replay_trace *t, bool last, char *err, size_t errlen);
/* Drops an uncommitted trace and frees t (NULL is fine). */
void replay_trace__free(struct replay_trace *t);

#endif
