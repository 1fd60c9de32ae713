/* ckpt_cpu_state__print: the vCPU state of a checkpoint for people, with
 * flag bits and MSRs decoded, so a diff of two dumps reads as a diff of
 * machine states. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"

struct bit_name {
	unsigned bit;
	const char *name;
};

static const struct bit_name rflags_bits[] = {
	{ 0, "CF" }, { 2, "PF" }, { 4, "AF" }, { 6, "ZF" }, { 7, "SF" }, { 8, "TF" },
	{ 9, "IF" }, { 10, "DF" }, { 11, "OF" }, { 14, "NT" }, { 16, "RF" }, { 17, "VM" },
	{ 18, "AC" }, { 19, "VIF" }, { 20, "VIP" }, { 21, "ID" },
};

static const struct bit_name cr0_bits[] = {
	{ 0, "PE" }, { 1, "MP" }, { 2, "EM" }, { 3, "TS" }, { 4, "ET" }, { 5, "NE" },
	{ 16, "WP" }, { 18, "AM" }, { 29, "NW" }, { 30, "CD" }, { 31, "PG" },
};

static const struct bit_name cr4_bits[] = {
	{ 0, "VME" }, { 1, "PVI" }, { 2, "TSD" }, { 3, "DE" }, { 4, "PSE" }, { 5, "PAE" },
	{ 6, "MCE" }, { 7, "PGE" }, { 8, "PCE" }, { 9, "OSFXSR" }, { 10, "OSXMMEXCPT" },
	{ 11, "UMIP" }, { 12, "LA57" }, { 13, "VMXE" }, { 14, "SMXE" }, { 16, "FSGSBASE" },
	{ 17, "PCIDE" }, { 18, "OSXSAVE" }, { 20, "SMEP" }, { 21, "SMAP" }, { 22, "PKE" },
	{ 23, "CET" }, { 24, "PKS" },
};

static const struct bit_name efer_bits[] = {
	{ 0, "SCE" }, { 8, "LME" }, { 10, "LMA" }, { 11, "NXE" }, { 12, "SVME" },
	{ 13, "LMSLE" }, { 14, "FFXSR" }, { 15, "TCE" },
};

static const struct bit_name fsw_bits[] = {
	{ 0, "IE" }, { 1, "DE" }, { 2, "ZE" }, { 3, "OE" }, { 4, "UE" }, { 5, "PE" },
	{ 6, "SF" }, { 7, "ES" }, { 8, "C0" }, { 9, "C1" }, { 10, "C2" }, { 14, "C3" },
	{ 15, "B" },
};

static const struct {
	uint32_t index;
	const char *name;
} msr_names[] = {
	{ 0x10, "TSC" },
	{ 0x11, "KVM_WALL_CLOCK" },
	{ 0x12, "KVM_SYSTEM_TIME" },
	{ 0x1b, "APIC_BASE" },
	{ 0x3a, "FEATURE_CONTROL" },
	{ 0x3b, "TSC_ADJUST" },
	{ 0x48, "SPEC_CTRL" },
	{ 0xfe, "MTRRCAP" },
	{ 0x174, "SYSENTER_CS" },
	{ 0x175, "SYSENTER_ESP" },
	{ 0x176, "SYSENTER_EIP" },
	{ 0x179, "MCG_CAP" },
	{ 0x17a, "MCG_STATUS" },
	{ 0x1a0, "MISC_ENABLE" },
	{ 0x277, "PAT" },
	{ 0x2ff, "MTRR_DEF_TYPE" },
	{ 0x6e0, "TSC_DEADLINE" },
	{ 0xc0000080, "EFER" },
	{ 0xc0000081, "STAR" },
	{ 0xc0000082, "LSTAR" },
	{ 0xc0000083, "CSTAR" },
	{ 0xc0000084, "SFMASK" },
	{ 0xc0000100, "FS_BASE" },
	{ 0xc0000101, "GS_BASE" },
	{ 0xc0000102, "KERNEL_GS_BASE" },
	{ 0xc0000103, "TSC_AUX" },
	{ 0x4b564d00, "KVM_WALL_CLOCK_NEW" },
	{ 0x4b564d01, "KVM_SYSTEM_TIME_NEW" },
	{ 0x4b564d02, "KVM_ASYNC_PF_EN" },
	{ 0x4b564d03, "KVM_STEAL_TIME" },
	{ 0x4b564d04, "KVM_PV_EOI_EN" },
};

static const char *const exception_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", NULL, "#TS", "#NP",
	"#SS", "#GP", "#PF", NULL, "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

static const char *const gpr_names[CKPT_GPR__COUNT] = {
	"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
};

static const char *const seg_names[CKPT_SEG__COUNT] = {
	"es", "cs", "ss", "ds", "fs", "gs", "ldt", "tr",
};

static void print_bits(FILE *out, uint64_t v, const struct bit_name *bits, size_t n)
{
	fputs(" [", out);
	for (size_t i = 0, first = 1; i < n; i++) {
		if (v & (1ull << bits[i].bit)) {
			fprintf(out, "%s%s", first ? "" : " ", bits[i].name);
			first = 0;
		}
	}
	fputc(']', out);
}

static const char *msr_name(uint32_t index)
{
	for (size_t i = 0; i < sizeof(msr_names) / sizeof(msr_names[0]); i++)
		if (msr_names[i].index == index)
			return msr_names[i].name;
	return NULL;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Most significant byte first, as the value reads. */
static void print_reg128(FILE *out, const uint8_t r[16])
{
	for (int i = 15; i >= 0; i--) {
		fprintf(out, "%02x", r[i]);
		if (i == 8)
			fputc('_', out);
	}
}

static void print_segment(FILE *out, const char *name, const struct ckpt_segment *s)
{
	fprintf(out, "%-3s  sel=0x%04x base=0x%016" PRIx64 " limit=0x%08x type=%x s=%u dpl=%u "
		"p=%u db=%u l=%u g=%u avl=%u%s\n", name, s->selector, s->base, s->limit, s->type,
		s->s, s->dpl, s->present, s->db, s->l, s->g, s->avl,
		s->unusable ? " unusable" : "");
}

static void print_exception(FILE *out, const char *what, uint8_t nr)
{
	const char *name = nr < 32 ? exception_names[nr] : NULL;

	fprintf(out, "%s vector %u%s%s%s", what, nr, name ? " (" : "", name ? name : "",
		name ? ")" : "");
}

static void print_events(FILE *out, const struct ckpt_cpu_state *c)
{
	bool any = false;

	fputs("events:", out);
	if (c->exception_injected) {
		fputc(' ', out);
		print_exception(out, "exception", c->exception_nr);
		if (c->exception_has_error)
			fprintf(out, " error 0x%x", c->exception_error);
		fputc(';', out);
		any = true;
	}
	if (c->interrupt_injected) {
		fprintf(out, " %s interrupt vector %u;", c->interrupt_soft ? "soft" : "external",
			c->interrupt_nr);
		any = true;
	}
	if (c->interrupt_shadow) {
		fprintf(out, " interrupt shadow 0x%x;", c->interrupt_shadow);
		any = true;
	}
	if (c->nmi_injected || c->nmi_pending || c->nmi_masked) {
		fprintf(out, " nmi%s%s%s;", c->nmi_injected ? " injected" : "",
			c->nmi_pending ? " pending" : "", c->nmi_masked ? " masked" : "");
		any = true;
	}
	if (!any)
		fputs(" none;", out);
	fprintf(out, " %s\n", c->halted ? "halted" : "running");
}

void ckpt_cpu_state__print(const struct ckpt_cpu_state *c, FILE *out)
{
	for (int i = 0; i < CKPT_GPR__COUNT; i++)
		fprintf(out, "%-3s 0x%016" PRIx64 "%s", gpr_names[i], c->gpr[i],
			i % 4 == 3 ? "\n" : "  ");
	fprintf(out, "rip 0x%016" PRIx64 "  rflags 0x%08" PRIx64, c->rip, c->rflags);
	print_bits(out, c->rflags, rflags_bits, sizeof(rflags_bits) / sizeof(rflags_bits[0]));
	fprintf(out, " iopl=%u\n", (unsigned)(c->rflags >> 12) & 3);

	for (int i = 0; i < CKPT_SEG__COUNT; i++)
		print_segment(out, seg_names[i], &c->seg[i]);
	fprintf(out, "gdt  base=0x%016" PRIx64 " limit=0x%04x\n", c->gdt.base, c->gdt.limit);
	fprintf(out, "idt  base=0x%016" PRIx64 " limit=0x%04x\n", c->idt.base, c->idt.limit);

	fprintf(out, "cr0 0x%016" PRIx64, c->cr0);
	print_bits(out, c->cr0, cr0_bits, sizeof(cr0_bits) / sizeof(cr0_bits[0]));
	fprintf(out, "\ncr2 0x%016" PRIx64 "  cr3 0x%016" PRIx64 "  cr8 0x%" PRIx64 "\n", c->cr2,
		c->cr3, c->cr8);
	fprintf(out, "cr4 0x%016" PRIx64, c->cr4);
	print_bits(out, c->cr4, cr4_bits, sizeof(cr4_bits) / sizeof(cr4_bits[0]));
	fprintf(out, "\nefer 0x%" PRIx64, c->efer);
	print_bits(out, c->efer, efer_bits, sizeof(efer_bits) / sizeof(efer_bits[0]));
	fprintf(out, "  apic_base 0x%" PRIx64 "%s%s\n", c->apic_base,
		c->apic_base & (1u << 11) ? " [enabled" : " [disabled",
		c->apic_base & (1u << 8) ? " bsp]" : "]");
	fprintf(out, "dr0 0x%" PRIx64 "  dr1 0x%" PRIx64 "  dr2 0x%" PRIx64 "  dr3 0x%" PRIx64
		"  dr6 0x%" PRIx64 "  dr7 0x%" PRIx64 "\n", c->dr[0], c->dr[1], c->dr[2], c->dr[3],
		c->dr6, c->dr7);

	fprintf(out, "msrs: %u\n", c->msr_count);
	for (uint32_t i = 0; i < c->msr_count && i < CKPT_MAX_MSRS; i++) {
		const char *name = msr_name(c->msrs[i].index);

		fprintf(out, "  %-20s (0x%08x) 0x%016" PRIx64 "\n", name ? name : "?",
			c->msrs[i].index, c->msrs[i].value);
	}

	fprintf(out, "fcw 0x%04x [RC=%u PC=%u mask 0x%02x]  fsw 0x%04x", c->fcw,
		(c->fcw >> 10) & 3, (c->fcw >> 8) & 3, c->fcw & 0x3f, c->fsw);
	print_bits(out, c->fsw, fsw_bits, sizeof(fsw_bits) / sizeof(fsw_bits[0]));
	fprintf(out, " top=%u  ftw 0x%02x  fop 0x%03x\n", (c->fsw >> 11) & 7, c->ftw, c->fop);
	fprintf(out, "fip 0x%016" PRIx64 "  fdp 0x%016" PRIx64 "\n", c->fip, c->fdp);
	fprintf(out, "mxcsr 0x%08x [RC=%u%s%s mask 0x%02x flags 0x%02x]\n", c->mxcsr,
		(c->mxcsr >> 13) & 3, c->mxcsr & (1u << 15) ? " FZ" : "",
		c->mxcsr & (1u << 6) ? " DAZ" : "", (c->mxcsr >> 7) & 0x3f, c->mxcsr & 0x3f);
	for (int i = 0; i < 8; i++) {
		if (all_zero(c->st[i], 16))
			continue;
		fprintf(out, "st%d   ", i);
		print_reg128(out, c->st[i]);
		fputc('\n', out);
	}
	for (int i = 0; i < 16; i++) {
		if (all_zero(c->xmm[i], 16))
			continue;
		fprintf(out, "xmm%-2d ", i);
		print_reg128(out, c->xmm[i]);
		fputc('\n', out);
	}
	print_events(out, c);
}
