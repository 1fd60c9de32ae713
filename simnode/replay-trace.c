/* The records of replayed intervals: every instruction the replay counts,
 * every memory access with its physical address and value, and the events
 * the replay itself injects or serves (interrupts, port and MMIO
 * accesses), the exceptions and software interrupts the guest takes, the
 * frames the CPU pushes for all of them, and the system calls, returns and
 * CR3 loads the guest executes. They go to a trace file (plugin argument
 * trace=DIR, DIR/NNNNNN.trace through trace/) and to analysis plugins
 * (analysis=SPEC, states saved in analysis-out=DIR through
 * analysis-plugins/), one stream for both, so that an analysis run here
 * sees what one run later over the trace sees. A trace is committed, and
 * the analyses' states saved, when the intervals end exact; otherwise they
 * are dropped. Only the records someone wants are instrumented. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <glib.h>

#include "analysis.h"
#include "replay-priv.h"

#define MAX_ANALYSES 16
/* Memory accesses are recorded inline, into a buffer, and become records
 * at the next block (or before any other record): a callback for every
 * access cost most of a traced replay. The buffer holds what one block
 * can make: TCG_MAX_INSNS instructions of at most ACCESSES_PER_INSN each;
 * REP string instructions, which loop within their block, call back
 * instead. A guard page after it turns a miscount into a crash, not a
 * wrong trace. */
#define MAX_BLOCK_INSNS 512
#define ACCESSES_PER_INSN 128
#define MEM_BUF_RECORDS (MAX_BLOCK_INSNS * ACCESSES_PER_INSN)
/* The trace file's records wait in a batch, many blocks' worth, for one
 * call of the writer: a call per block cost more than its records. The
 * batch goes when it holds this many accesses or runs of instructions
 * (512 accesses, 16 KiB, stay in the first-level cache: traced replays
 * ran 3-5% faster than with 2048), or before any other record. */
#define BATCH_ACCESSES 512
#define BATCH_RUNS 256
/* Pages whose physical address is kept (see struct replay_trace). */
#define PAGE_CACHE 256

struct replay_trace {
	char dir[4096];             /* "": no trace file */
	struct trace_writer *w;
	uint32_t interval;
	qemu_plugin_u64 insns;      /* the replay's instruction counter, */
	const uint64_t *insns_at_start; /* and its value when the interval began */
	const uint64_t *insns_at;   /* the counter itself, once the vCPU exists */
	struct ckpt_pages *start;   /* guest pages at the interval's start */
	struct replay_page_reader pages; /* reads start's contents */
	/* Pages as the interval's recorded stores leave them: guest page
	 * number -> 4096 bytes, made from start at the first store. */
	GHashTable *shadow;
	struct {                    /* the last pages used, by gpn % 8 */
		uint64_t gpn;
		uint8_t *page;      /* NULL: none */
	} recent[8];
	struct analysis *an[MAX_ANALYSES];
	struct analysis_state *states[MAX_ANALYSES];
	unsigned nan;
	char an_dir[4096];
	bool want_insn, want_mem;
	bool analyses_insn, analyses_mem; /* some analysis wants the kind's records */
	struct qemu_plugin_scoreboard *cursor_sb;
	qemu_plugin_u64 cursor;     /* the next free record in buf */
	qemu_plugin_mem_record *buf;
	size_t buf_map;             /* bytes mapped, the guard page included */
	uint64_t *cursor_at;        /* where the cursor is, once the vCPU exists */
	/* the batch for the writer: runs of instructions, their accesses */
	struct trace_block_run *runs;
	unsigned nruns;
	struct trace_access *acc;   /* room for a batch and a drain's */
	unsigned nacc;
	uint32_t batch_insns;       /* the runs' instructions */
	/* Pages' physical addresses as the TLB had them, by vpage %
	 * PAGE_CACHE (vpage ~0: none): asking QEMU for each block's took a
	 * tenth of a traced replay. They hold until an instruction that may
	 * flush the TLB, or an event, and are forgotten there. The last
	 * meminfo's size and direction. */
	struct {
		uint64_t vpage, ppage;
	} page[PAGE_CACHE];
	qemu_plugin_meminfo_t info;
	unsigned info_shift;
	bool info_store, info_known;
	/* Instruction records are made a block at a time: at a block's start
	 * (or before any other record) those of the instructions the counter
	 * says ran since. */
	const struct block *cur;    /* the block running */
	uint64_t base;              /* the counter at its first instruction */
	unsigned emitted;           /* its instructions recorded so far */
	char err[512];              /* the first failure of the open trace */
	bool injected;              /* the replay injected an interrupt: its event is in */
	GPtrArray *sites;           /* what callbacks point to, freed with the trace */
	GPtrArray *blocks;          /* the same for blocks */
	GHashTable *entries;        /* IDT handler address -> vector + 1 */
	uint64_t idt_base;          /* the IDT entries were read from */
	uint32_t idt_limit;
};

/* A translated block: its instructions' records, and the same encoded
 * once for the trace file (NULL: none is written). */
struct block {
	struct replay_trace *t;
	struct trace_block *encoded;
	unsigned n;
	struct trace_insn insn[];
};

static void block_free(void *p)
{
	struct block *b = p;
	trace_block__free(b->encoded);
	g_free(b);
}

/* The instructions whose execution the guest's SYSCALL, SYSRET and MOV to
 * CR3 events are read at, before they execute; and those that may flush
 * the TLB, before which the block's accesses so far are drained, while
 * the TLB still maps them. */
enum special { SPECIAL_NONE, SPECIAL_SYSCALL, SPECIAL_SYSRET, SPECIAL_CR3, SPECIAL_TLB };

/* One translated instruction with callbacks, number `index` of its block:
 * the user data of all of them. */
struct insn_site {
	struct replay_trace *t;
	unsigned index;
	uint16_t vector;            /* + 1, if an IDT entry points here */
	enum special kind;
	unsigned gpr;               /* MOV to CR3: the source register */
};

/* Forgets the pages: the TLB may change from here on. */
static void forget_pages(struct replay_trace *t)
{
	for (unsigned i = 0; i < PAGE_CACHE; i++)
		t->page[i].vpage = ~0ull;
}

static struct replay_trace *trace_new(void)
{
	struct replay_trace *t = g_new0(struct replay_trace, 1);
	t->sites = g_ptr_array_new_with_free_func(g_free);
	t->blocks = g_ptr_array_new_with_free_func(block_free);
	t->runs = g_new(struct trace_block_run, BATCH_RUNS);
	t->shadow = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
	t->entries = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
	forget_pages(t);
	return t;
}

int replay_trace__arg(struct replay_trace **t, const char *key, const char *val)
{
	char err[1024];
	bool trace = !strcmp(key, "trace"), out = !strcmp(key, "analysis-out");

	if (!trace && !out && strcmp(key, "analysis"))
		return 0;
	if (!*t)
		*t = trace_new();
	if (trace || out) {
		char *dir = trace ? (*t)->dir : (*t)->an_dir;
		if (*dir || !*val || strlen(val) >= sizeof((*t)->dir))
			return -1;
		strcpy(dir, val);
		if (trace)
			(*t)->want_insn = (*t)->want_mem = true;
		return 1;
	}
	if ((*t)->nan == MAX_ANALYSES)
		return -1;
	struct analysis *a = analysis__load(val, err, sizeof(err));
	if (!a) {
		fprintf(stderr, "replay: %s\n", err);
		return -1;
	}
	(*t)->an[(*t)->nan++] = a;
	(*t)->analyses_insn |= analysis__wants(a, TRACE_INSN);
	(*t)->analyses_mem |= analysis__wants(a, TRACE_MEM);
	(*t)->want_insn |= (*t)->analyses_insn;
	(*t)->want_mem |= (*t)->analyses_mem;
	return 1;
}

int replay_trace__attach(struct replay_trace *t, qemu_plugin_u64 insns,
			 const uint64_t *insns_at_start, char *err, size_t errlen)
{
	t->insns = insns;
	t->insns_at_start = insns_at_start;
	if (!t->want_mem)
		return 0;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t len = (MEM_BUF_RECORDS * sizeof(qemu_plugin_mem_record) + page - 1) / page * page;
	void *buf = mmap(NULL, len + page, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (buf == MAP_FAILED || mprotect((uint8_t *)buf + len, page, PROT_NONE) != 0) {
		snprintf(err, errlen, "memory record buffer: %s", strerror(errno));
		if (buf != MAP_FAILED)
			munmap(buf, len + page);
		return -1;
	}
	t->acc = g_new(struct trace_access, BATCH_ACCESSES + 2 * MEM_BUF_RECORDS);
	t->buf = buf;
	t->buf_map = len + page;
	t->cursor_sb = qemu_plugin_scoreboard_new(sizeof(uint64_t));
	t->cursor = qemu_plugin_scoreboard_u64(t->cursor_sb);
	return 0;
}

int replay_trace__check(const struct replay_trace *t, char *err, size_t errlen)
{
	if (t->nan && !t->an_dir[0]) {
		snprintf(err, errlen, "analysis= needs analysis-out=DIR for the states");
		return -1;
	}
	return 0;
}

/* Where the 64-bit IDT sends each vector. Read again when a block is
 * translated under another IDTR, so an IDT the guest loads (at boot) is
 * seen before its handlers first run. */
static void read_idt(struct replay_trace *t, const struct qemu_plugin_x86_cpu_state *s)
{
	g_hash_table_remove_all(t->entries);
	t->idt_base = s->idt_base;
	t->idt_limit = s->idt_limit;
	if (!(s->efer & EFER_LMA))
		return;
	for (unsigned v = 0; v < 256 && v * 16 + 15 <= s->idt_limit; v++) {
		uint64_t pa, d[2];
		if (!replay_state__phys(s, s->cr3, s->idt_base + v * 16, &pa) ||
		    !qemu_plugin_read_memory_phys(pa, d, sizeof(d)) || !(d[0] & (1ull << 47)))
			continue;
		uint64_t *entry = g_new(uint64_t, 1);
		*entry = (d[0] & 0xffff) | ((d[0] >> 32) & 0xffff0000) | (d[1] << 32);
		if (!g_hash_table_contains(t->entries, entry))
			g_hash_table_insert(t->entries, entry, GUINT_TO_POINTER(v + 1));
		else
			g_free(entry);
	}
}

int replay_trace__begin(struct replay_trace *t, uint32_t interval, struct ckpt_pages *start,
			const struct replay_page_reader *pr, char *err, size_t errlen)
{
	char path[4200];
	t->interval = interval;
	t->start = start;
	t->pages = *pr;
	g_hash_table_remove_all(t->shadow);
	memset(t->recent, 0, sizeof(t->recent));
	/* the running block goes on in this interval, counted from 0 */
	t->base = -(uint64_t)t->emitted;
	t->err[0] = '\0';
	forget_pages(t);
	t->injected = false;
	t->nruns = t->nacc = 0;
	t->batch_insns = 0;
	/* the replay's one vCPU: read at every block, summing over vCPUs
	 * through the API cost more than the read */
	t->insns_at = (const uint64_t *)((const char *)qemu_plugin_scoreboard_find(
						 t->insns.score, 0) + t->insns.offset);
	if (t->buf) {
		t->cursor_at = qemu_plugin_scoreboard_find(t->cursor_sb, 0);
		*t->cursor_at = (uint64_t)(uintptr_t)t->buf;
	}
	for (unsigned i = 0; i < t->nan; i++) {
		if (!t->states[i] && !(t->states[i] = analysis_state__new(t->an[i], err, errlen)))
			return -1;
		analysis_state__begin(t->states[i], interval);
	}
	if (!t->dir[0])
		return 0;
	trace__path(path, sizeof(path), t->dir, interval);
	t->w = trace_writer__create(path, interval, err, errlen);
	return t->w ? 0 : -1;
}

/* The batch to the writer. */
static void write_batch(struct replay_trace *t)
{
	if (!t->nruns && !t->nacc)
		return;
	if (t->w && !t->err[0])
		trace_writer__append_blocks(t->w, t->runs, t->nruns, t->acc, t->nacc, t->err,
					    sizeof(t->err));
	t->nruns = t->nacc = 0;
	t->batch_insns = 0;
}

/* Instructions from..to-1 of b into the batch, after what it holds. */
static void batch_run(struct replay_trace *t, const struct block *b, unsigned from, unsigned to)
{
	if (from == to)
		return;
	if (!b->encoded) {
		if (t->w && !t->err[0])
			snprintf(t->err, sizeof(t->err), "the block at 0x%" PRIx64 " cannot be traced",
				 b->insn[0].pc);
		return;
	}
	struct trace_block_run *last = t->nruns ? &t->runs[t->nruns - 1] : NULL;
	if (last && last->block == b->encoded && last->to == from) {
		last->to = to;
	} else {
		if (t->nruns == BATCH_RUNS) /* no access waits for this run: drain saw to it */
			write_batch(t);
		t->runs[t->nruns++] = (struct trace_block_run){ b->encoded, from, to };
	}
	t->batch_insns += to - from;
}

/* A record to the trace file on its own, after the batch. */
static void write_record(struct replay_trace *t, const struct trace_record *rec)
{
	write_batch(t);
	if (t->w && !t->err[0])
		trace_writer__append(t->w, rec, t->err, sizeof(t->err));
}

/* A record to the analyses and the trace file. */
static void emit(struct replay_trace *t, const struct trace_record *rec)
{
	for (unsigned i = 0; i < t->nan; i++)
		analysis_state__record(t->states[i], rec);
	write_record(t, rec);
}

/* The instructions executed since the interval began. The counter counts
 * an instruction after its callbacks at its start and before its memory
 * accesses and I/O. */
static uint64_t executed(const struct replay_trace *t)
{
	uint64_t now = t->insns_at ? *t->insns_at : qemu_plugin_u64_sum(t->insns);
	return now - *t->insns_at_start;
}

/* Records the running block's instructions up to (not including) upto. */
static void flush_insns(struct replay_trace *t, uint64_t upto)
{
	const struct block *b = t->cur;
	if (!b)
		return;
	if (upto > b->n)
		upto = b->n;
	if (!t->want_insn) { /* counted all the same: an interval goes on from here */
		if (t->emitted < upto)
			t->emitted = (unsigned)upto;
		return;
	}
	if (!t->analyses_insn) { /* the trace file alone: in one go */
		/* never back: a special instruction's callback has recorded it
		 * before the counter counts it (on_special, then append) */
		if (upto <= t->emitted)
			return;
		batch_run(t, b, t->emitted, (unsigned)upto);
		t->emitted = (unsigned)upto;
		return;
	}
	struct trace_record rec; /* filled field by field: this is the hottest loop */
	rec.kind = TRACE_INSN;
	for (; t->emitted < upto; t->emitted++) {
		rec.icount = t->base + t->emitted;
		rec.insn.pc = b->insn[t->emitted].pc;
		rec.insn.size = b->insn[t->emitted].size;
		rec.insn.cpl = b->insn[t->emitted].cpl;
		emit(t, &rec);
	}
}

static uint8_t *shadow_of(struct replay_trace *t, uint64_t gpn)
{
	/* code alternates between a few pages (stack, data): the hash table
	 * is asked only when none of the recent ones is it */
	__typeof__(t->recent[0]) *slot = &t->recent[gpn % 8];
	if (slot->page && slot->gpn == gpn)
		return slot->page;
	uint8_t *page = g_hash_table_lookup(t->shadow, &gpn);
	if (!page) {
		char err[256];
		uint64_t *key = g_new(uint64_t, 1);
		*key = gpn;
		page = g_malloc(CKPT_PAGE_SIZE);
		if (gpn >= t->start->npages) {
			memset(page, 0, CKPT_PAGE_SIZE); /* MMIO, beyond RAM */
		} else if (replay_page_reader__read(&t->pages, t->start, gpn, page, err,
						    sizeof(err)) != 0) {
			/* the shadow would be wrong, and with it the A/D events */
			if (!t->err[0])
				snprintf(t->err, sizeof(t->err), "%s", err);
			memset(page, 0, CKPT_PAGE_SIZE);
		}
		g_hash_table_insert(t->shadow, key, page);
	}
	slot->gpn = gpn;
	slot->page = page;
	return page;
}

/* A recorded store, into the shadow of its page(s). */
static void shadow_store(struct replay_trace *t, uint64_t paddr, uint64_t value, unsigned size)
{
	unsigned off = paddr % CKPT_PAGE_SIZE;
	if (off + size <= CKPT_PAGE_SIZE) {
		/* fixed sizes: a variable-length memcpy here became a rep movs,
		 * a fifth of a traced replay's memory records */
		uint8_t *at = shadow_of(t, paddr / CKPT_PAGE_SIZE) + off;
		uint8_t b = (uint8_t)value;
		uint16_t h = (uint16_t)value;
		uint32_t wd = (uint32_t)value;
		switch (size) {
		case 1: memcpy(at, &b, 1); break;
		case 2: memcpy(at, &h, 2); break;
		case 4: memcpy(at, &wd, 4); break;
		default: memcpy(at, &value, 8); break;
		}
		return;
	}
	for (unsigned i = 0; i < size; i++) /* across two pages */
		shadow_of(t, (paddr + i) / CKPT_PAGE_SIZE)[(paddr + i) % CKPT_PAGE_SIZE] =
			(uint8_t)(value >> (8 * i));
}

/* The physical address of an access the TLB no longer maps: a later
 * access of the same block took its entry (QEMU's TLB is direct-mapped).
 * The walk reads the page tables as they are now, which map the page as
 * the TLB did: a guest changes a mapping in use only with a TLB flush,
 * and the accesses before one are drained before it. A page the walk
 * does not find fails the trace, rather than give it a wrong address. */
static __attribute__((noinline, cold)) bool walk(struct replay_trace *t, uint64_t vaddr,
						 uint64_t *paddr)
{
	struct qemu_plugin_x86_cpu_state s;
	replay_state__current(&s);
	if (replay_state__phys(&s, s.cr3, vaddr, paddr))
		return true;
	if (!t->err[0])
		snprintf(t->err, sizeof(t->err),
			 "memory access at 0x%" PRIx64 ": not in the TLB, and no page maps it",
			 vaddr);
	*paddr = vaddr;
	return false;
}

/* The physical address of an access whose page is not in the cache, where
 * it goes unless it is I/O. */
static __attribute__((noinline)) uint64_t paddr_lookup(struct replay_trace *t,
							qemu_plugin_meminfo_t info, uint64_t vaddr)
{
	struct qemu_plugin_hwaddr *hw = qemu_plugin_get_hwaddr(info, vaddr);
	uint64_t paddr;
	bool known;
	if (hw) {
		paddr = qemu_plugin_hwaddr_phys_addr(hw);
		known = !qemu_plugin_hwaddr_is_io(hw);
	} else {
		known = walk(t, vaddr, &paddr);
	}
	if (known) {
		t->page[(vaddr >> 12) % PAGE_CACHE].vpage = vaddr >> 12;
		t->page[(vaddr >> 12) % PAGE_CACHE].ppage = paddr >> 12;
	}
	return paddr;
}

/* An access by instruction `insn` (of the batch) as records: its physical
 * address, its value cut to its size, a 16-byte one as two 8-byte records
 * (the format's widest). Returns how many, into a[]; a store goes into the
 * shadow too. Inline: a call per access cost more than its work. */
static inline __attribute__((always_inline)) unsigned
decode_access(struct replay_trace *t, qemu_plugin_meminfo_t info, uint64_t vaddr, uint64_t low,
	      uint64_t high, uint32_t insn, struct trace_access a[2])
{
	if (!t->info_known || info != t->info) {
		t->info = info;
		t->info_shift = qemu_plugin_mem_size_shift(info);
		t->info_store = qemu_plugin_mem_is_store(info);
		t->info_known = true;
	}
	uint64_t paddr, vpage = vaddr >> 12;
	if (vpage == t->page[vpage % PAGE_CACHE].vpage)
		paddr = t->page[vpage % PAGE_CACHE].ppage << 12 | (vaddr & 0xfff);
	else
		paddr = paddr_lookup(t, info, vaddr);
	unsigned shift = t->info_shift, size = 1u << shift;
	bool store = t->info_store;
	if (shift < 4) {
		if (shift < 3)
			low &= (1ull << (8 * size)) - 1;
		a[0] = (struct trace_access){ .vaddr = vaddr, .paddr = paddr, .value = low,
					      .insn = insn, .size = (uint8_t)size, .write = store };
		if (store)
			shadow_store(t, paddr, low, size);
		return 1;
	}
	/* From registers, not read back from a[]: a copy of a[0] read what
	 * was just stored in pieces, a store-forwarding stall that took half
	 * the decoding time. */
	a[0] = (struct trace_access){ .vaddr = vaddr, .paddr = paddr, .value = low, .insn = insn,
				      .size = 8, .write = store };
	a[1] = (struct trace_access){ .vaddr = vaddr + 8, .paddr = paddr + 8, .value = high,
				      .insn = insn, .size = 8, .write = store };
	if (store) {
		shadow_store(t, paddr, low, 8);
		shadow_store(t, paddr + 8, high, 8);
	}
	return 2;
}

/* An access by instruction `index` of the running block: its record
 * after those of the instructions before, and into the shadow if a store. */
static void record_access(struct replay_trace *t, unsigned index, qemu_plugin_meminfo_t info,
			  uint64_t vaddr, uint64_t low, uint64_t high)
{
	struct trace_access a[2];
	unsigned n = decode_access(t, info, vaddr, low, high, 0, a);
	if (t->emitted <= index)
		flush_insns(t, index + 1u);
	for (unsigned i = 0; i < n; i++) {
		struct trace_record rec = { .kind = TRACE_MEM, .icount = t->base + index,
					    .mem = { .vaddr = a[i].vaddr, .paddr = a[i].paddr,
						     .value = a[i].value, .size = a[i].size,
						     .write = a[i].write } };
		if (t->analyses_mem)
			emit(t, &rec);
		else /* the trace file alone */
			write_record(t, &rec);
	}
}

/* The accesses recorded inline since the last drain; all by the running
 * block (a block's first callback drains what the one before left). With
 * no analysis that wants records, they go to the writer in one run with
 * the instructions they follow. */
static void drain(struct replay_trace *t)
{
	if (!t->buf || !t->cursor_at)
		return;
	const qemu_plugin_mem_record *end =
		(const qemu_plugin_mem_record *)(uintptr_t)*t->cursor_at;
	const struct block *b = t->cur;
	if (t->analyses_mem || t->analyses_insn || !b) {
		for (const qemu_plugin_mem_record *r = t->buf; r < end; r++)
			record_access(t, r->tag, r->info, r->vaddr, r->value_low, r->value_high);
	} else { /* into the batch, numbered after its instructions */
		if (t->nacc > BATCH_ACCESSES || t->nruns == BATCH_RUNS) /* room for a run */
			write_batch(t);
		unsigned m = t->nacc, upto = t->emitted;
		uint32_t first = t->batch_insns - t->emitted; /* instruction 0 of b */
		for (const qemu_plugin_mem_record *r = t->buf; r < end; r++) {
			m += decode_access(t, r->info, r->vaddr, r->value_low, r->value_high,
					   first + r->tag, &t->acc[m]);
			upto = r->tag + 1;
		}
		if (m > t->nacc) {
			t->nacc = m;
			batch_run(t, b, t->emitted, upto);
			t->emitted = upto;
		}
	}
	*t->cursor_at = (uint64_t)(uintptr_t)t->buf;
}

/* The running block's records up to instruction upto: its accesses so
 * far, then its instructions. */
static void flush(struct replay_trace *t, uint64_t upto)
{
	drain(t);
	flush_insns(t, upto);
}

/* An access of a REP string instruction, which may loop within its block
 * more often than the buffer has room for. */
static void on_mem(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
	const struct insn_site *site = udata;
	qemu_plugin_mem_value v = qemu_plugin_mem_get_value(info);
	uint64_t low = 0, high = 0;
	(void)vcpu;

	drain(site->t);
	switch (v.type) {
	case QEMU_PLUGIN_MEM_VALUE_U8:   low = v.data.u8; break;
	case QEMU_PLUGIN_MEM_VALUE_U16:  low = v.data.u16; break;
	case QEMU_PLUGIN_MEM_VALUE_U32:  low = v.data.u32; break;
	case QEMU_PLUGIN_MEM_VALUE_U64:  low = v.data.u64; break;
	case QEMU_PLUGIN_MEM_VALUE_U128:
		low = v.data.u128.low;
		high = v.data.u128.high;
		break;
	}
	record_access(site->t, site->index, info, vaddr, low, high);
}

/* A string instruction (MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS) with a
 * REP prefix. */
static bool is_rep_string(struct qemu_plugin_insn *insn)
{
	uint8_t b[16];
	size_t n = qemu_plugin_insn_data(insn, b, sizeof(b));
	bool rep = false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = b[i];
		if (c == 0xf2 || c == 0xf3)
			rep = true;
		else if (c == 0x66 || c == 0x67 || c == 0xf0 || c == 0x26 || c == 0x2e ||
			 c == 0x36 || c == 0x3e || c == 0x64 || c == 0x65 || (c & 0xf0) == 0x40)
			continue;
		else
			return rep && ((c >= 0x6c && c <= 0x6f) || (c >= 0xa4 && c <= 0xa7) ||
				       (c >= 0xaa && c <= 0xaf));
	}
	return false;
}

/* A memory or event record, after the records of the instructions
 * executed so far: its icount is that of the last one (trace.h). */
static void append(struct replay_trace *t, struct trace_record *rec)
{
	uint64_t n = executed(t);
	flush(t, n - t->base);
	rec->icount = n ? n - 1 : 0;
	emit(t, rec);
}

static void on_block(unsigned int vcpu, void *udata)
{
	const struct block *b = udata;
	struct replay_trace *t = b->t;
	uint64_t n = executed(t);
	(void)vcpu;
	flush(t, n - t->base);
	t->cur = b;
	t->base = n;
	t->emitted = 0;
}

/* Vectors whose frame holds an error code. */
static bool has_error_code(unsigned v)
{
	return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30;
}

/* The CPU writes the frame of an interrupt or exception while it delivers
 * it, outside any instruction, so no memory callback sees those stores.
 * They are read back at the handler's first instruction (a block start,
 * where the state is complete): in 64-bit mode the words at RSP (error
 * code, RIP, CS, RFLAGS, RSP, SS), recorded as 8-byte stores, after the
 * event: the replay's own injections have theirs already; an exception
 * (vector below 32) or a software interrupt gets one here. */
static void append_delivery(struct replay_trace *t, unsigned vector)
{
	struct qemu_plugin_x86_cpu_state s;
	struct trace_record words[6];
	unsigned n = has_error_code(vector) ? 6 : 5;
	bool injected = t->injected;

	t->injected = false;
	replay_state__current(&s);
	for (unsigned i = 0; i < n; i++) {
		struct trace_record *w = &words[i];
		*w = (struct trace_record){ .kind = TRACE_MEM,
					    .mem = { .vaddr = s.regs[CKPT_RSP] + 8 * i, .size = 8,
						     .write = true } };
		if (!replay_state__phys(&s, s.cr3, w->mem.vaddr, &w->mem.paddr) ||
		    !qemu_plugin_read_memory_phys(w->mem.paddr, &w->mem.value, sizeof(w->mem.value)))
			return;
	}
	if (!injected)
		replay_trace__event(t, vector < 32 ? TRACE_EV_EXCEPTION : TRACE_EV_INTERRUPT, vector,
				    words[n - 5].mem.value, n == 6 ? words[0].mem.value : 0, 0);
	for (unsigned i = 0; i < n && t->want_mem; i++) {
		append(t, &words[i]);
		shadow_store(t, words[i].mem.paddr, words[i].mem.value, 8);
	}
}

/* The first instruction of an interrupt or exception handler. */
static void on_handler(unsigned int vcpu, void *udata)
{
	const struct insn_site *site = udata;
	(void)vcpu;
	append_delivery(site->t, site->vector - 1u);
}

static enum special special_of(struct qemu_plugin_insn *insn, unsigned *gpr)
{
	uint8_t b[16];
	size_t n = qemu_plugin_insn_data(insn, b, sizeof(b)), i = 0;
	unsigned rex = 0;
	bool opsize = false;

	for (; i < n; i++) { /* legacy prefixes */
		uint8_t c = b[i];
		if (c == 0x66)
			opsize = true;
		else if (c != 0x67 && c != 0xf0 && c != 0xf2 && c != 0xf3 && c != 0x26 &&
			 c != 0x2e && c != 0x36 && c != 0x3e && c != 0x64 && c != 0x65)
			break;
	}
	if (i < n && (b[i] & 0xf0) == 0x40)
		rex = b[i++];
	if (n < i + 2 || b[i] != 0x0f)
		return SPECIAL_NONE;
	uint8_t op = b[i + 1], modrm = n > i + 2 ? b[i + 2] : 0;
	unsigned reg = (modrm >> 3) & 7;
	if (op == 0x05 && n == i + 2)
		return SPECIAL_SYSCALL;
	if (op == 0x07 && n == i + 2)
		return SPECIAL_SYSRET;
	/* 0f 22 /r with reg = 3 and a register operand: mov %reg, %cr3 */
	if (op == 0x22 && n == i + 3 && reg == 3 && (modrm >> 6) == 3 && !(rex & 4)) {
		*gpr = (modrm & 7) | (rex & 1) << 3;
		return SPECIAL_CR3;
	}
	/* mov to CR0 or CR4 (0f 22 /0, /4); invlpg (0f 01 /7, a memory
	 * operand); wrmsr (0f 30: EFER); invpcid (66 0f 38 82) */
	if ((op == 0x22 && (reg == 0 || reg == 4) && !(rex & 4)) ||
	    (op == 0x01 && reg == 7 && (modrm >> 6) != 3 && n > i + 2) || (op == 0x30) ||
	    (opsize && op == 0x38 && n > i + 2 && b[i + 2] == 0x82))
		return SPECIAL_TLB;
	return SPECIAL_NONE;
}

static void on_special(unsigned int vcpu, void *udata)
{
	const struct insn_site *site = udata;
	struct qemu_plugin_x86_cpu_state s;
	struct trace_record rec = { .kind = TRACE_EVENT };
	(void)vcpu;

	if (site->kind == SPECIAL_TLB) { /* before it executes, with its own record */
		flush(site->t, site->index + 1u);
		forget_pages(site->t);
		return;
	}
	replay_state__current(&s);
	rec.event.c = s.cr3;
	switch (site->kind) {
	case SPECIAL_SYSCALL:
		rec.event.kind = TRACE_EV_SYSCALL;
		rec.event.a = s.regs[CKPT_RAX];
		rec.event.b = s.rip;
		static const enum ckpt_gpr args[6] = { CKPT_RDI, CKPT_RSI, CKPT_RDX,
						       CKPT_R10, CKPT_R8, CKPT_R9 };
		for (unsigned i = 0; i < 6; i++)
			rec.event.args[i] = s.regs[args[i]];
		break;
	case SPECIAL_SYSRET:
		rec.event.kind = TRACE_EV_SYSRET;
		rec.event.a = s.regs[CKPT_RAX];
		rec.event.b = s.regs[CKPT_RCX];
		break;
	case SPECIAL_CR3:
		rec.event.kind = TRACE_EV_CR3;
		rec.event.a = s.regs[site->gpr];
		rec.event.b = s.cr3;
		rec.event.c = 0;
		break;
	case SPECIAL_NONE:
	case SPECIAL_TLB:
		return;
	}
	/* before it executes: its own record comes first */
	flush(site->t, site->index + 1u);
	append(site->t, &rec);
	if (site->kind == SPECIAL_CR3)
		forget_pages(site->t);
}

void replay_trace__instrument_block(struct replay_trace *t, struct qemu_plugin_tb *tb,
				    const struct qemu_plugin_x86_cpu_state *s)
{
	if (s->idt_base != t->idt_base || s->idt_limit != t->idt_limit)
		read_idt(t, s);
	if (!t->want_insn && !t->want_mem)
		return;
	size_t n = qemu_plugin_tb_n_insns(tb);
	struct block *b = g_malloc(sizeof(*b) + n * sizeof(b->insn[0]));
	b->t = t;
	b->n = (unsigned)n;
	for (size_t i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		b->insn[i].pc = qemu_plugin_insn_vaddr(insn);
		b->insn[i].size = (uint8_t)qemu_plugin_insn_size(insn);
		b->insn[i].cpl = (uint8_t)(s->seg[CKPT_CS].selector & 3);
	}
	char err[256];
	b->encoded = t->dir[0] ? trace_block__new(b->insn, b->n, err, sizeof(err)) : NULL;
	if (t->dir[0] && !b->encoded)
		fprintf(stderr, "replay: %s\n", err); /* and each trace it runs in fails */
	g_ptr_array_add(t->blocks, b);
	qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, QEMU_PLUGIN_CB_NO_REGS, b);
}

void replay_trace__instrument(struct replay_trace *t, struct qemu_plugin_insn *insn,
			      unsigned index)
{
	uint64_t pc = qemu_plugin_insn_vaddr(insn);
	unsigned vector = GPOINTER_TO_UINT(g_hash_table_lookup(t->entries, &pc));
	unsigned gpr = 0;
	enum special kind = special_of(insn, &gpr);
	bool rep = t->want_mem && is_rep_string(insn);
	if (t->want_mem && !rep) /* the record's tag: the instruction's number in its block */
		qemu_plugin_register_vcpu_mem_inline_per_vcpu(insn, QEMU_PLUGIN_MEM_RW,
							      QEMU_PLUGIN_INLINE_RECORD_MEM,
							      t->cursor, index);
	if (!vector && kind == SPECIAL_NONE && !rep)
		return; /* nothing to call back */
	struct insn_site *site = g_new(struct insn_site, 1);
	*site = (struct insn_site){ .t = t, .index = index, .vector = (uint16_t)vector,
				    .kind = kind, .gpr = gpr };
	g_ptr_array_add(t->sites, site);
	if (vector)
		qemu_plugin_register_vcpu_insn_exec_cb(insn, on_handler, QEMU_PLUGIN_CB_NO_REGS, site);
	if (kind != SPECIAL_NONE)
		qemu_plugin_register_vcpu_insn_exec_cb(insn, on_special,
						       kind == SPECIAL_TLB ? QEMU_PLUGIN_CB_NO_REGS :
									     QEMU_PLUGIN_CB_R_REGS,
						       site);
	if (rep)
		qemu_plugin_register_vcpu_mem_cb(insn, on_mem, QEMU_PLUGIN_CB_NO_REGS,
						 QEMU_PLUGIN_MEM_RW, site);
}

void replay_trace__event(struct replay_trace *t, enum trace_event_kind kind, uint64_t a,
			 uint64_t b, uint64_t c, unsigned size)
{
	struct trace_record rec = { .kind = TRACE_EVENT,
				    .event = { .kind = kind, .a = a, .b = b, .c = c,
					       .size = (uint8_t)size } };
	append(t, &rec);
	forget_pages(t); /* rare next to accesses; I/O may remap memory (A20, SMRAM) */
}

void replay_trace__interrupt(struct replay_trace *t, uint64_t vector, uint64_t rip)
{
	replay_trace__event(t, TRACE_EV_INTERRUPT, vector, rip, 0, 0);
	t->injected = true;
}

int replay_trace__ad_bits(struct replay_trace *t, const struct ckpt_manifest *end, char *err,
			  size_t errlen)
{
	uint64_t was[CKPT_PAGE_SIZE / 8], now[CKPT_PAGE_SIZE / 8];

	if (!t->want_mem)
		return 0;
	drain(t);
	for (uint64_t i = 0; i < end->page_count; i++) {
		uint64_t gpn = end->pages[i].gpn;
		const uint8_t *stored = g_hash_table_lookup(t->shadow, &gpn);
		if (stored)
			memcpy(was, stored, sizeof(was));
		else if (replay_page_reader__read(&t->pages, t->start, gpn, was, err, errlen) != 0)
			return -1;
		if (!qemu_plugin_read_memory_phys(gpn * CKPT_PAGE_SIZE, now, sizeof(now))) {
			snprintf(err, errlen, "page 0x%" PRIx64 ": cannot read it", gpn);
			return -1;
		}
		/* a present entry (bit 0) whose difference is bits 5 and 6 */
		for (unsigned w = 0; w < CKPT_PAGE_SIZE / 8; w++)
			if (was[w] != now[w] && (was[w] & 1) && !((was[w] ^ now[w]) & ~0x60ull))
				replay_trace__event(t, TRACE_EV_AD_BITS, gpn * CKPT_PAGE_SIZE + 8 * w,
						    was[w], now[w], 0);
	}
	return 0;
}

static int read_page(const struct sb_memory *m, uint64_t gpn, void *out)
{
	(void)m;
	return qemu_plugin_read_memory_phys(gpn * CKPT_PAGE_SIZE, out, CKPT_PAGE_SIZE) ? 0 : -1;
}

json_t *replay_trace__end(struct replay_trace *t, bool last, char *err, size_t errlen)
{
	char path[4200];
	struct trace_writer *w = t->w;
	json_t *out = json_object();
	struct sb_memory mem = { .pages = t->start->npages, .read_page = read_page };

	flush(t, executed(t) - t->base);
	write_batch(t);
	t->w = NULL;
	if (t->err[0]) {
		snprintf(err, errlen, "interval %u: %s", t->interval, t->err);
		goto fail;
	}
	for (unsigned i = 0; i < t->nan; i++)
		if (analysis_state__end(t->states[i], &mem, err, errlen) != 0)
			goto fail;
	if (w) {
		uint64_t insns = trace_writer__icount(w);
		trace__path(path, sizeof(path), t->dir, t->interval);
		struct trace_writer *done = w;
		w = NULL; /* commit frees it, also on error */
		if (trace_writer__commit(done, err, errlen) != 0)
			goto fail;
		json_object_set_new(out, "trace", json_pack("{s:s, s:I}", "path", path,
							    "instructions", (json_int_t)insns));
	}
	if (last && t->nan) {
		json_t *saved = json_array();
		json_object_set_new(out, "analyses", saved);
		for (unsigned i = 0; i < t->nan; i++) {
			uint32_t first, end;
			if (analysis_state__save(t->states[i], t->an_dir, err, errlen) != 0)
				goto fail;
			analysis_state__range(t->states[i], &first, &end);
			analysis__state_path(path, sizeof(path), t->an_dir,
					     analysis__name(t->an[i]), first, end);
			json_array_append_new(saved, json_string(path));
		}
	}
	return out;
fail:
	trace_writer__abort(w);
	json_decref(out);
	return NULL;
}

void replay_trace__free(struct replay_trace *t)
{
	if (!t)
		return;
	trace_writer__abort(t->w);
	for (unsigned i = 0; i < t->nan; i++) {
		analysis_state__free(t->states[i]);
		analysis__close(t->an[i]);
	}
	g_ptr_array_free(t->sites, TRUE);
	g_ptr_array_free(t->blocks, TRUE);
	g_free(t->runs);
	if (t->buf)
		munmap(t->buf, t->buf_map);
	g_free(t->acc);
	if (t->cursor_sb)
		qemu_plugin_scoreboard_free(t->cursor_sb);
	g_hash_table_destroy(t->shadow);
	g_hash_table_destroy(t->entries);
	g_free(t);
}
