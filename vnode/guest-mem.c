#include <string.h>

#include "guest-mem.h"

void *guest_mem__ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	if (len > mem->size)
		return NULL;
	if (gpa < mem->low_size) {
		if (len > mem->low_size - gpa)
			return NULL;
		return mem->host + gpa;
	}
	if (gpa >= GUEST_HIGH_MEM_START && gpa - GUEST_HIGH_MEM_START < mem->high_size) {
		uint64_t off = gpa - GUEST_HIGH_MEM_START;
		if (len > mem->high_size - off)
			return NULL;
		return mem->host + mem->low_size + off;
	}
	return NULL;
}

int guest_mem__write(const struct guest_mem *mem, uint64_t gpa, const void *src, uint64_t len)
{
	void *dst = guest_mem__ptr(mem, gpa, len);
	if (!dst)
		return -1;
	memcpy(dst, src, len);
	return 0;
}
