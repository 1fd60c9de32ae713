/* ELF images: the PVH boot protocol (entry from the Xen PHYS32_ENTRY note,
 * hvm_start_info in ebx) and plain ELF64 entered in long mode. The file is
 * hostile input: every offset and size is checked against the buffer before
 * it is used, and all arithmetic is done so that it cannot wrap. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "loader-priv.h"

#define EM_386    3
#define EM_X86_64 62
#define ET_EXEC   2
#define ET_DYN    3
#define PT_LOAD   1
#define PT_NOTE   4
#define SHT_NOTE  7

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC          0x336ec578U

/* Real kernels have a handful; the cap bounds the pairwise overlap check. */
#define ELF_MAX_PHDRS 256
#define ELF_MAX_SHDRS 4096

struct elf_hdr {
	int is64;
	uint64_t entry, phoff, shoff;
	uint16_t phentsize, phnum, shentsize, shnum;
};

struct elf_phdr {
	uint32_t type;
	uint64_t offset, paddr, filesz, memsz, align;
};

/* [off, off + count * entsize) inside a buffer of len bytes, without wrap. */
static int table_fits(uint64_t off, uint64_t count, uint64_t entsize, uint64_t len)
{
	if (off > len)
		return 0;
	if (count && entsize > (len - off) / count)
		return 0;
	return 1;
}

static int elf_read_header(const uint8_t *buf, size_t len, struct elf_hdr *h, char *err,
			   size_t errlen)
{
	uint16_t type, machine;

	if (len < 16 || memcmp(buf, "\x7f" "ELF", 4))
		return loader__errf(err, errlen, "not an ELF file (no \\x7fELF magic)");
	if (buf[4] != 1 && buf[4] != 2)
		return loader__errf(err, errlen, "ELF: unknown class %u", buf[4]);
	if (buf[5] != 1)
		return loader__errf(err, errlen, "ELF: not little-endian (EI_DATA %u)", buf[5]);
	if (buf[6] != 1)
		return loader__errf(err, errlen, "ELF: unknown version %u", buf[6]);
	h->is64 = buf[4] == 2;
	if (len < (h->is64 ? 64u : 52u))
		return loader__errf(err, errlen, "ELF: file too short for the ELF header (%zu bytes)",
				    len);
	type = rd16(buf + 16);
	machine = rd16(buf + 18);
	if (type != ET_EXEC && type != ET_DYN)
		return loader__errf(err, errlen, "ELF: e_type %u is not an executable", type);
	if (machine != EM_386 && machine != EM_X86_64)
		return loader__errf(err, errlen, "ELF: e_machine %u is not x86 or x86-64", machine);
	if (h->is64) {
		h->entry = rd64(buf + 24);
		h->phoff = rd64(buf + 32);
		h->shoff = rd64(buf + 40);
		h->phentsize = rd16(buf + 54);
		h->phnum = rd16(buf + 56);
		h->shentsize = rd16(buf + 58);
		h->shnum = rd16(buf + 60);
	} else {
		h->entry = rd32(buf + 24);
		h->phoff = rd32(buf + 28);
		h->shoff = rd32(buf + 32);
		h->phentsize = rd16(buf + 42);
		h->phnum = rd16(buf + 44);
		h->shentsize = rd16(buf + 46);
		h->shnum = rd16(buf + 48);
	}
	if (h->phnum == 0)
		return loader__errf(err, errlen, "ELF: no program headers");
	if (h->phnum > ELF_MAX_PHDRS)
		return loader__errf(err, errlen, "ELF: %u program headers (limit %u)", h->phnum,
				    ELF_MAX_PHDRS);
	if (h->phentsize < (h->is64 ? 56u : 32u))
		return loader__errf(err, errlen, "ELF: e_phentsize %u is too small", h->phentsize);
	if (!table_fits(h->phoff, h->phnum, h->phentsize, len))
		return loader__errf(err, errlen,
				    "ELF: program header table at 0x%" PRIx64 " (%u x %u bytes) runs "
				    "beyond the end of the file (%zu bytes)",
				    h->phoff, h->phnum, h->phentsize, len);
	return 0;
}

static void elf_read_phdr(const uint8_t *buf, const struct elf_hdr *h, unsigned i,
			  struct elf_phdr *p)
{
	const uint8_t *q = buf + h->phoff + (uint64_t)i * h->phentsize;

	p->type = rd32(q);
	if (h->is64) {
		p->offset = rd64(q + 8);
		p->paddr = rd64(q + 24);
		p->filesz = rd64(q + 32);
		p->memsz = rd64(q + 40);
		p->align = rd64(q + 48);
	} else {
		p->offset = rd32(q + 4);
		p->paddr = rd32(q + 12);
		p->filesz = rd32(q + 16);
		p->memsz = rd32(q + 20);
		p->align = rd32(q + 28);
	}
}

/* Walks the notes in [p, p + size); `where` names the container in messages.
 * Notes are 4-byte aligned unless the container asks for 8 (GNU property
 * notes in ELF64 do); Linux's ELFNOTE() uses 4 even in ELF64. */
static int elf_scan_notes(const uint8_t *p, uint64_t size, uint64_t align, const char *where,
			  uint64_t *pvh_entry, char *err, size_t errlen)
{
	uint64_t a = align == 8 ? 8 : 4, off = 0;

	while (size - off >= 12) {
		uint32_t namesz = rd32(p + off), descsz = rd32(p + off + 4), type = rd32(p + off + 8);
		uint64_t name_off = off + 12;
		uint64_t name_pad = ((uint64_t)namesz + a - 1) & ~(a - 1);
		uint64_t desc_off, desc_pad;

		if (name_pad > size - name_off)
			return loader__errf(err, errlen, "ELF: %s: note name at +0x%" PRIx64
					    " (%u bytes) runs past its end", where, name_off, namesz);
		desc_off = name_off + name_pad;
		desc_pad = ((uint64_t)descsz + a - 1) & ~(a - 1);
		if (descsz > size - desc_off)
			return loader__errf(err, errlen, "ELF: %s: note descriptor at +0x%" PRIx64
					    " (%u bytes) runs past its end", where, desc_off, descsz);
		if (namesz == 4 && !memcmp(p + name_off, "Xen", 4) &&
		    type == XEN_ELFNOTE_PHYS32_ENTRY) {
			uint64_t e;

			/* Linux emits _ASM_PTR: 8 bytes in a 64-bit build. */
			if (descsz == 4)
				e = rd32(p + desc_off);
			else if (descsz == 8)
				e = rd64(p + desc_off);
			else
				return loader__errf(err, errlen, "ELF: %s: Xen PHYS32_ENTRY note has a "
						    "%u-byte descriptor (expected 4 or 8)", where, descsz);
			if (e == 0 || e > 0xffffffffULL)
				return loader__errf(err, errlen, "ELF: %s: PVH entry 0x%" PRIx64
						    " is not a 32-bit physical address", where, e);
			*pvh_entry = e;
			return 0;
		}
		/* The last note's padding may be cut off by the container size. */
		if (desc_pad >= size - desc_off)
			break;
		off = desc_off + desc_pad;
	}
	return 0;
}

static int elf_find_pvh(const uint8_t *buf, size_t len, const struct elf_hdr *h,
			uint64_t *pvh_entry, char *err, size_t errlen)
{
	char where[48];

	*pvh_entry = 0;
	for (unsigned i = 0; i < h->phnum && !*pvh_entry; i++) {
		struct elf_phdr p;

		elf_read_phdr(buf, h, i, &p);
		if (p.type != PT_NOTE)
			continue;
		if (p.offset > len || p.filesz > len - p.offset)
			return loader__errf(err, errlen, "ELF: PT_NOTE segment %u at file offset 0x%"
					    PRIx64 " (+0x%" PRIx64 ") runs beyond the end of the file "
					    "(%zu bytes)", i, p.offset, p.filesz, len);
		snprintf(where, sizeof(where), "PT_NOTE segment %u", i);
		if (elf_scan_notes(buf + p.offset, p.filesz, p.align, where, pvh_entry, err, errlen))
			return -1;
	}
	if (*pvh_entry || h->shnum == 0 || h->shoff == 0)
		return 0;

	/* No note segment carried it: some linkers only keep the section. */
	if (h->shnum > ELF_MAX_SHDRS)
		return loader__errf(err, errlen, "ELF: %u section headers (limit %u)", h->shnum,
				    ELF_MAX_SHDRS);
	if (h->shentsize < (h->is64 ? 64u : 40u) ||
	    !table_fits(h->shoff, h->shnum, h->shentsize, len))
		return loader__errf(err, errlen, "ELF: section header table at 0x%" PRIx64
				    " (%u x %u bytes) runs beyond the end of the file (%zu bytes)",
				    h->shoff, h->shnum, h->shentsize, len);
	for (unsigned i = 0; i < h->shnum && !*pvh_entry; i++) {
		const uint8_t *s = buf + h->shoff + (uint64_t)i * h->shentsize;
		uint64_t off, size, align;

		if (rd32(s + 4) != SHT_NOTE)
			continue;
		off = h->is64 ? rd64(s + 0x18) : rd32(s + 0x10);
		size = h->is64 ? rd64(s + 0x20) : rd32(s + 0x14);
		align = h->is64 ? rd64(s + 0x30) : rd32(s + 0x20);
		if (off > len || size > len - off)
			return loader__errf(err, errlen, "ELF: note section %u at file offset 0x%" PRIx64
					    " (+0x%" PRIx64 ") runs beyond the end of the file "
					    "(%zu bytes)", i, off, size, len);
		snprintf(where, sizeof(where), "note section %u", i);
		if (elf_scan_notes(buf + off, size, align, where, pvh_entry, err, errlen))
			return -1;
	}
	return 0;
}

int loader__parse_elf(const uint8_t *buf, size_t len, struct elf_image_info *info,
		      char *err, size_t errlen)
{
	struct elf_hdr h;
	uint64_t lo = UINT64_MAX, hi = 0;
	unsigned nload = 0;

	memset(info, 0, sizeof(*info));
	if (elf_read_header(buf, len, &h, err, errlen))
		return -1;
	for (unsigned i = 0; i < h.phnum; i++) {
		struct elf_phdr p;

		elf_read_phdr(buf, &h, i, &p);
		if (p.type != PT_LOAD || p.memsz == 0)
			continue;
		if (p.filesz > p.memsz)
			return loader__errf(err, errlen, "ELF: PT_LOAD segment %u has p_filesz 0x%" PRIx64
					    " > p_memsz 0x%" PRIx64, i, p.filesz, p.memsz);
		if (p.offset > len || p.filesz > len - p.offset)
			return loader__errf(err, errlen, "ELF: PT_LOAD segment %u at file offset 0x%"
					    PRIx64 " (+0x%" PRIx64 ") runs beyond the end of the file "
					    "(%zu bytes)", i, p.offset, p.filesz, len);
		if (p.memsz > UINT64_MAX - p.paddr)
			return loader__errf(err, errlen, "ELF: PT_LOAD segment %u at 0x%" PRIx64
					    " (+0x%" PRIx64 ") wraps around the address space",
					    i, p.paddr, p.memsz);
		/* Overlapping segments would make the load order matter: a later
		 * segment's zero fill could wipe an earlier one's code. */
		for (unsigned j = 0; j < i; j++) {
			struct elf_phdr q;

			elf_read_phdr(buf, &h, j, &q);
			if (q.type != PT_LOAD || q.memsz == 0)
				continue;
			if (loader__ranges_overlap(p.paddr, p.paddr + p.memsz, q.paddr,
						   q.paddr + q.memsz))
				return loader__errf(err, errlen, "ELF: PT_LOAD segments %u and %u "
						    "overlap at physical 0x%" PRIx64, j, i,
						    p.paddr > q.paddr ? p.paddr : q.paddr);
		}
		if (p.paddr < lo)
			lo = p.paddr;
		if (p.paddr + p.memsz > hi)
			hi = p.paddr + p.memsz;
		nload++;
	}
	if (!nload)
		return loader__errf(err, errlen, "ELF: no PT_LOAD segment with memory");
	if (elf_find_pvh(buf, len, &h, &info->pvh_entry, err, errlen))
		return -1;
	info->is_elf64 = h.is64;
	info->entry = h.entry;
	info->load_lo = lo;
	info->load_hi = hi;
	return 0;
}

/* The physical address lies inside the memory of some PT_LOAD segment. */
static int elf_addr_loaded(const uint8_t *buf, size_t len, uint64_t addr)
{
	struct elf_hdr h;

	if (elf_read_header(buf, len, &h, NULL, 0))
		return 0;
	for (unsigned i = 0; i < h.phnum; i++) {
		struct elf_phdr p;

		elf_read_phdr(buf, &h, i, &p);
		if (p.type == PT_LOAD && addr >= p.paddr && addr - p.paddr < p.memsz)
			return 1;
	}
	return 0;
}

int loader_elf__load_segments(const struct loader_ctx *ctx, const uint8_t *buf, size_t len,
			      const char *image_name)
{
	struct elf_image_info info;
	struct elf_hdr h;
	char xerr[256], s1[32], s2[32];

	/* Re-validate: callers may hand us any buffer. */
	if (loader__parse_elf(buf, len, &info, xerr, sizeof(xerr)) ||
	    elf_read_header(buf, len, &h, xerr, sizeof(xerr)))
		return loader__errf(ctx->err, ctx->errlen, "%s: %s", image_name, xerr);
	for (unsigned i = 0; i < h.phnum; i++) {
		struct elf_phdr p;
		uint8_t *dst;

		elf_read_phdr(buf, &h, i, &p);
		if (p.type != PT_LOAD || p.memsz == 0)
			continue;
		if (loader__ranges_overlap(p.paddr, p.paddr + p.memsz, LOADER_LOW_START,
					   LOADER_LOW_END))
			return loader__errf(ctx->err, ctx->errlen,
					    "%s: PT_LOAD segment %u at 0x%" PRIx64 "-0x%" PRIx64
					    " overlaps the loader's boot data at 0x%llx-0x%llx",
					    image_name, i, p.paddr, p.paddr + p.memsz - 1,
					    LOADER_LOW_START, LOADER_LOW_END - 1);
		dst = guest_mem__ptr(ctx->mem, p.paddr, p.memsz);
		if (!dst)
			return loader__errf(ctx->err, ctx->errlen,
					    "%s: PT_LOAD segment %u at 0x%" PRIx64 " (%s) lies beyond "
					    "guest RAM (%s%s)", image_name, i, p.paddr,
					    loader__fmt_size(p.memsz, s1, sizeof(s1)),
					    loader__fmt_size(ctx->mem->size, s2, sizeof(s2)),
					    ctx->mem->high_size ? ", with a hole below 4 GiB" : "");
		memcpy(dst, buf + p.offset, p.filesz);
		/* The bss: guest RAM may be reused, so never assume zeros. */
		memset(dst + p.filesz, 0, p.memsz - p.filesz);
	}
	return 0;
}

int loader_elf__boot_pvh(const struct loader_ctx *ctx, const uint8_t *elf, size_t elf_len,
			 const char *image_name, struct boot_entry *entry)
{
	struct e820_range map[LOADER_MEMMAP_MAX];
	struct elf_image_info info;
	uint8_t si[56], mod[32], mm[LOADER_MEMMAP_MAX * 24];
	uint64_t limit = LOADER_CMDLINE_MAX, initrd_addr;
	char xerr[256];
	size_t n;

	if (loader__parse_elf(elf, elf_len, &info, xerr, sizeof(xerr)))
		return loader__errf(ctx->err, ctx->errlen, "%s: %s", image_name, xerr);
	if (!info.pvh_entry)
		return loader__errf(ctx->err, ctx->errlen, "%s: no PVH entry note", image_name);
	if (!elf_addr_loaded(elf, elf_len, info.pvh_entry))
		return loader__errf(ctx->err, ctx->errlen, "%s: PVH entry 0x%" PRIx64 " is outside "
				    "every PT_LOAD segment", image_name, info.pvh_entry);
	if (loader_elf__load_segments(ctx, elf, elf_len, image_name))
		return -1;
	if (ctx->cmdline_limit && ctx->cmdline_limit < limit)
		limit = ctx->cmdline_limit;
	if (loader__put_cmdline(ctx, limit))
		return -1;
	if (loader__put_initrd(ctx, info.load_hi, LOADER_INITRD_CEILING, &initrd_addr))
		return -1;

	n = loader__e820(ctx->mem, map, LOADER_MEMMAP_MAX);
	memset(mm, 0, sizeof(mm));
	for (size_t i = 0; i < n; i++) {
		wr64(mm + i * 24, map[i].addr);
		wr64(mm + i * 24 + 8, map[i].size);
		wr32(mm + i * 24 + 16, map[i].type);
	}
	memset(mod, 0, sizeof(mod));
	if (ctx->initrd) {
		wr64(mod, initrd_addr);
		wr64(mod + 8, ctx->initrd->len);
	}
	/* struct hvm_start_info, version 1 (xen/include/public/arch-x86/hvm/start_info.h) */
	memset(si, 0, sizeof(si));
	wr32(si + 0, HVM_START_MAGIC);
	wr32(si + 4, 1);
	wr32(si + 12, ctx->initrd ? 1 : 0);
	wr64(si + 16, ctx->initrd ? LOADER_MODLIST_ADDR : 0);
	wr64(si + 24, LOADER_CMDLINE_ADDR);
	wr64(si + 32, 0); /* no ACPI: Linux falls back to its legacy PIC/PIT probing */
	wr64(si + 40, LOADER_MEMMAP_ADDR);
	wr32(si + 48, (uint32_t)n);
	if (guest_mem__write(ctx->mem, LOADER_START_INFO_ADDR, si, sizeof(si)) ||
	    guest_mem__write(ctx->mem, LOADER_MODLIST_ADDR, mod, sizeof(mod)) ||
	    guest_mem__write(ctx->mem, LOADER_MEMMAP_ADDR, mm, n * 24))
		return loader__errf(ctx->err, ctx->errlen, "%s: cannot write hvm_start_info", image_name);

	entry->mode = BOOT_ENTRY_PVH32;
	entry->rip = info.pvh_entry;
	entry->rbx = LOADER_START_INFO_ADDR;
	entry->format_name = "pvh";
	return 0;
}

int loader_elf__boot_elf64(const struct loader_ctx *ctx, struct boot_entry *entry)
{
	const struct loader_blob *k = ctx->kernel;
	struct elf_image_info info;
	char xerr[256], name[600];

	snprintf(name, sizeof(name), "kernel '%s'", k->path);
	if (loader__parse_elf(k->data, k->len, &info, xerr, sizeof(xerr)))
		return loader__errf(ctx->err, ctx->errlen, "%s: %s", name, xerr);
	if (!info.is_elf64)
		return loader__errf(ctx->err, ctx->errlen, "%s: boot = elf64 needs an ELF64 image",
				    name);
	/* Plain ELF64 has no protocol to pass these; silently dropping them
	 * would make a misconfigured VM look fine. */
	if (ctx->initrd)
		return loader__errf(ctx->err, ctx->errlen, "%s: an ELF64 image without a PVH note "
				    "cannot receive initrd '%s'", name, ctx->initrd->path);
	if (ctx->cmdline[0])
		return loader__errf(ctx->err, ctx->errlen, "%s: an ELF64 image without a PVH note "
				    "cannot receive a command line", name);
	/* We jump to e_entry with identity paging, so it must be a loaded
	 * physical address below 4 GiB (a Linux vmlinux's is virtual). */
	if (info.entry >= 0x100000000ULL || !elf_addr_loaded(k->data, k->len, info.entry))
		return loader__errf(ctx->err, ctx->errlen, "%s: e_entry 0x%" PRIx64 " is not inside "
				    "a PT_LOAD segment's physical range below 4 GiB", name, info.entry);
	if (loader_elf__load_segments(ctx, k->data, k->len, name))
		return -1;
	if (loader__put_long_mode(ctx, entry))
		return -1;
	entry->rip = info.entry;
	entry->rsi = 0;
	entry->format_name = "elf64";
	return 0;
}
