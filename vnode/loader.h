/* Guest image loading: ELF with a PVH note (our test guest, a host-extracted
 * Linux vmlinux), plain ELF64, and the Linux x86 boot protocol for bzImage.
 * The loader only writes guest RAM and describes the entry state; the vCPU
 * code turns that into registers. */
#ifndef SIMUBOOST_VNODE_LOADER_H
#define SIMUBOOST_VNODE_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "guest-mem.h"

enum boot_entry_mode {
	/* 32-bit protected mode, paging off, flat segments; ebx = hvm_start_info. */
	BOOT_ENTRY_PVH32,
	/* 64-bit long mode, identity-mapped 0..4 GiB with 2 MiB pages; the loader
	 * already placed the page tables and GDT (cr3, gdt_base below).
	 * rsi = boot_params (Linux 64-bit boot protocol) or 0. */
	BOOT_ENTRY_LONG64,
};

enum boot_format {
	BOOT_FORMAT_AUTO,    /* detect: bzImage -> host-extract + PVH if possible */
	BOOT_FORMAT_PVH,     /* ELF with XEN_ELFNOTE_PHYS32_ENTRY (a bzImage is
	                        decompressed on the host first) */
	BOOT_FORMAT_ELF64,   /* ELF64 entered in long mode at e_entry */
	BOOT_FORMAT_BZIMAGE, /* bzImage, 64-bit boot protocol, decompresses itself */
};

struct boot_entry {
	enum boot_entry_mode mode;
	uint64_t rip;
	uint64_t rbx;      /* PVH32: hvm_start_info address */
	uint64_t rsi;      /* LONG64: boot_params address or 0 */
	uint64_t rsp;      /* 0 if the guest sets its own stack */
	uint64_t cr3;      /* LONG64 only */
	uint64_t gdt_base; /* LONG64 only: GDT with 0x10 = code64, 0x18 = data */
	uint16_t gdt_limit;
	const char *format_name; /* "pvh", "elf64", "bzImage", for the summary */
};

struct boot_request {
	const char *kernel_path;
	const char *initrd_path; /* NULL: none */
	const char *cmdline;     /* "" if none */
	enum boot_format format;
};

/* Loads the kernel (and initrd, command line, e820 map) into guest RAM.
 * On error returns -1 with a one-line message in err naming the file. */
int loader__load(const struct guest_mem *mem, const struct boot_request *req,
		 struct boot_entry *entry, char *err, size_t errlen);

/* The e820 map the loader hands to the guest, for the summary and tests.
 * Returns the number of entries written (at most max). */
struct e820_range {
	uint64_t addr, size;
	uint32_t type; /* 1 = RAM, 2 = reserved */
};
size_t loader__e820(const struct guest_mem *mem, struct e820_range *out, size_t max);

/* Parsers, exposed for unit tests and fuzz targets: they only read `buf`.
 * Each returns 0 on success or -1 with a message in err. */
struct elf_image_info {
	int is_elf64;
	uint64_t entry;
	uint64_t pvh_entry; /* 0 if there is no PVH note */
	uint64_t load_lo, load_hi; /* physical range covered by PT_LOAD */
};
int loader__parse_elf(const uint8_t *buf, size_t len, struct elf_image_info *info,
		      char *err, size_t errlen);
struct bzimage_info {
	uint16_t protocol;       /* e.g. 0x020f */
	uint32_t setup_size;     /* bytes of real-mode setup incl. boot sector */
	uint64_t payload_offset; /* of the compressed payload, from file start */
	uint32_t payload_length;
	uint8_t xloadflags;
	uint32_t kernel_alignment;
	uint64_t pref_address;
	uint32_t init_size;
	uint32_t cmdline_size;
	uint32_t initrd_addr_max;
};
int loader__parse_bzimage(const uint8_t *buf, size_t len, struct bzimage_info *info,
			  char *err, size_t errlen);
/* Decompresses a bzImage payload (gzip, xz, zstd, lz4, bzip2, lzma) on the
 * host with libarchive. Returns a malloc'd vmlinux ELF or NULL with err. */
uint8_t *loader__extract_vmlinux(const uint8_t *bzimage, size_t len, size_t *out_len,
				 char *err, size_t errlen);

#endif
