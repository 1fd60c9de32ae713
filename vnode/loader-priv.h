/* Shared between loader.c (dispatch, low-memory boot data, page tables),
 * loader-elf.c (ELF, PVH) and loader-linux.c (bzImage): nothing outside the
 * loader includes this; the rest of vnode sees loader.h only. */
#ifndef SIMUBOOST_VNODE_LOADER_PRIV_H
#define SIMUBOOST_VNODE_LOADER_PRIV_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "loader.h"

/* Low-memory map: see the table at the top of loader.c. */
#define LOADER_GDT_ADDR        0x5000ULL
#define LOADER_START_INFO_ADDR 0x6000ULL
#define LOADER_MODLIST_ADDR    0x6040ULL
#define LOADER_MEMMAP_ADDR     0x6080ULL
#define LOADER_BOOT_PARAMS     0x7000ULL
#define LOADER_CMDLINE_ADDR    0x8000ULL
#define LOADER_CMDLINE_MAX     4096ULL /* bytes including the NUL */
#define LOADER_PML4_ADDR       0x9000ULL
#define LOADER_PDPT_ADDR       0xA000ULL
#define LOADER_PD_ADDR         0xB000ULL /* four PDs, 0xB000..0xEFFF */
#define LOADER_LOW_START       LOADER_GDT_ADDR
#define LOADER_LOW_END         0xF000ULL

#define LOADER_MEMMAP_MAX      16 /* fits between 0x6080 and 0x7000 */
#define LOADER_EBDA_START      0x9FC00ULL
#define LOADER_HIGH_MEM_BASE   0x100000ULL /* 1 MiB */
/* Linux's default initrd ceiling for bootloaders that do not read
 * initrd_addr_max (boot.rst): keep the initrd below 896 MiB. */
#define LOADER_INITRD_CEILING  0x38000000ULL

#define E820_RAM      1
#define E820_RESERVED 2

/* A file read into memory with the name used in every message. */
struct loader_blob {
	const char *what; /* "kernel", "initrd" */
	const char *path;
	uint8_t *data;
	size_t len;
};

/* What the format-specific code needs to finish the boot. */
struct loader_ctx {
	const struct guest_mem *mem;
	const struct loader_blob *kernel;
	const struct loader_blob *initrd; /* NULL if none */
	const char *cmdline;              /* never NULL */
	/* The kernel's own cmdline limit (bzImage cmdline_size + 1), or 0. */
	uint64_t cmdline_limit;
	char *err;
	size_t errlen;
};

int loader__errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "256 MiB", "4 KiB", "3 bytes": sizes in messages. */
const char *loader__fmt_size(uint64_t bytes, char *buf, size_t buflen);

/* Physical byte ranges: [lo, hi) with hi > lo. */
int loader__ranges_overlap(uint64_t alo, uint64_t ahi, uint64_t blo, uint64_t bhi);

/* Writes the command line at LOADER_CMDLINE_ADDR after checking it against
 * `limit` (bytes including the NUL). */
int loader__put_cmdline(const struct loader_ctx *ctx, uint64_t limit);
/* Places the initrd page-aligned at the top of low RAM below `ceiling` and
 * above `kernel_end`. Sets *addr = 0 when there is no initrd. */
int loader__put_initrd(const struct loader_ctx *ctx, uint64_t kernel_end, uint64_t ceiling,
		       uint64_t *addr);
/* Identity page tables for 0..4 GiB and the boot GDT; fills cr3/gdt. */
int loader__put_long_mode(const struct loader_ctx *ctx, struct boot_entry *entry);

/* loader-elf.c */
int loader_elf__load_segments(const struct loader_ctx *ctx, const uint8_t *buf, size_t len,
			      const char *image_name);
int loader_elf__boot_pvh(const struct loader_ctx *ctx, const uint8_t *elf, size_t elf_len,
			 const char *image_name, struct boot_entry *entry);
int loader_elf__boot_elf64(const struct loader_ctx *ctx, struct boot_entry *entry);

/* loader-linux.c */
int loader_linux__is_bzimage(const uint8_t *buf, size_t len);
int loader_linux__boot_bzimage(const struct loader_ctx *ctx, struct boot_entry *entry);

/* Little-endian field access for the image formats (ELF, boot protocol),
 * independent of host byte order and alignment. */
static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static inline void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void wr32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

#endif
