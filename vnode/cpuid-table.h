/* Internal view of the CPUID table, for the vCPU setup and its tests. */
#ifndef SIMUBOOST_VNODE_CPUID_TABLE_H
#define SIMUBOOST_VNODE_CPUID_TABLE_H

#include <stddef.h>
#include <stdint.h>

struct cpuid_leaf {
	uint32_t function, eax, ebx, ecx, edx;
};

extern const struct cpuid_leaf vnode_cpuid_table[];
extern const size_t vnode_cpuid_table_len;

const struct cpuid_leaf *vnode_cpuid__find(uint32_t function);
/* QEMU's name of a feature bit (reg 2 = ecx, 3 = edx), or NULL. */
const char *vnode_cpuid__feature_name(uint32_t function, int reg, int bit);

#endif
