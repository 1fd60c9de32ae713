/* Guest image loader: reads the kernel and initrd, picks the boot protocol
 * and writes everything the guest needs into guest RAM before the first
 * KVM_RUN. The vCPU code turns struct boot_entry into registers.
 *
 * Low-memory map (guest physical), shared by all boot formats:
 *
 *   0x00000 - 0x04fff  untouched (real-mode IVT, BDA; nothing of ours)
 *   0x05000 - 0x0501f  GDT: null, null, 0x10 code64, 0x18 data   (LONG64)
 *   0x06000 - 0x06037  struct hvm_start_info                     (PVH)
 *   0x06040 - 0x0605f  hvm_modlist_entry for the initrd          (PVH)
 *   0x06080 - 0x06fff  hvm_memmap_table_entry[] (<= 16 entries)  (PVH)
 *   0x07000 - 0x07fff  boot_params "zero page"                   (bzImage)
 *   0x08000 - 0x08fff  kernel command line, NUL-terminated       (all)
 *   0x09000 - 0x09fff  PML4                                      (LONG64)
 *   0x0a000 - 0x0afff  PDPT                                      (LONG64)
 *   0x0b000 - 0x0efff  4 page directories, 2 MiB pages, 0..4 GiB (LONG64)
 *   0x9fc00 - 0xfffff  reserved in e820 (EBDA, VGA, BIOS ROM area)
 *   0x100000 -         kernel (bzImage at 1 MiB aligned to kernel_alignment,
 *                      ELF segments at their p_paddr)
 *   top of low RAM     initrd, page-aligned, below min(low RAM, 896 MiB)
 *
 * Everything of ours sits inside [0x5000, 0xf000), so one overlap check
 * keeps an ELF from loading over its own boot data. The area is e820 RAM:
 * Linux copies boot_params and the command line before it reuses it, like
 * with QEMU's and kvmtool's loaders. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader-priv.h"

/* Larger than any kernel or initrd we boot, small enough that a wrong path
 * (a disk image) fails fast instead of eating host memory. */
#define LOADER_FILE_MAX (1ULL << 30)

int loader__errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

const char *loader__fmt_size(uint64_t bytes, char *buf, size_t buflen)
{
	static const char *const units[] = { "bytes", "KiB", "MiB", "GiB", "TiB" };
	unsigned u = 0;

	/* Exact units only, so that "256 MiB" never hides a stray byte. */
	while (u + 1 < sizeof(units) / sizeof(units[0]) && bytes >= 1024 && bytes % 1024 == 0) {
		bytes /= 1024;
		u++;
	}
	snprintf(buf, buflen, "%" PRIu64 " %s", bytes, units[u]);
	return buf;
}

int loader__ranges_overlap(uint64_t alo, uint64_t ahi, uint64_t blo, uint64_t bhi)
{
	return alo < bhi && blo < ahi;
}

static void add_range(struct e820_range *out, size_t max, size_t *n, uint64_t addr,
		      uint64_t size, uint32_t type)
{
	if (size == 0 || *n >= max)
		return;
	out[*n].addr = addr;
	out[*n].size = size;
	out[*n].type = type;
	(*n)++;
}

size_t loader__e820(const struct guest_mem *mem, struct e820_range *out, size_t max)
{
	size_t n = 0;
	uint64_t low = mem->low_size;

	/* A PC: conventional memory up to the EBDA, the legacy hole reserved so
	 * that Linux never allocates from BIOS/VGA space, then extended memory. */
	add_range(out, max, &n, 0, low < LOADER_EBDA_START ? low : LOADER_EBDA_START, E820_RAM);
	if (low > LOADER_EBDA_START)
		add_range(out, max, &n, LOADER_EBDA_START, LOADER_HIGH_MEM_BASE - LOADER_EBDA_START,
			  E820_RESERVED);
	if (low > LOADER_HIGH_MEM_BASE)
		add_range(out, max, &n, LOADER_HIGH_MEM_BASE, low - LOADER_HIGH_MEM_BASE, E820_RAM);
	add_range(out, max, &n, GUEST_HIGH_MEM_START, mem->high_size, E820_RAM);
	return n;
}

int loader__put_cmdline(const struct loader_ctx *ctx, uint64_t limit)
{
	size_t len = strlen(ctx->cmdline);

	if (limit > LOADER_CMDLINE_MAX)
		limit = LOADER_CMDLINE_MAX;
	if ((uint64_t)len + 1 > limit)
		return loader__errf(ctx->err, ctx->errlen,
				    "kernel '%s': command line is %zu bytes, the limit for this "
				    "kernel is %" PRIu64 " bytes",
				    ctx->kernel->path, len, limit - 1);
	if (guest_mem__write(ctx->mem, LOADER_CMDLINE_ADDR, ctx->cmdline, len + 1))
		return loader__errf(ctx->err, ctx->errlen,
				    "kernel '%s': command line at 0x%llx is outside guest RAM",
				    ctx->kernel->path, LOADER_CMDLINE_ADDR);
	return 0;
}

int loader__put_initrd(const struct loader_ctx *ctx, uint64_t kernel_end, uint64_t ceiling,
		       uint64_t *addr)
{
	const struct loader_blob *rd = ctx->initrd;
	char s1[32], s2[32];
	uint64_t floor, top, at;

	*addr = 0;
	if (!rd)
		return 0;
	top = ceiling < ctx->mem->low_size ? ceiling : ctx->mem->low_size;
	/* Above the kernel's memory and never in the legacy area below 1 MiB. */
	floor = kernel_end > LOADER_HIGH_MEM_BASE ? kernel_end : LOADER_HIGH_MEM_BASE;
	floor = (floor + GUEST_PAGE_SIZE - 1) & ~(GUEST_PAGE_SIZE - 1);
	if (rd->len > top || (top - rd->len) < floor ||
	    ((top - rd->len) & ~(GUEST_PAGE_SIZE - 1)) < floor)
		return loader__errf(ctx->err, ctx->errlen,
				    "initrd '%s' (%s) does not fit between the kernel end 0x%" PRIx64
				    " and 0x%" PRIx64 " (%s of low guest RAM); give the guest more memory",
				    rd->path, loader__fmt_size(rd->len, s1, sizeof(s1)), floor, top,
				    loader__fmt_size(ctx->mem->low_size, s2, sizeof(s2)));
	/* Top of low RAM like GRUB and QEMU: leaves the most room for the
	 * kernel to decompress and grow its brk below it. */
	at = (top - rd->len) & ~(GUEST_PAGE_SIZE - 1);
	if (guest_mem__write(ctx->mem, at, rd->data, rd->len))
		return loader__errf(ctx->err, ctx->errlen, "initrd '%s': 0x%" PRIx64 " is not guest RAM",
				    rd->path, at);
	*addr = at;
	return 0;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int loader__put_long_mode(const struct loader_ctx *ctx, struct boot_entry *entry)
{
	static const uint64_t gdt[4] = {
		0, 0,
		0x00af9a000000ffffULL, /* 0x10: code, L=1, DPL0, present */
		0x00cf92000000ffffULL, /* 0x18: data, 4 GiB flat, writable */
	};
	uint8_t *pt = guest_mem__ptr(ctx->mem, LOADER_PML4_ADDR, LOADER_LOW_END - LOADER_PML4_ADDR);
	uint8_t *g = guest_mem__ptr(ctx->mem, LOADER_GDT_ADDR, sizeof(gdt));

	if (!pt || !g)
		return loader__errf(ctx->err, ctx->errlen,
				    "kernel '%s': guest RAM too small for boot page tables",
				    ctx->kernel->path);
	/* Stale entries would map garbage: clear all six pages first. */
	memset(pt, 0, LOADER_LOW_END - LOADER_PML4_ADDR);
	put_le64(pt, LOADER_PDPT_ADDR | 0x3); /* present, writable */
	for (uint64_t i = 0; i < 4; i++) {
		uint64_t pd = LOADER_PD_ADDR + i * 0x1000;

		put_le64(pt + (LOADER_PDPT_ADDR - LOADER_PML4_ADDR) + i * 8, pd | 0x3);
		for (uint64_t j = 0; j < 512; j++)
			/* present, writable, PS: one 2 MiB page, identity */
			put_le64(pt + (pd - LOADER_PML4_ADDR) + j * 8,
				 ((i << 30) | (j << 21)) | 0x83);
	}
	for (int i = 0; i < 4; i++)
		put_le64(g + 8 * i, gdt[i]);
	entry->mode = BOOT_ENTRY_LONG64;
	entry->cr3 = LOADER_PML4_ADDR;
	entry->gdt_base = LOADER_GDT_ADDR;
	entry->gdt_limit = sizeof(gdt) - 1;
	return 0;
}

static int read_blob(struct loader_blob *b, const char *what, const char *path, char *err,
		     size_t errlen)
{
	struct stat st;
	char s1[32], s2[32];
	size_t done = 0;
	int fd;

	memset(b, 0, sizeof(*b));
	b->what = what;
	b->path = path;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return loader__errf(err, errlen, "%s '%s': %s", what, path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return loader__errf(err, errlen, "%s '%s': %s", what, path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return loader__errf(err, errlen, "%s '%s': not a regular file", what, path);
	}
	if (st.st_size <= 0) {
		close(fd);
		return loader__errf(err, errlen, "%s '%s': empty file", what, path);
	}
	if ((uint64_t)st.st_size > LOADER_FILE_MAX) {
		close(fd);
		return loader__errf(err, errlen, "%s '%s': %s is larger than the %s limit", what, path,
				    loader__fmt_size((uint64_t)st.st_size, s1, sizeof(s1)),
				    loader__fmt_size(LOADER_FILE_MAX, s2, sizeof(s2)));
	}
	b->len = (size_t)st.st_size;
	b->data = malloc(b->len);
	if (!b->data) {
		close(fd);
		return loader__errf(err, errlen, "%s '%s': out of memory for %zu bytes", what, path,
				    b->len);
	}
	while (done < b->len) {
		ssize_t n = read(fd, b->data + done, b->len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = errno;
			close(fd);
			free(b->data);
			b->data = NULL;
			if (n == 0)
				return loader__errf(err, errlen, "%s '%s': file shrank while reading (%zu of %zu bytes)",
						    what, path, done, b->len);
			return loader__errf(err, errlen, "%s '%s': %s", what, path, strerror(e));
		}
		done += (size_t)n;
	}
	close(fd);
	return 0;
}

static void describe_magic(const uint8_t *buf, size_t len, char *out, size_t outlen)
{
	size_t n = len < 8 ? len : 8, o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && o + 4 < outlen; i++)
		o += (size_t)snprintf(out + o, outlen - o, "%s%02x", i ? " " : "", buf[i]);
}

/* A bzImage: boot it through PVH from the host-extracted vmlinux when we
 * can (a bzImage decompressing itself takes minutes under an emulated CPL0),
 * else through the 64-bit boot protocol. */
static int boot_from_bzimage(const struct loader_ctx *base, enum boot_format fmt,
			     struct boot_entry *entry)
{
	struct loader_ctx ctx = *base;
	struct bzimage_info bz;
	struct elf_image_info ei;
	char xerr[256], name[600];
	uint8_t *vmlinux;
	size_t vlen = 0;
	int r;

	if (loader__parse_bzimage(ctx.kernel->data, ctx.kernel->len, &bz, xerr, sizeof(xerr)))
		return loader__errf(ctx.err, ctx.errlen, "kernel '%s': %s", ctx.kernel->path, xerr);
	if (fmt == BOOT_FORMAT_BZIMAGE)
		return loader_linux__boot_bzimage(&ctx, entry);

	vmlinux = loader__extract_vmlinux(ctx.kernel->data, ctx.kernel->len, &vlen, xerr,
					  sizeof(xerr));
	if (!vmlinux) {
		if (fmt == BOOT_FORMAT_AUTO)
			return loader_linux__boot_bzimage(&ctx, entry);
		return loader__errf(ctx.err, ctx.errlen,
				    "kernel '%s': cannot extract vmlinux for PVH boot: %s",
				    ctx.kernel->path, xerr);
	}
	if (loader__parse_elf(vmlinux, vlen, &ei, xerr, sizeof(xerr)) || !ei.pvh_entry) {
		free(vmlinux);
		if (fmt == BOOT_FORMAT_AUTO)
			return loader_linux__boot_bzimage(&ctx, entry);
		return loader__errf(ctx.err, ctx.errlen,
				    "kernel '%s': extracted vmlinux has no PVH entry note "
				    "(Xen ELF note type 18; kernel built without CONFIG_PVH?)",
				    ctx.kernel->path);
	}
	/* The kernel truncates longer lines; refuse instead of losing options. */
	ctx.cmdline_limit = (uint64_t)bz.cmdline_size + 1;
	snprintf(name, sizeof(name), "kernel '%s' (vmlinux extracted from bzImage)",
		 ctx.kernel->path);
	r = loader_elf__boot_pvh(&ctx, vmlinux, vlen, name, entry);
	free(vmlinux);
	return r;
}

static int boot_from_elf(const struct loader_ctx *ctx, enum boot_format fmt,
			 struct boot_entry *entry)
{
	struct elf_image_info ei;
	char xerr[256], name[600];

	if (loader__parse_elf(ctx->kernel->data, ctx->kernel->len, &ei, xerr, sizeof(xerr)))
		return loader__errf(ctx->err, ctx->errlen, "kernel '%s': %s", ctx->kernel->path, xerr);
	if (fmt == BOOT_FORMAT_BZIMAGE)
		return loader__errf(ctx->err, ctx->errlen,
				    "kernel '%s': boot = bzImage, but the file is an ELF image",
				    ctx->kernel->path);
	if ((fmt == BOOT_FORMAT_AUTO && ei.pvh_entry) || fmt == BOOT_FORMAT_PVH) {
		if (!ei.pvh_entry)
			return loader__errf(ctx->err, ctx->errlen,
					    "kernel '%s': no PVH entry note (ELF note \"Xen\" type 18, "
					    "XEN_ELFNOTE_PHYS32_ENTRY)", ctx->kernel->path);
		snprintf(name, sizeof(name), "kernel '%s'", ctx->kernel->path);
		return loader_elf__boot_pvh(ctx, ctx->kernel->data, ctx->kernel->len, name, entry);
	}
	if (!ei.is_elf64)
		return loader__errf(ctx->err, ctx->errlen,
				    "kernel '%s': 32-bit ELF without a PVH entry note; only ELF64 "
				    "images can be entered in long mode", ctx->kernel->path);
	return loader_elf__boot_elf64(ctx, entry);
}

int loader__load(const struct guest_mem *mem, const struct boot_request *req,
		 struct boot_entry *entry, char *err, size_t errlen)
{
	struct loader_blob kernel, initrd;
	struct loader_ctx ctx;
	char magic[40], s[32];
	int r;

	memset(entry, 0, sizeof(*entry));
	if (!req->kernel_path || !req->kernel_path[0])
		return loader__errf(err, errlen, "no kernel image given");
	/* Boot data at 0x5000..0xf000 plus a kernel at 1 MiB and up. */
	if (mem->low_size < 2 * LOADER_HIGH_MEM_BASE)
		return loader__errf(err, errlen, "kernel '%s': guest RAM (%s) is too small to boot",
				    req->kernel_path, loader__fmt_size(mem->low_size, s, sizeof(s)));
	if (read_blob(&kernel, "kernel", req->kernel_path, err, errlen))
		return -1;
	if (req->initrd_path && req->initrd_path[0] &&
	    read_blob(&initrd, "initrd", req->initrd_path, err, errlen)) {
		free(kernel.data);
		return -1;
	}
	ctx = (struct loader_ctx){
		.mem = mem,
		.kernel = &kernel,
		.initrd = req->initrd_path && req->initrd_path[0] ? &initrd : NULL,
		.cmdline = req->cmdline ? req->cmdline : "",
		.err = err,
		.errlen = errlen,
	};

	if (loader_linux__is_bzimage(kernel.data, kernel.len)) {
		if (req->format == BOOT_FORMAT_ELF64)
			r = loader__errf(err, errlen,
					 "kernel '%s': boot = elf64, but the file is a bzImage",
					 kernel.path);
		else
			r = boot_from_bzimage(&ctx, req->format, entry);
	} else if (kernel.len >= 4 && !memcmp(kernel.data, "\x7f" "ELF", 4)) {
		r = boot_from_elf(&ctx, req->format, entry);
	} else {
		describe_magic(kernel.data, kernel.len, magic, sizeof(magic));
		r = loader__errf(err, errlen,
				 "kernel '%s': neither an ELF nor a Linux bzImage (first bytes: %s)",
				 kernel.path, magic);
	}
	free(kernel.data);
	if (ctx.initrd)
		free(initrd.data);
	if (r)
		memset(entry, 0, sizeof(*entry));
	return r;
}
