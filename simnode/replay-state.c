/* Checkpoint CPU state <-> the patched QEMU's x86 plugin state, and the
 * comparison that decides whether a replay reached a checkpoint. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "replay-priv.h"

/* x86 descriptor attribute bits as QEMU caches them (high dword, in place) */
#define DESC_TYPE_SHIFT 8
#define DESC_S (1u << 12)
#define DESC_DPL_SHIFT 13
#define DESC_P (1u << 15)
#define DESC_AVL (1u << 20)
#define DESC_L_SHIFT 21
#define DESC_B_SHIFT 22
#define DESC_G (1u << 23)


static uint32_t seg_flags(const struct ckpt_segment *s)
{
	/* KVM's segment fields packed the way the descriptor holds them; an
	 * unusable segment is not present. */
	return (uint32_t)s->type << DESC_TYPE_SHIFT | (s->s ? DESC_S : 0) |
	       (uint32_t)s->dpl << DESC_DPL_SHIFT | (s->present && !s->unusable ? DESC_P : 0) |
	       (s->avl ? DESC_AVL : 0) | (uint32_t)s->l << DESC_L_SHIFT |
	       (uint32_t)s->db << DESC_B_SHIFT | (s->g ? DESC_G : 0);
}

static bool msr_value(const struct ckpt_cpu_state *c, uint32_t index, uint64_t *value)
{
	for (uint32_t i = 0; i < c->msr_count && i < CKPT_MAX_MSRS; i++) {
		if (c->msrs[i].index == index) {
			*value = c->msrs[i].value;
			return true;
		}
	}
	return false;
}

void replay_state__current(struct qemu_plugin_x86_cpu_state *s)
{
	memset(s, 0, sizeof(*s));
	s->size = sizeof(*s);
	if (!qemu_plugin_get_cpu_state(s, sizeof(*s))) {
		fprintf(stderr, "replay: qemu_plugin_get_cpu_state failed\n");
		_exit(3);
	}
}

void replay_state__regs(struct qemu_plugin_x86_cpu_state *s)
{
	s->size = QEMU_PLUGIN_X86_REGS_SIZE;
	if (!qemu_plugin_get_cpu_state(s, QEMU_PLUGIN_X86_REGS_SIZE)) {
		fprintf(stderr, "replay: qemu_plugin_get_cpu_state (registers) failed\n");
		_exit(3);
	}
}

int replay_state__from_ckpt(const struct ckpt_cpu_state *c, struct qemu_plugin_x86_cpu_state *q,
			    char *err, size_t errlen)
{
	if (c->exception_injected || c->interrupt_injected || c->nmi_injected || c->nmi_pending) {
		snprintf(err, errlen,
			 "an exception or interrupt is being delivered at this checkpoint; "
			 "the replay cannot start from it");
		return -1;
	}
	memset(q, 0, sizeof(*q));
	q->size = sizeof(*q);
	memcpy(q->regs, c->gpr, sizeof(q->regs));
	q->rip = c->rip;
	q->rflags = c->rflags;
	for (int i = 0; i < CKPT_SEG__COUNT; i++) {
		q->seg[i].base = c->seg[i].base;
		q->seg[i].limit = c->seg[i].limit;
		q->seg[i].selector = c->seg[i].selector;
		q->seg[i].flags = seg_flags(&c->seg[i]);
	}
	q->gdt_base = c->gdt.base;
	q->gdt_limit = c->gdt.limit;
	q->idt_base = c->idt.base;
	q->idt_limit = c->idt.limit;
	q->cr0 = c->cr0;
	q->cr2 = c->cr2;
	q->cr3 = c->cr3;
	q->cr4 = c->cr4;
	q->efer = c->efer;
	for (int i = 0; i < 4; i++)
		q->dr[i] = c->dr[i];
	q->dr[6] = c->dr6;
	q->dr[7] = c->dr7;
	msr_value(c, CKPT_MSR_STAR, &q->star);
	msr_value(c, CKPT_MSR_LSTAR, &q->lstar);
	msr_value(c, CKPT_MSR_CSTAR, &q->cstar);
	msr_value(c, CKPT_MSR_SFMASK, &q->fmask);
	msr_value(c, CKPT_MSR_KERNEL_GS_BASE, &q->kernel_gs_base);
	msr_value(c, CKPT_MSR_SYSENTER_CS, &q->sysenter_cs);
	msr_value(c, CKPT_MSR_SYSENTER_ESP, &q->sysenter_esp);
	msr_value(c, CKPT_MSR_SYSENTER_EIP, &q->sysenter_eip);
	if (!msr_value(c, CKPT_MSR_PAT, &q->pat))
		q->pat = 0x0007040600070406ULL; /* the reset value */
	msr_value(c, CKPT_MSR_MISC_ENABLE, &q->misc_enable);

	ckpt_cpu_state__put_fxsave(c, q->fxsave); /* MXCSR_MASK 0: QEMU's default */

	if (c->halted)
		q->flags |= QEMU_PLUGIN_X86_HALTED;
	if (c->interrupt_shadow)
		q->flags |= QEMU_PLUGIN_X86_IRQ_SHADOW;
	if (c->nmi_masked)
		q->flags |= QEMU_PLUGIN_X86_NMI_MASKED;
	return 0;
}

uint64_t replay_state__reg_hash(const struct qemu_plugin_x86_cpu_state *q)
{
	return ckpt_landmark__reg_hash(q->regs, q->rflags);
}

static const char *const gpr_names[16] = {
	"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
};
static const char *const seg_names[8] = { "es", "cs", "ss", "ds", "fs", "gs", "ldt", "tr" };

/* Appends "name: replay 0x.. recorded 0x.." to the report, counting it. */
static void differ(struct replay_state_diff *d, const char *name, uint64_t replay, uint64_t recorded)
{
	if (d->count < REPLAY_MAX_STATE_DIFFS) {
		struct replay_state_field *f = &d->fields[d->count];
		snprintf(f->name, sizeof(f->name), "%s", name);
		f->replay = replay;
		f->recorded = recorded;
	}
	d->count++;
}

#define CMP(field, name)                                                             \
	do {                                                                         \
		if (r->field != e->field)                                            \
			differ(d, name, r->field, e->field);                         \
	} while (0)

static void compare_segment(struct replay_state_diff *d, int i,
			    const struct qemu_plugin_x86_segment *r,
			    const struct qemu_plugin_x86_segment *e, bool long_mode)
{
	char name[32];
	bool r_present = r->flags & DESC_P, e_present = e->flags & DESC_P;

	snprintf(name, sizeof(name), "%s.selector", seg_names[i]);
	CMP(selector, name);
	/* A null SS in 64-bit mode (an interrupt from CPL3 loads one, and
	 * IRETQ to CPL0 keeps it) has no cached part the CPU uses but its DPL,
	 * the CPL: the hardware keeps it unusable, TCG makes it a flat data
	 * segment. */
	if (i == CKPT_SS && long_mode && !(r->selector & 0xfffc) && !(e->selector & 0xfffc)) {
		uint32_t dpl = 3u << DESC_DPL_SHIFT;
		if ((r->flags & dpl) != (e->flags & dpl))
			differ(d, "ss.dpl", (r->flags & dpl) >> DESC_DPL_SHIFT,
			       (e->flags & dpl) >> DESC_DPL_SHIFT);
		return;
	}
	/* A segment that is not present has no meaningful cached part, except
	 * that FS and GS bases are used in 64-bit mode whatever the selector. */
	if (!r_present && !e_present) {
		if (i == CKPT_FS || i == CKPT_GS) {
			snprintf(name, sizeof(name), "%s.base", seg_names[i]);
			CMP(base, name);
		}
		return;
	}
	snprintf(name, sizeof(name), "%s.base", seg_names[i]);
	CMP(base, name);
	snprintf(name, sizeof(name), "%s.limit", seg_names[i]);
	CMP(limit, name);
	/* Only the attribute bits: QEMU caches the whole descriptor word, with
	 * base and limit bits the KVM format leaves out. Not the accessed bit
	 * either, which the CPU sets on load, whenever that happened; nor, for
	 * TR, the busy bit, which LTR sets in the GDT while QEMU's cached copy
	 * keeps the type it loaded. */
	uint32_t mask = 0x00f0ff00u & ~(1u << DESC_TYPE_SHIFT);
	if (i == CKPT_TR)
		mask &= ~(2u << DESC_TYPE_SHIFT);
	uint32_t rf = r->flags & mask, ef = e->flags & mask;
	if (rf != ef) {
		snprintf(name, sizeof(name), "%s.flags", seg_names[i]);
		differ(d, name, rf, ef);
	}
}

void replay_state__compare(const struct qemu_plugin_x86_cpu_state *r,
			   const struct qemu_plugin_x86_cpu_state *e, struct replay_state_diff *d)
{
	memset(d, 0, sizeof(*d));
	for (int i = 0; i < 16; i++)
		CMP(regs[i], gpr_names[i]);
	CMP(rip, "rip");
	/* TF: see ckpt_landmark__reg_hash. RF counts: the stop landmark
	 * carries it. */
	if ((r->rflags & ~0x100ULL) != (e->rflags & ~0x100ULL))
		differ(d, "rflags", r->rflags, e->rflags);
	for (int i = 0; i < 8; i++)
		compare_segment(d, i, &r->seg[i], &e->seg[i], (e->efer & EFER_LMA) != 0);
	CMP(gdt_base, "gdt.base");
	CMP(gdt_limit, "gdt.limit");
	CMP(idt_base, "idt.base");
	CMP(idt_limit, "idt.limit");
	CMP(cr0, "cr0");
	CMP(cr2, "cr2");
	CMP(cr3, "cr3");
	CMP(cr4, "cr4");
	CMP(efer, "efer");
	CMP(dr[7], "dr7");
	CMP(star, "star");
	CMP(lstar, "lstar");
	CMP(cstar, "cstar");
	CMP(fmask, "sfmask");
	CMP(kernel_gs_base, "kernel_gs_base");
	CMP(sysenter_cs, "sysenter_cs");
	CMP(sysenter_esp, "sysenter_esp");
	CMP(sysenter_eip, "sysenter_eip");
	CMP(pat, "pat");
	if ((r->flags & QEMU_PLUGIN_X86_HALTED) != (e->flags & QEMU_PLUGIN_X86_HALTED))
		differ(d, "halted", r->flags & QEMU_PLUGIN_X86_HALTED,
		       e->flags & QEMU_PLUGIN_X86_HALTED);

	/* x87/SSE: control, status, tags, registers, MXCSR. The x87 last
	 * instruction and operand pointers (FIP, FDP, FOP) are not modelled by
	 * TCG and are left out. */
	static const struct {
		int off, len;
		const char *name;
	} fx_fields[] = {
		{ CKPT_FX_FCW, 2, "fcw" }, { CKPT_FX_FSW, 2, "fsw" }, { CKPT_FX_FTW, 1, "ftw" },
		{ CKPT_FX_MXCSR, 4, "mxcsr" },
	};
	for (size_t i = 0; i < sizeof(fx_fields) / sizeof(fx_fields[0]); i++) {
		uint64_t a = 0, b = 0;
		memcpy(&a, r->fxsave + fx_fields[i].off, (size_t)fx_fields[i].len);
		memcpy(&b, e->fxsave + fx_fields[i].off, (size_t)fx_fields[i].len);
		if (a != b)
			differ(d, fx_fields[i].name, a, b);
	}
	for (int i = 0; i < 8; i++) {
		if (memcmp(r->fxsave + CKPT_FX_ST + 16 * i, e->fxsave + CKPT_FX_ST + 16 * i, 10) != 0) {
			uint64_t a, b;
			char name[8];
			memcpy(&a, r->fxsave + CKPT_FX_ST + 16 * i, 8);
			memcpy(&b, e->fxsave + CKPT_FX_ST + 16 * i, 8);
			snprintf(name, sizeof(name), "st%d", i);
			differ(d, name, a, b);
		}
	}
	for (int i = 0; i < 16; i++) {
		for (int half = 0; half < 2; half++) {
			uint64_t a, b;
			memcpy(&a, r->fxsave + CKPT_FX_XMM + 16 * i + 8 * half, 8);
			memcpy(&b, e->fxsave + CKPT_FX_XMM + 16 * i + 8 * half, 8);
			if (a != b) {
				char name[16];
				snprintf(name, sizeof(name), "xmm%d.%s", i, half ? "hi" : "lo");
				differ(d, name, a, b);
			}
		}
	}
}

uint64_t replay_state__code_linear(const struct qemu_plugin_x86_cpu_state *s, uint64_t rip)
{
	/* Outside 64-bit mode the linear address adds the CS base. */
	return rip + (s->efer & EFER_LMA ? 0 : s->seg[CKPT_CS].base);
}

bool replay_state__phys(const struct qemu_plugin_x86_cpu_state *s, uint64_t cr3, uint64_t va,
			uint64_t *pa)
{
	const uint64_t addr_mask = 0x000ffffffffff000ull;
	if (!(s->cr0 & CR0_PG)) {
		*pa = va;
		return true;
	}
	if (!(s->efer & EFER_LMA) || (s->cr4 & CR4_LA57))
		return false;
	uint64_t table = cr3 & addr_mask;
	for (int level = 4; level >= 1; level--) {
		unsigned shift = 12 + 9 * (unsigned)(level - 1);
		uint64_t e;
		if (!qemu_plugin_read_memory_phys(table + ((va >> shift) & 511) * 8, &e, sizeof(e)) ||
		    !(e & 1))
			return false;
		if (level == 1 || (level <= 3 && (e & 0x80))) { /* a page, maybe 1 GiB or 2 MiB */
			uint64_t offset = (1ull << shift) - 1;
			*pa = (e & addr_mask & ~offset) | (va & offset);
			return true;
		}
		table = e & addr_mask;
	}
	return false;
}
