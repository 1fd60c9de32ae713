/* Internal view of the CPUID table, for the vCPU setup and its tests. */
#ifndef SIMUBOOST_VNODE_CPUID_TABLE_H
#define SIMUBOOST_VNODE_CPUID_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct cpuid_leaf {
	uint32_t function, eax, ebx, ecx, edx;
};

extern const struct cpuid_leaf vnode_cpuid_table[];
extern const size_t vnode_cpuid_table_len;

const struct cpuid_leaf *vnode_cpuid__find(uint32_t function);
/* QEMU's name of a feature bit (reg 2 = ecx, 3 = edx), or NULL. */
const char *vnode_cpuid__feature_name(uint32_t function, int reg, int bit);

void vnode_cpuid__print_table(const struct cpuid_leaf *table, size_t n, FILE *out);
void vnode_cpuid__derive_qemu_cpu(const struct cpuid_leaf *table, size_t n, char *buf,
				  size_t len);

#endif
