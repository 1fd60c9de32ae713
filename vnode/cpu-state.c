/* The vCPU's complete state in the checkpoint format, and the landmark
 * hash of its registers. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vm.h"

/* MSRs that a guest can set and that KVM keeps outside regs/sregs. FS and GS
 * bases live in the segment registers and EFER in sregs. */
static const uint32_t saved_msrs[] = {
	CKPT_MSR_SYSENTER_CS, CKPT_MSR_SYSENTER_ESP, CKPT_MSR_SYSENTER_EIP,
	CKPT_MSR_STAR, CKPT_MSR_LSTAR, CKPT_MSR_CSTAR, CKPT_MSR_SFMASK,
	CKPT_MSR_KERNEL_GS_BASE, CKPT_MSR_PAT, CKPT_MSR_MISC_ENABLE,
	CKPT_MSR_TSC, /* the guest can read it even with the CPUID bit hidden */
};
#define N_SAVED_MSRS (sizeof(saved_msrs) / sizeof(saved_msrs[0]))

static void seg_from_kvm(struct ckpt_segment *s, const struct kvm_segment *k)
{
	*s = (struct ckpt_segment){
		.base = k->base, .limit = k->limit, .selector = k->selector, .type = k->type,
		.present = k->present, .dpl = k->dpl, .db = k->db, .s = k->s, .l = k->l,
		.g = k->g, .avl = k->avl, .unusable = k->unusable,
	};
}

static void seg_to_kvm(struct kvm_segment *k, const struct ckpt_segment *s)
{
	*k = (struct kvm_segment){
		.base = s->base, .limit = s->limit, .selector = s->selector, .type = s->type,
		.present = s->present, .dpl = s->dpl, .db = s->db, .s = s->s, .l = s->l,
		.g = s->g, .avl = s->avl, .unusable = s->unusable,
	};
}

/* kvm_regs orders the GPRs rax rbx rcx rdx rsi rdi rsp rbp; the checkpoint
 * format uses the instruction encoding order. */
static void gprs_from_kvm(uint64_t gpr[CKPT_GPR__COUNT], const struct kvm_regs *r)
{
	gpr[CKPT_RAX] = r->rax; gpr[CKPT_RCX] = r->rcx; gpr[CKPT_RDX] = r->rdx;
	gpr[CKPT_RBX] = r->rbx; gpr[CKPT_RSP] = r->rsp; gpr[CKPT_RBP] = r->rbp;
	gpr[CKPT_RSI] = r->rsi; gpr[CKPT_RDI] = r->rdi; gpr[CKPT_R8] = r->r8;
	gpr[CKPT_R9] = r->r9; gpr[CKPT_R10] = r->r10; gpr[CKPT_R11] = r->r11;
	gpr[CKPT_R12] = r->r12; gpr[CKPT_R13] = r->r13; gpr[CKPT_R14] = r->r14;
	gpr[CKPT_R15] = r->r15;
}

static void gprs_to_kvm(struct kvm_regs *r, const uint64_t gpr[CKPT_GPR__COUNT])
{
	r->rax = gpr[CKPT_RAX]; r->rcx = gpr[CKPT_RCX]; r->rdx = gpr[CKPT_RDX];
	r->rbx = gpr[CKPT_RBX]; r->rsp = gpr[CKPT_RSP]; r->rbp = gpr[CKPT_RBP];
	r->rsi = gpr[CKPT_RSI]; r->rdi = gpr[CKPT_RDI]; r->r8 = gpr[CKPT_R8];
	r->r9 = gpr[CKPT_R9]; r->r10 = gpr[CKPT_R10]; r->r11 = gpr[CKPT_R11];
	r->r12 = gpr[CKPT_R12]; r->r13 = gpr[CKPT_R13]; r->r14 = gpr[CKPT_R14];
	r->r15 = gpr[CKPT_R15];
}

static int vcpu_ioctl(struct vnode *vn, unsigned long req, void *arg, const char *name, char *err,
		      size_t errlen)
{
	if (ioctl(vn->vcpu_fd, req, arg) < 0) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		return -1;
	}
	return 0;
}

int cpu__landmark(struct vnode *vn, uint64_t *rip, struct ckpt_landmark *lm, char *err,
		  size_t errlen)
{
	struct kvm_regs r;
	if (vcpu_ioctl(vn, KVM_GET_REGS, &r, "KVM_GET_REGS", err, errlen) != 0)
		return -1;
	uint64_t gpr[CKPT_GPR__COUNT];
	gprs_from_kvm(gpr, &r);
	if (rip)
		*rip = r.rip;
	if (lm) {
		lm->rip = r.rip;
		struct kvm_sregs sr;
		if (vcpu_ioctl(vn, KVM_GET_SREGS, &sr, "KVM_GET_SREGS", err, errlen) != 0)
			return -1;
		lm->reg_hash = ckpt_landmark__reg_hash(gpr, r.rflags);
		memcpy(lm->gpr, gpr, sizeof(gpr));
		lm->cr3 = sr.cr3;
		lm->flags |= ckpt_landmark__pack_rflags(r.rflags);
	}
	return 0;
}

int cpu__event_in_flight(struct vnode *vn, bool *in_flight, char *err, size_t errlen)
{
	struct kvm_vcpu_events ev;
	if (vcpu_ioctl(vn, KVM_GET_VCPU_EVENTS, &ev, "KVM_GET_VCPU_EVENTS", err, errlen) != 0)
		return -1;
	*in_flight = ev.exception.injected || ev.interrupt.injected || ev.nmi.injected;
	return 0;
}

/* Reads the MSRs one batch at a time: KVM_GET_MSRS stops at the first MSR
 * the host does not know, which is then skipped. */
static int save_msrs(struct vnode *vn, struct ckpt_cpu_state *cpu, char *err, size_t errlen)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[N_SAVED_MSRS];
	} m;
	cpu->msr_count = 0;
	size_t next = 0;
	while (next < N_SAVED_MSRS) {
		memset(&m, 0, sizeof(m));
		m.hdr.nmsrs = (uint32_t)(N_SAVED_MSRS - next);
		for (size_t i = 0; i < m.hdr.nmsrs; i++)
			m.e[i].index = saved_msrs[next + i];
		int n = ioctl(vn->vcpu_fd, KVM_GET_MSRS, &m);
		if (n < 0) {
			snprintf(err, errlen, "KVM_GET_MSRS: %s", strerror(errno));
			return -1;
		}
		for (int i = 0; i < n; i++)
			cpu->msrs[cpu->msr_count++] = (struct ckpt_msr){ m.e[i].index, m.e[i].data };
		next += (size_t)n + 1; /* skip the one that failed */
	}
	return 0;
}

/* The FXSAVE-format legacy region at the start of the XSAVE area. */
#define XSAVE_XSTATE_BV 512
#define XSTATE_FP_SSE 3ULL

static bool xsave_unsupported(void) { return errno == EINVAL || errno == ENOTTY; }

static void fpu_from_kvm(struct ckpt_cpu_state *cpu, const struct kvm_fpu *f)
{
	cpu->fcw = f->fcw; cpu->fsw = f->fsw; cpu->fop = f->last_opcode; cpu->ftw = f->ftwx;
	cpu->fip = f->last_ip; cpu->fdp = f->last_dp; cpu->mxcsr = f->mxcsr;
	memcpy(cpu->st, f->fpr, sizeof(cpu->st));
	memcpy(cpu->xmm, f->xmm, sizeof(cpu->xmm));
}

/* x87 and SSE state. KVM_GET_FPU under the PVM KVM of our build machines
 * returns stale SSE registers while the guest runs in user mode (measured:
 * a guest resumed from such a state computed wrong results); the XSAVE area
 * is current. KVM_GET_FPU serves hosts without KVM_CAP_XSAVE. */
static int save_fpu(struct vnode *vn, struct ckpt_cpu_state *cpu, char *err, size_t errlen)
{
	struct kvm_xsave xs;
	if (ioctl(vn->vcpu_fd, KVM_GET_XSAVE, &xs) < 0) {
		struct kvm_fpu f;
		if (!xsave_unsupported()) {
			snprintf(err, errlen, "KVM_GET_XSAVE: %s", strerror(errno));
			return -1;
		}
		if (vcpu_ioctl(vn, KVM_GET_FPU, &f, "KVM_GET_FPU", err, errlen) != 0)
			return -1;
		fpu_from_kvm(cpu, &f);
		return 0;
	}
	ckpt_cpu_state__get_fxsave(cpu, (const uint8_t *)xs.region);
	return 0;
}

static int load_fpu(struct vnode *vn, const struct ckpt_cpu_state *cpu, char *err, size_t errlen)
{
	struct kvm_xsave xs;
	if (ioctl(vn->vcpu_fd, KVM_GET_XSAVE, &xs) < 0) {
		if (!xsave_unsupported()) {
			snprintf(err, errlen, "KVM_GET_XSAVE: %s", strerror(errno));
			return -1;
		}
		struct kvm_fpu f = {
			.fcw = cpu->fcw, .fsw = cpu->fsw, .ftwx = cpu->ftw,
			.last_opcode = cpu->fop, .last_ip = cpu->fip, .last_dp = cpu->fdp,
			.mxcsr = cpu->mxcsr,
		};
		memcpy(f.fpr, cpu->st, sizeof(f.fpr));
		memcpy(f.xmm, cpu->xmm, sizeof(f.xmm));
		return vcpu_ioctl(vn, KVM_SET_FPU, &f, "KVM_SET_FPU", err, errlen);
	}
	uint8_t *a = (uint8_t *)xs.region;
	/* MXCSR_MASK is the CPU's, whatever the checkpoint says. */
	uint32_t mxcsr_mask;
	memcpy(&mxcsr_mask, a + CKPT_FX_MXCSR_MASK, 4);
	ckpt_cpu_state__put_fxsave(cpu, a);
	memcpy(a + CKPT_FX_MXCSR_MASK, &mxcsr_mask, 4);
	/* Mark x87 and SSE as present, or the restore would reset them. */
	uint64_t bv;
	memcpy(&bv, a + XSAVE_XSTATE_BV, 8);
	bv |= XSTATE_FP_SSE;
	memcpy(a + XSAVE_XSTATE_BV, &bv, 8);
	return vcpu_ioctl(vn, KVM_SET_XSAVE, &xs, "KVM_SET_XSAVE", err, errlen);
}

int cpu__save_state(struct vnode *vn, struct ckpt_cpu_state *cpu, char *err, size_t errlen)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	struct kvm_vcpu_events ev;
	struct kvm_debugregs d;
	memset(cpu, 0, sizeof(*cpu));
	if (vcpu_ioctl(vn, KVM_GET_REGS, &r, "KVM_GET_REGS", err, errlen) != 0 ||
	    vcpu_ioctl(vn, KVM_GET_SREGS, &s, "KVM_GET_SREGS", err, errlen) != 0 ||
	    vcpu_ioctl(vn, KVM_GET_VCPU_EVENTS, &ev, "KVM_GET_VCPU_EVENTS", err, errlen) != 0 ||
	    vcpu_ioctl(vn, KVM_GET_DEBUGREGS, &d, "KVM_GET_DEBUGREGS", err, errlen) != 0)
		return -1;
	gprs_from_kvm(cpu->gpr, &r);
	cpu->rip = r.rip;
	cpu->rflags = r.rflags;
	const struct kvm_segment *segs[CKPT_SEG__COUNT] = {
		[CKPT_ES] = &s.es, [CKPT_CS] = &s.cs, [CKPT_SS] = &s.ss, [CKPT_DS] = &s.ds,
		[CKPT_FS] = &s.fs, [CKPT_GS] = &s.gs, [CKPT_LDT] = &s.ldt, [CKPT_TR] = &s.tr,
	};
	for (int i = 0; i < CKPT_SEG__COUNT; i++)
		seg_from_kvm(&cpu->seg[i], segs[i]);
	cpu->gdt = (struct ckpt_dtable){ s.gdt.base, s.gdt.limit };
	cpu->idt = (struct ckpt_dtable){ s.idt.base, s.idt.limit };
	cpu->cr0 = s.cr0; cpu->cr2 = s.cr2; cpu->cr3 = s.cr3; cpu->cr4 = s.cr4;
	cpu->cr8 = s.cr8; cpu->efer = s.efer; cpu->apic_base = s.apic_base;
	memcpy(cpu->dr, d.db, sizeof(cpu->dr));
	cpu->dr6 = d.dr6;
	cpu->dr7 = d.dr7;
	cpu->exception_injected = ev.exception.injected;
	cpu->exception_nr = ev.exception.nr;
	cpu->exception_has_error = ev.exception.has_error_code;
	cpu->exception_error = ev.exception.error_code;
	cpu->interrupt_injected = ev.interrupt.injected;
	cpu->interrupt_nr = ev.interrupt.nr;
	cpu->interrupt_soft = ev.interrupt.soft;
	cpu->interrupt_shadow = ev.interrupt.shadow;
	cpu->nmi_injected = ev.nmi.injected;
	cpu->nmi_pending = ev.nmi.pending;
	cpu->nmi_masked = ev.nmi.masked;
	cpu->halted = vn->halted;
	if (save_fpu(vn, cpu, err, errlen) != 0)
		return -1;
	return save_msrs(vn, cpu, err, errlen);
}

int cpu__load_state(struct vnode *vn, const struct ckpt_cpu_state *cpu, char *err, size_t errlen)
{
	struct kvm_sregs s;
	if (vcpu_ioctl(vn, KVM_GET_SREGS, &s, "KVM_GET_SREGS", err, errlen) != 0)
		return -1;
	struct kvm_segment *segs[CKPT_SEG__COUNT] = {
		[CKPT_ES] = &s.es, [CKPT_CS] = &s.cs, [CKPT_SS] = &s.ss, [CKPT_DS] = &s.ds,
		[CKPT_FS] = &s.fs, [CKPT_GS] = &s.gs, [CKPT_LDT] = &s.ldt, [CKPT_TR] = &s.tr,
	};
	for (int i = 0; i < CKPT_SEG__COUNT; i++)
		seg_to_kvm(segs[i], &cpu->seg[i]);
	s.gdt.base = cpu->gdt.base; s.gdt.limit = cpu->gdt.limit;
	s.idt.base = cpu->idt.base; s.idt.limit = cpu->idt.limit;
	s.cr0 = cpu->cr0; s.cr2 = cpu->cr2; s.cr3 = cpu->cr3; s.cr4 = cpu->cr4;
	s.cr8 = cpu->cr8; s.efer = cpu->efer; s.apic_base = cpu->apic_base;
	memset(s.interrupt_bitmap, 0, sizeof(s.interrupt_bitmap));
	if (vcpu_ioctl(vn, KVM_SET_SREGS, &s, "KVM_SET_SREGS", err, errlen) != 0)
		return -1;

	struct kvm_regs r = { .rip = cpu->rip, .rflags = cpu->rflags };
	gprs_to_kvm(&r, cpu->gpr);
	if (vcpu_ioctl(vn, KVM_SET_REGS, &r, "KVM_SET_REGS", err, errlen) != 0)
		return -1;

	if (load_fpu(vn, cpu, err, errlen) != 0)
		return -1;

	struct kvm_debugregs d = { .dr6 = cpu->dr6, .dr7 = cpu->dr7 };
	memcpy(d.db, cpu->dr, sizeof(d.db));
	if (vcpu_ioctl(vn, KVM_SET_DEBUGREGS, &d, "KVM_SET_DEBUGREGS", err, errlen) != 0)
		return -1;

	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[CKPT_MAX_MSRS];
	} m = { .hdr = { .nmsrs = cpu->msr_count } };
	for (uint32_t i = 0; i < cpu->msr_count && i < CKPT_MAX_MSRS; i++)
		m.e[i] = (struct kvm_msr_entry){ .index = cpu->msrs[i].index,
						 .data = cpu->msrs[i].value };
	int n = ioctl(vn->vcpu_fd, KVM_SET_MSRS, &m);
	if (n < 0 || (uint32_t)n != cpu->msr_count) {
		snprintf(err, errlen, "KVM_SET_MSRS: MSR 0x%x refused",
			 n >= 0 && (uint32_t)n < cpu->msr_count ? cpu->msrs[n].index : 0);
		return -1;
	}

	struct kvm_vcpu_events ev = { .flags = KVM_VCPUEVENT_VALID_SHADOW |
					       KVM_VCPUEVENT_VALID_NMI_PENDING };
	ev.exception.injected = cpu->exception_injected;
	ev.exception.nr = cpu->exception_nr;
	ev.exception.has_error_code = cpu->exception_has_error;
	ev.exception.error_code = cpu->exception_error;
	ev.interrupt.injected = cpu->interrupt_injected;
	ev.interrupt.nr = cpu->interrupt_nr;
	ev.interrupt.soft = cpu->interrupt_soft;
	ev.interrupt.shadow = cpu->interrupt_shadow;
	ev.nmi.injected = cpu->nmi_injected;
	ev.nmi.pending = cpu->nmi_pending;
	ev.nmi.masked = cpu->nmi_masked;
	if (vcpu_ioctl(vn, KVM_SET_VCPU_EVENTS, &ev, "KVM_SET_VCPU_EVENTS", err, errlen) != 0)
		return -1;
	vn->halted = cpu->halted;
	return 0;
}
