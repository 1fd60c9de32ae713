/* vCPU register state at boot, and reading guest code for fault reports. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vm.h"

#define CR0_PE (1ULL << 0)
#define CR0_MP (1ULL << 1)
#define CR0_ET (1ULL << 4)
#define CR0_NE (1ULL << 5)
#define CR0_WP (1ULL << 16)
#define CR0_PG (1ULL << 31)
#define CR4_PSE (1ULL << 4)
#define CR4_PAE (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

#define MSR_IA32_APICBASE 0x1b

static struct kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code64)
{
	return (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = selector, .type = type,
		.present = 1, .dpl = 0, .db = code64 ? 0 : 1, .s = 1, .l = code64 ? 1 : 0, .g = 1,
	};
}

int cpu__set_boot_state(struct vnode *vn, char *err, size_t errlen)
{
	struct kvm_sregs sregs;
	if (ioctl(vn->vcpu_fd, KVM_GET_SREGS, &sregs) < 0) {
		snprintf(err, errlen, "KVM_GET_SREGS: %s", strerror(errno));
		return -1;
	}
	struct kvm_regs regs = { .rflags = 0x2 };
	const struct boot_entry *e = &vn->entry;
	bool long64 = e->mode == BOOT_ENTRY_LONG64;
	/* Selectors follow the GDT layouts the entry conventions promise: PVH
	 * leaves the GDT to the guest (cs 0x8/ds 0x10 as Linux's PVH code
	 * expects), the 64-bit boot protocol uses __BOOT_CS 0x10/__BOOT_DS 0x18. */
	sregs.cs = flat_segment(long64 ? 0x10 : 0x08, 0xb, long64);
	struct kvm_segment data = flat_segment(long64 ? 0x18 : 0x10, 0x3, false);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.tr = (struct kvm_segment){ .limit = 0x67, .type = 0xb, .present = 1 };
	sregs.ldt = (struct kvm_segment){ .limit = 0xffff, .type = 0x2, .present = 1 };
	sregs.cr0 = CR0_PE | CR0_ET;
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (long64) {
		sregs.gdt.base = e->gdt_base;
		sregs.gdt.limit = e->gdt_limit;
		sregs.cr3 = e->cr3;
		sregs.cr4 = CR4_PAE;
		sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
		sregs.efer = EFER_LME | EFER_LMA;
		regs.rsi = e->rsi;
	} else {
		regs.rbx = e->rbx;
	}
	regs.rip = e->rip;
	regs.rsp = e->rsp;
	if (ioctl(vn->vcpu_fd, KVM_SET_SREGS, &sregs) < 0) {
		snprintf(err, errlen, "KVM_SET_SREGS: %s", strerror(errno));
		return -1;
	}
	if (ioctl(vn->vcpu_fd, KVM_SET_REGS, &regs) < 0) {
		snprintf(err, errlen, "KVM_SET_REGS: %s", strerror(errno));
		return -1;
	}
	/* The guest has no local APIC: disabled in IA32_APIC_BASE, which KVM
	 * follows for CPUID.1:EDX.APIC, or the guest would see the APIC that
	 * the table (and QEMU TCG) leave out. A KVM that refuses leaves it
	 * showing, and the guest runs all the same. */
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} apic = { .hdr = { .nmsrs = 1 }, .e = { .index = MSR_IA32_APICBASE, .data = 0 } };
	(void)ioctl(vn->vcpu_fd, KVM_SET_MSRS, &apic);
	return 0;
}

static bool read_phys_u64(struct vnode *vn, uint64_t gpa, uint64_t *out)
{
	const void *p = guest_mem__ptr(&vn->mem, gpa, 8);
	if (!p)
		return false;
	memcpy(out, p, 8);
	return true;
}

/* Walks the guest page tables the way the MMU would, for the mode the vCPU
 * is in. Returns false if the address is not mapped. */
static bool translate(struct vnode *vn, const struct kvm_sregs *s, uint64_t va, uint64_t *pa)
{
	if (!(s->cr0 & CR0_PG)) {
		*pa = va;
		return true;
	}
	const uint64_t addr_mask = 0x000ffffffffff000ULL;
	if (s->efer & EFER_LMA) {
		uint64_t table = s->cr3 & addr_mask, e = 0;
		for (int level = 3; level >= 0; level--) {
			unsigned idx = (va >> (12 + 9 * level)) & 0x1ff;
			if (!read_phys_u64(vn, table + idx * 8, &e) || !(e & 1))
				return false;
			if ((level == 2 || level == 1) && (e & 0x80)) {
				uint64_t page = 1ULL << (12 + 9 * level);
				*pa = (e & addr_mask & ~(page - 1)) | (va & (page - 1));
				return true;
			}
			table = e & addr_mask;
		}
		*pa = table | (va & 0xfff);
		return true;
	}
	if (s->cr4 & CR4_PAE) {
		uint64_t e;
		uint64_t pdpte = (s->cr3 & 0xffffffe0) + ((va >> 30) & 3) * 8;
		if (!read_phys_u64(vn, pdpte, &e) || !(e & 1))
			return false;
		uint64_t pde_addr = (e & addr_mask) + ((va >> 21) & 0x1ff) * 8;
		if (!read_phys_u64(vn, pde_addr, &e) || !(e & 1))
			return false;
		if (e & 0x80) {
			*pa = (e & addr_mask & ~0x1fffffULL) | (va & 0x1fffff);
			return true;
		}
		uint64_t pte_addr = (e & addr_mask) + ((va >> 12) & 0x1ff) * 8;
		if (!read_phys_u64(vn, pte_addr, &e) || !(e & 1))
			return false;
		*pa = (e & addr_mask) | (va & 0xfff);
		return true;
	}
	const uint32_t *pd = guest_mem__ptr(&vn->mem, s->cr3 & 0xfffff000, 4096);
	if (!pd)
		return false;
	uint32_t pde = pd[(va >> 22) & 0x3ff];
	if (!(pde & 1))
		return false;
	if ((pde & 0x80) && (s->cr4 & CR4_PSE)) {
		*pa = (pde & 0xffc00000) | (va & 0x3fffff);
		return true;
	}
	const uint32_t *pt = guest_mem__ptr(&vn->mem, pde & 0xfffff000, 4096);
	if (!pt)
		return false;
	uint32_t pte = pt[(va >> 12) & 0x3ff];
	if (!(pte & 1))
		return false;
	*pa = (pte & 0xfffff000) | (va & 0xfff);
	return true;
}

size_t cpu__read_code(struct vnode *vn, uint64_t rip, uint8_t *out, size_t len)
{
	struct kvm_sregs s;
	if (ioctl(vn->vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return 0;
	uint64_t va = (s.efer & EFER_LMA) && s.cs.l ? rip : s.cs.base + rip;
	size_t n = 0;
	while (n < len) {
		uint64_t pa;
		if (!translate(vn, &s, va + n, &pa))
			break;
		const uint8_t *p = guest_mem__ptr(&vn->mem, pa, 1);
		if (!p)
			break;
		out[n++] = *p;
	}
	return n;
}

void cpu__describe(struct vnode *vn, char *out, size_t outlen)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	if (ioctl(vn->vcpu_fd, KVM_GET_REGS, &r) < 0 || ioctl(vn->vcpu_fd, KVM_GET_SREGS, &s) < 0) {
		snprintf(out, outlen, "(registers unavailable: %s)", strerror(errno));
		return;
	}
	const char *mode = (s.efer & EFER_LMA) ? (s.cs.l ? "long" : "compat")
			 : (s.cr0 & CR0_PE) ? "protected" : "real";
	snprintf(out, outlen, "rip 0x%llx cs 0x%x cpl %d %s mode, rsp 0x%llx rflags 0x%llx "
		 "cr0 0x%llx cr3 0x%llx cr4 0x%llx",
		 (unsigned long long)r.rip, s.cs.selector, s.cs.dpl, mode,
		 (unsigned long long)r.rsp, (unsigned long long)r.rflags,
		 (unsigned long long)s.cr0, (unsigned long long)s.cr3, (unsigned long long)s.cr4);
}
