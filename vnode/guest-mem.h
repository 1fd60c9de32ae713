/* Guest physical memory: one anonymous mapping that later work can
 * write-protect with userfaultfd, split into KVM slots around the PCI hole. */
#ifndef SIMUBOOST_VNODE_GUEST_MEM_H
#define SIMUBOOST_VNODE_GUEST_MEM_H

#include <stddef.h>
#include <stdint.h>

#define GUEST_PAGE_SIZE 4096ULL
/* Guest RAM above this address is relocated to 4 GiB, leaving a hole for
 * MMIO like a PC chipset does. */
#define GUEST_LOW_MEM_END 0xC0000000ULL
#define GUEST_HIGH_MEM_START 0x100000000ULL

struct guest_mem {
	uint8_t *host;      /* one contiguous mapping of `size` bytes */
	uint64_t size;      /* total guest RAM */
	uint64_t low_size;  /* RAM mapped at [0, low_size) */
	uint64_t high_size; /* RAM mapped at [4 GiB, 4 GiB + high_size) */
};

/* Host pointer for guest physical range [gpa, gpa+len), or NULL if any part
 * of it is not RAM. */
void *guest_mem__ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* Copies into guest RAM; returns -1 if the range is not RAM. */
int guest_mem__write(const struct guest_mem *mem, uint64_t gpa, const void *src, uint64_t len);

#endif
