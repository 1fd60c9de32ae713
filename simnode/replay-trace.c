/* Full traces of replayed intervals (plugin argument trace=DIR): every
 * instruction the replay counts, every memory access with its physical
 * address and value, and the events the replay itself injects or serves
 * (interrupts, port and MMIO accesses), the exceptions and software
 * interrupts the guest takes, and the frames the CPU pushes for all of
 * them, into DIR/NNNNNN.trace through
 * trace/. A trace is committed when its interval ends exact, and dropped
 * otherwise. */
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "replay-priv.h"

struct replay_trace {
	char dir[4096];
	struct trace_writer *w;
	uint32_t interval;
	char err[512];              /* the first failure of the open trace */
	bool injected;              /* the replay injected an interrupt: its event is in */
	GPtrArray *sites;           /* struct insn_site, freed with the trace */
	GHashTable *entries;        /* IDT handler address -> vector + 1 */
	uint64_t idt_base;          /* the IDT entries were read from */
	uint32_t idt_limit;
};

/* One translated instruction: what its record says. */
struct insn_site {
	struct replay_trace *t;
	uint64_t pc;
	uint8_t size, cpl;
	uint16_t vector;            /* + 1, if an IDT entry points here */
};

int replay_trace__arg(struct replay_trace **t, const char *key, const char *val)
{
	if (strcmp(key, "trace"))
		return 0;
	if (*t || !*val || strlen(val) >= sizeof((*t)->dir))
		return -1;
	*t = g_new0(struct replay_trace, 1);
	snprintf((*t)->dir, sizeof((*t)->dir), "%s", val);
	(*t)->sites = g_ptr_array_new_with_free_func(g_free);
	(*t)->entries = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
	return 1;
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

int replay_trace__begin(struct replay_trace *t, uint32_t interval, char *err, size_t errlen)
{
	char path[4200];
	trace__path(path, sizeof(path), t->dir, interval);
	t->interval = interval;
	t->err[0] = '\0';
	t->injected = false;
	t->w = trace_writer__create(path, interval, err, errlen);
	return t->w ? 0 : -1;
}

static void append(struct replay_trace *t, const struct trace_record *rec)
{
	if (!t->w || t->err[0])
		return;
	trace_writer__append(t->w, rec, t->err, sizeof(t->err));
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
	for (unsigned i = 0; i < n; i++)
		append(t, &words[i]);
}

static void on_insn(unsigned int vcpu, void *udata)
{
	const struct insn_site *site = udata;
	struct trace_record rec = { .kind = TRACE_INSN,
				    .insn = { .pc = site->pc, .size = site->size, .cpl = site->cpl } };
	(void)vcpu;
	if (site->vector)
		append_delivery(site->t, site->vector - 1u);
	append(site->t, &rec);
}

static void on_mem(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
	struct replay_trace *t = udata;
	struct qemu_plugin_hwaddr *hw = qemu_plugin_get_hwaddr(info, vaddr);
	qemu_plugin_mem_value v = qemu_plugin_mem_get_value(info);
	struct trace_record rec = { .kind = TRACE_MEM };
	uint64_t words[2] = { 0, 0 };
	unsigned size = 1u << qemu_plugin_mem_size_shift(info), n = 1;
	(void)vcpu;

	rec.mem.write = qemu_plugin_mem_is_store(info);
	rec.mem.paddr = hw ? qemu_plugin_hwaddr_phys_addr(hw) : vaddr;
	switch (v.type) {
	case QEMU_PLUGIN_MEM_VALUE_U8:   words[0] = v.data.u8; break;
	case QEMU_PLUGIN_MEM_VALUE_U16:  words[0] = v.data.u16; break;
	case QEMU_PLUGIN_MEM_VALUE_U32:  words[0] = v.data.u32; break;
	case QEMU_PLUGIN_MEM_VALUE_U64:  words[0] = v.data.u64; break;
	case QEMU_PLUGIN_MEM_VALUE_U128:
		/* two 8-byte records: the format's widest access */
		words[0] = v.data.u128.low;
		words[1] = v.data.u128.high;
		size = 8;
		n = 2;
		break;
	}
	for (unsigned i = 0; i < n; i++) {
		rec.mem.vaddr = vaddr + 8 * i;
		rec.mem.paddr += 8 * i;
		rec.mem.size = (uint8_t)size;
		rec.mem.value = words[i];
		append(t, &rec);
	}
}

void replay_trace__instrument(struct replay_trace *t, struct qemu_plugin_insn *insn,
			      const struct qemu_plugin_x86_cpu_state *s)
{
	if (s->idt_base != t->idt_base || s->idt_limit != t->idt_limit)
		read_idt(t, s);
	unsigned cpl = s->seg[CKPT_CS].selector & 3;
	struct insn_site *site = g_new(struct insn_site, 1);
	uint64_t pc = qemu_plugin_insn_vaddr(insn);
	*site = (struct insn_site){ .t = t, .pc = pc, .size = (uint8_t)qemu_plugin_insn_size(insn),
				    .cpl = (uint8_t)cpl,
				    .vector = (uint16_t)GPOINTER_TO_UINT(g_hash_table_lookup(t->entries, &pc)) };
	g_ptr_array_add(t->sites, site);
	qemu_plugin_register_vcpu_insn_exec_cb(insn, on_insn, QEMU_PLUGIN_CB_NO_REGS, site);
	qemu_plugin_register_vcpu_mem_cb(insn, on_mem, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW,
					 t);
}

void replay_trace__event(struct replay_trace *t, enum trace_event_kind kind, uint64_t a,
			 uint64_t b, uint64_t c, unsigned size)
{
	struct trace_record rec = { .kind = TRACE_EVENT,
				    .event = { .kind = kind, .a = a, .b = b, .c = c,
					       .size = (uint8_t)size } };
	append(t, &rec);
}

void replay_trace__interrupt(struct replay_trace *t, uint64_t vector, uint64_t rip)
{
	replay_trace__event(t, TRACE_EV_INTERRUPT, vector, rip, 0, 0);
	t->injected = true;
}

json_t *replay_trace__end(struct replay_trace *t, char *err, size_t errlen)
{
	char path[4200];
	uint64_t insns = trace_writer__icount(t->w);
	struct trace_writer *w = t->w;

	t->w = NULL;
	if (t->err[0]) {
		snprintf(err, errlen, "trace of interval %u: %s", t->interval, t->err);
		trace_writer__abort(w);
		return NULL;
	}
	if (trace_writer__commit(w, err, errlen) != 0)
		return NULL;
	trace__path(path, sizeof(path), t->dir, t->interval);
	return json_pack("{s:s, s:I}", "path", path, "instructions", (json_int_t)insns);
}

void replay_trace__free(struct replay_trace *t)
{
	if (!t)
		return;
	trace_writer__abort(t->w);
	g_ptr_array_free(t->sites, TRUE);
	g_hash_table_destroy(t->entries);
	g_free(t);
}
