/* The guest's CPUID, in one place.
 *
 * The table below is exactly what the vnode hands to KVM_SET_CPUID2 and what
 * the guest reads. The simulator must present the same bits under QEMU TCG,
 * so the `-cpu` argument is *decoded from this table* rather than written by
 * hand: vendor, level, family/model/stepping, brand string and every named
 * feature bit. Leaves that QEMU computes on its own (cache descriptors,
 * address sizes) are copied from what QEMU 10.0.2 presents for this model;
 * the CPUID identity test proves that the two sides agree byte for byte.
 *
 * What is hidden, and why (DESIGN.md, "Hide what TCG cannot reproduce"):
 * TSC (host ticks under TCG), APIC/x2APIC/TSC-deadline (the vnode has no
 * LAPIC), CX16 (this KVM's emulator fails on cmpxchg16b), SSE3 and newer,
 * XSAVE, RDRAND/RDSEED/RDPID/PCID (max basic leaf 1 hides leaf 7 entirely),
 * MCE/MCA/MTRR (their MSRs read differently under KVM and TCG), RDTSCP and
 * 1 GiB pages (not offered by this KVM). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpuid-table.h"
#include "vnode.h"

/* Base model: QEMU's "kvm64" (GenuineIntel, family 15, model 6). Intel
 * rather than AMD because KVM and QEMU then agree on out-of-range leaves too:
 * both answer with the highest basic leaf, as Intel documents. */
const struct cpuid_leaf vnode_cpuid_table[] = {
	/* max basic leaf 1, "GenuineIntel" */
	{ 0x00000000, 0x00000001, 0x756e6547, 0x6c65746e, 0x49656e69 },
	/* family 15 model 6 stepping 1; CLFLUSH line 8*8 bytes; edx: fpu de pse
	 * msr pae cx8 sep pge cmov pat pse36 clflush mmx fxsr sse sse2 */
	{ 0x00000001, 0x00000f61, 0x00000800, 0x00000000, 0x078ba96d },
	/* max extended leaf 0x80000008 */
	{ 0x80000000, 0x80000008, 0x756e6547, 0x6c65746e, 0x49656e69 },
	/* ecx: lahf-lm; edx: syscall nx lm */
	{ 0x80000001, 0x00000f61, 0x00000000, 0x00000001, 0x20100800 },
	/* brand string "Common KVM processor" */
	{ 0x80000002, 0x6d6d6f43, 0x4b206e6f, 0x70204d56, 0x65636f72 },
	{ 0x80000003, 0x726f7373, 0x00000000, 0x00000000, 0x00000000 },
	{ 0x80000004, 0x00000000, 0x00000000, 0x00000000, 0x00000000 },
	/* cache and TLB descriptors as QEMU computes them for this model */
	{ 0x80000005, 0x01ff01ff, 0x01ff01ff, 0x40020140, 0x40020140 },
	{ 0x80000006, 0x00000000, 0x42004200, 0x02008140, 0x00808140 },
	{ 0x80000007, 0x00000000, 0x00000000, 0x00000000, 0x00000000 },
	/* 40 physical, 48 virtual address bits */
	{ 0x80000008, 0x00003028, 0x00000000, 0x00000000, 0x00000000 },
};
const size_t vnode_cpuid_table_len = sizeof(vnode_cpuid_table) / sizeof(vnode_cpuid_table[0]);

/* QEMU's names for the feature bits of the registers we decode. A bit with
 * no name here is either reserved or, in 0x80000001 edx, an AMD alias that
 * QEMU copies from leaf 1 by itself. */
struct feature_word {
	uint32_t function;
	int reg; /* 2 = ecx, 3 = edx */
	const char *names[32];
};

static const struct feature_word feature_words[] = {
	{ 0x00000001, 3, {
		"fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce",
		"cx8", "apic", NULL, "sep", "mtrr", "pge", "mca", "cmov",
		"pat", "pse36", "pn", "clflush", NULL, "ds", "acpi", "mmx",
		"fxsr", "sse", "sse2", "ss", "ht", "tm", "ia64", "pbe" } },
	{ 0x00000001, 2, {
		"pni", "pclmulqdq", "dtes64", "monitor", "ds-cpl", "vmx", "smx", "est",
		"tm2", "ssse3", "cid", NULL, "fma", "cx16", "xtpr", "pdcm",
		NULL, "pcid", "dca", "sse4.1", "sse4.2", "x2apic", "movbe", "popcnt",
		"tsc-deadline", "aes", "xsave", NULL, "avx", "f16c", "rdrand", "hypervisor" } },
	{ 0x80000001, 3, {
		NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
		NULL, NULL, NULL, "syscall", NULL, NULL, NULL, NULL,
		NULL, NULL, NULL, NULL, "nx", NULL, "mmxext", NULL,
		NULL, "fxsr-opt", "pdpe1gb", "rdtscp", NULL, "lm", "3dnowext", "3dnow" } },
	{ 0x80000001, 2, {
		"lahf-lm", "cmp-legacy", "svm", "extapic", "cr8legacy", "abm", "sse4a", "misalignsse",
		"3dnowprefetch", "osvw", "ibs", "xop", "skinit", "wdt", NULL, "lwp",
		"fma4", "tce", NULL, "nodeid-msr", NULL, "tbm", "topoext", "perfctr-core",
		"perfctr-nb", NULL, NULL, NULL, NULL, NULL, NULL, NULL } },
};

static const struct cpuid_leaf *find_in(const struct cpuid_leaf *table, size_t n,
				       uint32_t function)
{
	for (size_t i = 0; i < n; i++)
		if (table[i].function == function)
			return &table[i];
	return NULL;
}

const struct cpuid_leaf *vnode_cpuid__find(uint32_t function)
{
	return find_in(vnode_cpuid_table, vnode_cpuid_table_len, function);
}

static uint32_t leaf_reg(const struct cpuid_leaf *l, int reg)
{
	switch (reg) {
	case 0: return l->eax;
	case 1: return l->ebx;
	case 2: return l->ecx;
	default: return l->edx;
	}
}

static void append(char *buf, size_t len, size_t *pos, const char *fmt, const char *s)
{
	int n = snprintf(buf + *pos, len - *pos, fmt, s);
	if (n > 0)
		*pos = (*pos + (size_t)n < len) ? *pos + (size_t)n : len - 1;
}

static void regs_to_string(char *out, const uint32_t *regs, size_t nregs)
{
	memcpy(out, regs, nregs * 4);
	out[nregs * 4] = '\0';
}

void vnode_cpuid__derive_qemu_cpu(const struct cpuid_leaf *table, size_t n, char *buf,
				  size_t len)
{
	const struct cpuid_leaf *l0 = find_in(table, n, 0);
	const struct cpuid_leaf *l1 = find_in(table, n, 1);
	const struct cpuid_leaf *x0 = find_in(table, n, 0x80000000);
	char vendor[13];
	uint32_t vregs[3] = { l0->ebx, l0->edx, l0->ecx };
	regs_to_string(vendor, vregs, 3);
	uint32_t ver = l1->eax;
	unsigned family = (ver >> 8) & 0xf, model = (ver >> 4) & 0xf, stepping = ver & 0xf;
	if (family == 0xf)
		family += (ver >> 20) & 0xff;
	if (family >= 6)
		model += ((ver >> 16) & 0xf) << 4;
	char brand[49];
	uint32_t bregs[12];
	for (int i = 0; i < 3; i++) {
		const struct cpuid_leaf *b = find_in(table, n, 0x80000002 + (uint32_t)i);
		bregs[i * 4 + 0] = b->eax;
		bregs[i * 4 + 1] = b->ebx;
		bregs[i * 4 + 2] = b->ecx;
		bregs[i * 4 + 3] = b->edx;
	}
	regs_to_string(brand, bregs, 12);

	size_t pos = 0;
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "kvm64,vendor=%s,level=%u,xlevel=0x%x,family=%u,model=%u,"
		 "stepping=%u", vendor, l0->eax, x0->eax, family, model, stepping);
	buf[0] = '\0';
	append(buf, len, &pos, "%s", tmp);
	append(buf, len, &pos, ",model-id=%s", brand);
	for (size_t w = 0; w < sizeof(feature_words) / sizeof(feature_words[0]); w++) {
		const struct feature_word *fw = &feature_words[w];
		uint32_t bits = leaf_reg(find_in(table, n, fw->function), fw->reg);
		for (int b = 0; b < 32; b++) {
			if (!fw->names[b])
				continue;
			append(buf, len, &pos, (bits >> b) & 1 ? ",+%s" : ",-%s", fw->names[b]);
		}
	}
}

const char *vnode_cpuid__qemu_cpu(void)
{
	static char buf[2048];
	if (!buf[0])
		vnode_cpuid__derive_qemu_cpu(vnode_cpuid_table, vnode_cpuid_table_len, buf,
					     sizeof(buf));
	return buf;
}

void vnode_cpuid__print_table(const struct cpuid_leaf *table, size_t n, FILE *out)
{
	for (size_t i = 0; i < n; i++) {
		const struct cpuid_leaf *l = &table[i];
		fprintf(out, "cpuid %08x: %08x %08x %08x %08x\n", l->function, l->eax, l->ebx,
			l->ecx, l->edx);
	}
}

void vnode_cpuid__print(FILE *out)
{
	vnode_cpuid__print_table(vnode_cpuid_table, vnode_cpuid_table_len, out);
}

const char *vnode_cpuid__feature_name(uint32_t function, int reg, int bit)
{
	for (size_t w = 0; w < sizeof(feature_words) / sizeof(feature_words[0]); w++)
		if (feature_words[w].function == function && feature_words[w].reg == reg)
			return feature_words[w].names[bit];
	return NULL;
}
