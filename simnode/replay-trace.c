/* Full traces of replayed intervals (plugin argument trace=DIR): every
 * instruction the replay counts, every memory access with its physical
 * address and value, and the events the replay itself injects or serves
 * (interrupts, port and MMIO accesses), into DIR/NNNNNN.trace through
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
	GPtrArray *sites;           /* struct insn_site, freed with the trace */
};

/* One translated instruction: what its record says. */
struct insn_site {
	struct replay_trace *t;
	uint64_t pc;
	uint8_t size, cpl;
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
	return 1;
}

int replay_trace__begin(struct replay_trace *t, uint32_t interval, char *err, size_t errlen)
{
	char path[4200];
	trace__path(path, sizeof(path), t->dir, interval);
	t->interval = interval;
	t->err[0] = '\0';
	t->w = trace_writer__create(path, interval, err, errlen);
	return t->w ? 0 : -1;
}

static void append(struct replay_trace *t, const struct trace_record *rec)
{
	if (!t->w || t->err[0])
		return;
	trace_writer__append(t->w, rec, t->err, sizeof(t->err));
}

static void on_insn(unsigned int vcpu, void *udata)
{
	const struct insn_site *site = udata;
	struct trace_record rec = { .kind = TRACE_INSN,
				    .insn = { .pc = site->pc, .size = site->size, .cpl = site->cpl } };
	(void)vcpu;
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

void replay_trace__instrument(struct replay_trace *t, struct qemu_plugin_insn *insn, unsigned cpl)
{
	struct insn_site *site = g_new(struct insn_site, 1);
	*site = (struct insn_site){ .t = t, .pc = qemu_plugin_insn_vaddr(insn),
				    .size = (uint8_t)qemu_plugin_insn_size(insn), .cpl = (uint8_t)cpl };
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
	g_free(t);
}
