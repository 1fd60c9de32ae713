/* Linux bzImage: setup-header parsing, the 64-bit boot protocol
 * (Documentation/arch/x86/boot.rst, protocol >= 2.12) and host-side
 * extraction of the compressed vmlinux for PVH boot. The image is hostile
 * input: fields are read with explicit bounds checks, never through a
 * struct overlay. */
#include <archive.h>
#include <archive_entry.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader-priv.h"

/* Setup header offsets, from the start of the file (= of boot_params). */
#define BZ_SETUP_SECTS      0x1f1
#define BZ_BOOT_FLAG        0x1fe
#define BZ_JUMP             0x200
#define BZ_HEADER           0x202
#define BZ_VERSION          0x206
#define BZ_TYPE_OF_LOADER   0x210
#define BZ_LOADFLAGS        0x211
#define BZ_CODE32_START     0x214
#define BZ_RAMDISK_IMAGE    0x218
#define BZ_RAMDISK_SIZE     0x21c
#define BZ_HEAP_END_PTR     0x224
#define BZ_CMD_LINE_PTR     0x228
#define BZ_INITRD_ADDR_MAX  0x22c
#define BZ_KERNEL_ALIGNMENT 0x230
#define BZ_RELOCATABLE      0x234
#define BZ_XLOADFLAGS       0x236
#define BZ_CMDLINE_SIZE     0x238
#define BZ_PAYLOAD_OFFSET   0x248
#define BZ_PAYLOAD_LENGTH   0x24c
#define BZ_PREF_ADDRESS     0x258
#define BZ_INIT_SIZE        0x260
#define BZ_HEADER_MIN_LEN   0x264 /* everything above must be readable */
/* boot_params fields outside the setup header */
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE  0x0c4
#define BP_EXT_CMD_LINE_PTR  0x0c8
#define BP_E820_ENTRIES      0x1e8
#define BP_SETUP_HDR_MAX     0x290 /* edd_mbr_sig_buffer follows the header */
#define BP_E820_TABLE        0x2d0
#define BP_E820_MAX          128
#define BP_SIZE              4096

#define LOADED_HIGH   0x01
#define CAN_USE_HEAP  0x80
#define XLF_KERNEL_64 0x01

/* Output cap for extraction: 512 MiB, and at most 32x the compressed size
 * plus 16 MiB. Real kernels decompress to ~5-10x; the ratio cap keeps a
 * small hostile payload (a decompression bomb, or a fuzzer input) from
 * costing hundreds of MiB. */
#define VMLINUX_MAX       (512ULL << 20)
#define VMLINUX_RATIO     32ULL
#define VMLINUX_SLACK     (16ULL << 20)

int loader_linux__is_bzimage(const uint8_t *buf, size_t len)
{
	return len >= BZ_VERSION && rd16(buf + BZ_BOOT_FLAG) == 0xAA55 &&
	       !memcmp(buf + BZ_HEADER, "HdrS", 4);
}

int loader__parse_bzimage(const uint8_t *buf, size_t len, struct bzimage_info *info,
			  char *err, size_t errlen)
{
	uint32_t sects, poff;

	memset(info, 0, sizeof(*info));
	if (len < BZ_VERSION + 2)
		return loader__errf(err, errlen, "bzImage: file too short for a setup header "
				    "(%zu bytes)", len);
	if (memcmp(buf + BZ_HEADER, "HdrS", 4))
		return loader__errf(err, errlen, "bzImage: no \"HdrS\" signature at 0x202");
	if (rd16(buf + BZ_BOOT_FLAG) != 0xAA55)
		return loader__errf(err, errlen, "bzImage: boot_flag at 0x1fe is 0x%04x, not 0xaa55",
				    rd16(buf + BZ_BOOT_FLAG));
	info->protocol = rd16(buf + BZ_VERSION);
	/* 2.12 brought xloadflags, which says whether the 64-bit entry exists;
	 * everything we read below is defined from 2.10 on. */
	if (info->protocol < 0x020c)
		return loader__errf(err, errlen, "bzImage: boot protocol %u.%02u is older than 2.12",
				    info->protocol >> 8, info->protocol & 0xff);
	if (len < BZ_HEADER_MIN_LEN)
		return loader__errf(err, errlen, "bzImage: file too short for a 2.12 setup header "
				    "(%zu bytes)", len);
	sects = buf[BZ_SETUP_SECTS];
	if (sects == 0)
		sects = 4; /* "if this field is 0, the real value is 4" */
	info->setup_size = (sects + 1) * 512;
	if (info->setup_size >= len)
		return loader__errf(err, errlen, "bzImage: setup (%u sectors) covers the whole file "
				    "(%zu bytes); no protected-mode kernel", sects, len);
	info->xloadflags = (uint8_t)rd16(buf + BZ_XLOADFLAGS);
	info->kernel_alignment = rd32(buf + BZ_KERNEL_ALIGNMENT);
	info->pref_address = rd64(buf + BZ_PREF_ADDRESS);
	info->init_size = rd32(buf + BZ_INIT_SIZE);
	info->cmdline_size = rd32(buf + BZ_CMDLINE_SIZE);
	info->initrd_addr_max = rd32(buf + BZ_INITRD_ADDR_MAX);
	/* payload_offset counts from the protected-mode kernel, not the file. */
	poff = rd32(buf + BZ_PAYLOAD_OFFSET);
	info->payload_offset = (uint64_t)info->setup_size + poff;
	info->payload_length = rd32(buf + BZ_PAYLOAD_LENGTH);
	if (info->payload_length == 0)
		return loader__errf(err, errlen, "bzImage: payload_length is 0");
	if (info->payload_offset > len || info->payload_length > len - info->payload_offset)
		return loader__errf(err, errlen, "bzImage: compressed payload at file offset 0x%"
				    PRIx64 " (+0x%x) runs beyond the end of the file (%zu bytes)",
				    info->payload_offset, info->payload_length, len);
	return 0;
}

static void hexbytes(const uint8_t *p, size_t n, char *out, size_t outlen)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && o + 4 < outlen; i++)
		o += (size_t)snprintf(out + o, outlen - o, "%s%02x", i ? " " : "", p[i]);
}

/* One decompression attempt of payload[0, plen) into a malloc'd buffer of
 * at most `cap` bytes. Returns the buffer only if it holds a complete,
 * loadable ELF. */
static uint8_t *decompress_payload(const uint8_t *payload, size_t plen, uint64_t cap,
				   size_t *out_len, char *err, size_t errlen)
{
	struct archive *a;
	struct archive_entry *ae;
	struct elf_image_info ei;
	uint8_t *out = NULL;
	size_t used = 0, alloc = 0;
	char first[32], s[32], xerr[256], aerr[200] = "";
	int failed = 0;

	hexbytes(payload, plen < 6 ? plen : 6, first, sizeof(first));
	a = archive_read_new();
	if (!a) {
		loader__errf(err, errlen, "out of memory");
		return NULL;
	}
	/* The compressors Linux offers for x86 (KERNEL_GZIP .. KERNEL_ZSTD),
	 * by name rather than archive_read_support_filter_all(): "all" also
	 * registers lrzip, lzop and grzip, which libarchive runs as external
	 * programs, and hostile input must never make us fork. */
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_bzip2(a);
	archive_read_support_filter_xz(a);
	archive_read_support_filter_lzma(a);
	archive_read_support_filter_lz4(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_format_raw(a);
	if (archive_read_open_memory(a, payload, plen) != ARCHIVE_OK ||
	    archive_read_next_header(a, &ae) != ARCHIVE_OK) {
		loader__errf(err, errlen, "payload (starting %s): %s", first,
			     archive_error_string(a) ? archive_error_string(a) : "unreadable");
		archive_read_free(a);
		return NULL;
	}
	/* The raw format also accepts an uncompressed stream; Linux has no
	 * uncompressed x86 bzImage, so "none" means we did not recognise it. */
	if (archive_filter_code(a, 0) == ARCHIVE_FILTER_NONE) {
		loader__errf(err, errlen, "payload (starting %s) is not gzip, bzip2, xz, lzma, lz4 "
			     "or zstd", first);
		archive_read_free(a);
		return NULL;
	}

	for (;;) {
		la_ssize_t n;

		if (used == alloc) {
			/* One byte past the cap tells "exactly cap" from "more". */
			uint64_t want = alloc ? (uint64_t)alloc * 2 : (1ULL << 20);
			uint8_t *p;

			if (alloc > cap) {
				loader__errf(err, errlen, "%s payload: decompressed vmlinux is larger "
					     "than %s", archive_filter_name(a, 0),
					     loader__fmt_size(cap, s, sizeof(s)));
				goto fail;
			}
			if (want > cap + 1)
				want = cap + 1;
			p = realloc(out, (size_t)want);
			if (!p) {
				loader__errf(err, errlen, "out of memory for %s",
					     loader__fmt_size(want, s, sizeof(s)));
				goto fail;
			}
			out = p;
			alloc = (size_t)want;
		}
		n = archive_read_data(a, out + used, alloc - used);
		if (n < 0) {
			/* Possibly only trailing bytes after the stream; the ELF
			 * check below decides. */
			snprintf(aerr, sizeof(aerr), "%s", archive_error_string(a) ?
				 archive_error_string(a) : "decompression error");
			failed = 1;
			break;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		/* Reject non-ELF output early instead of inflating all of it. */
		if (used >= 4 && used - (size_t)n < 4 && memcmp(out, "\x7f" "ELF", 4)) {
			hexbytes(out, 4, first, sizeof(first));
			loader__errf(err, errlen, "%s payload: decompressed data starts with %s, "
				     "not an ELF vmlinux", archive_filter_name(a, 0), first);
			goto fail;
		}
	}
	if (used < 4 || memcmp(out, "\x7f" "ELF", 4)) {
		if (failed)
			loader__errf(err, errlen, "%s payload: %s after %zu bytes",
				     archive_filter_name(a, 0), aerr, used);
		else
			loader__errf(err, errlen, "%s payload: decompressed %zu bytes, not an ELF "
				     "vmlinux", archive_filter_name(a, 0), used);
		goto fail;
	}
	/* Complete means every PT_LOAD's file bytes are present; a stream cut
	 * short fails here even when libarchive only complained at the end. */
	if (loader__parse_elf(out, used, &ei, xerr, sizeof(xerr))) {
		if (failed)
			loader__errf(err, errlen, "%s payload: %s after %zu bytes; incomplete "
				     "vmlinux: %s", archive_filter_name(a, 0), aerr, used, xerr);
		else
			loader__errf(err, errlen, "%s payload: decompressed vmlinux is not "
				     "loadable: %s", archive_filter_name(a, 0), xerr);
		goto fail;
	}
	archive_read_free(a);
	*out_len = used;
	return out;
fail:
	archive_read_free(a);
	free(out);
	return NULL;
}

uint8_t *loader__extract_vmlinux(const uint8_t *bzimage, size_t len, size_t *out_len,
				 char *err, size_t errlen)
{
	struct bzimage_info bz;
	const uint8_t *payload;
	uint64_t cap;
	uint32_t trimmed;
	uint8_t *out;
	char e1[256], e2[256];
	int gzip;

	*out_len = 0;
	if (loader__parse_bzimage(bzimage, len, &bz, err, errlen))
		return NULL;
	payload = bzimage + bz.payload_offset;
	cap = VMLINUX_SLACK + VMLINUX_RATIO * bz.payload_length;
	if (cap > VMLINUX_MAX)
		cap = VMLINUX_MAX;
	/* Linux appends the uncompressed size as 4 bytes to every format but
	 * gzip (size_append in scripts/Makefile.lib). libarchive's xz and zstd
	 * readers fail on such trailing bytes and drop the whole output, so
	 * try without them first unless it is gzip (whose own trailer ends in
	 * the size), then the other way round. */
	gzip = bz.payload_length >= 2 && payload[0] == 0x1f && payload[1] == 0x8b;
	trimmed = bz.payload_length > 4 ? bz.payload_length - 4 : bz.payload_length;
	out = decompress_payload(payload, gzip ? bz.payload_length : trimmed, cap, out_len, e1,
				 sizeof(e1));
	if (out)
		return out;
	if (trimmed != bz.payload_length) {
		out = decompress_payload(payload, gzip ? trimmed : bz.payload_length, cap, out_len, e2,
					 sizeof(e2));
		if (out)
			return out;
	}
	loader__errf(err, errlen, "bzImage: cannot extract vmlinux (%u-byte payload at 0x%" PRIx64
		     "): %s", bz.payload_length, bz.payload_offset, e1);
	return NULL;
}

int loader_linux__boot_bzimage(const struct loader_ctx *ctx, struct boot_entry *entry)
{
	const struct loader_blob *k = ctx->kernel;
	struct e820_range map[BP_E820_MAX];
	struct bzimage_info bz;
	uint8_t bp[BP_SIZE];
	uint64_t load, need, pm_len, ceiling, initrd_addr = 0, hdr_end;
	char xerr[256], s1[32], s2[32];
	size_t n;

	if (loader__parse_bzimage(k->data, k->len, &bz, xerr, sizeof(xerr)))
		return loader__errf(ctx->err, ctx->errlen, "kernel '%s': %s", k->path, xerr);
	if (!(bz.xloadflags & XLF_KERNEL_64))
		return loader__errf(ctx->err, ctx->errlen, "kernel '%s': bzImage has no 64-bit entry "
				    "point (XLF_KERNEL_64 clear in xloadflags 0x%x)", k->path,
				    bz.xloadflags);
	if (bz.kernel_alignment < GUEST_PAGE_SIZE || bz.kernel_alignment > (1U << 30) ||
	    (bz.kernel_alignment & (bz.kernel_alignment - 1)))
		return loader__errf(ctx->err, ctx->errlen, "kernel '%s': bzImage kernel_alignment "
				    "0x%x is not a power of two between 4 KiB and 1 GiB", k->path,
				    bz.kernel_alignment);
	if (k->data[BZ_RELOCATABLE]) {
		/* The lowest aligned address above 1 MiB; a 64-bit kernel moves
		 * itself up to LOAD_PHYSICAL_ADDR while decompressing anyway. */
		load = (LOADER_HIGH_MEM_BASE + bz.kernel_alignment - 1) &
		       ~(uint64_t)(bz.kernel_alignment - 1);
	} else {
		/* A non-relocatable kernel runs at pref_address, no matter what. */
		if (bz.pref_address < LOADER_HIGH_MEM_BASE || bz.pref_address >= GUEST_LOW_MEM_END)
			return loader__errf(ctx->err, ctx->errlen, "kernel '%s': non-relocatable "
					    "bzImage wants pref_address 0x%" PRIx64, k->path,
					    bz.pref_address);
		load = bz.pref_address;
	}
	pm_len = k->len - bz.setup_size;
	need = bz.init_size > pm_len ? bz.init_size : pm_len;
	if (need > ctx->mem->low_size || load > ctx->mem->low_size - need)
		return loader__errf(ctx->err, ctx->errlen, "kernel '%s': bzImage needs %s (init_size) "
				    "at 0x%" PRIx64 ", beyond low guest RAM (%s)", k->path,
				    loader__fmt_size(need, s1, sizeof(s1)), load,
				    loader__fmt_size(ctx->mem->low_size, s2, sizeof(s2)));
	if (guest_mem__write(ctx->mem, load, k->data + bz.setup_size, pm_len))
		return loader__errf(ctx->err, ctx->errlen, "kernel '%s': 0x%" PRIx64 " is not guest RAM",
				    k->path, load);
	/* cmdline_size excludes the NUL. */
	if (loader__put_cmdline(ctx, (uint64_t)bz.cmdline_size + 1))
		return -1;
	ceiling = (uint64_t)bz.initrd_addr_max + 1;
	if (ceiling > LOADER_INITRD_CEILING)
		ceiling = LOADER_INITRD_CEILING;
	if (loader__put_initrd(ctx, load + need, ceiling, &initrd_addr))
		return -1;

	/* The zero page: the setup header as the file has it (so the kernel
	 * sees its own fields), then what the boot loader must fill in. The
	 * header ends at 0x202 + the jump offset byte at 0x201. */
	memset(bp, 0, sizeof(bp));
	hdr_end = BZ_HEADER + (uint64_t)k->data[BZ_JUMP + 1];
	if (hdr_end > BP_SETUP_HDR_MAX)
		hdr_end = BP_SETUP_HDR_MAX;
	if (hdr_end > k->len)
		hdr_end = k->len;
	memcpy(bp + BZ_SETUP_SECTS, k->data + BZ_SETUP_SECTS, hdr_end - BZ_SETUP_SECTS);
	bp[BZ_TYPE_OF_LOADER] = 0xff; /* undefined boot loader */
	bp[BZ_LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP;
	wr32(bp + BZ_CODE32_START, (uint32_t)load);
	wr16(bp + BZ_HEAP_END_PTR, 0xfe00);
	wr32(bp + BZ_CMD_LINE_PTR, (uint32_t)LOADER_CMDLINE_ADDR);
	wr32(bp + BP_EXT_CMD_LINE_PTR, 0);
	wr32(bp + BZ_RAMDISK_IMAGE, (uint32_t)initrd_addr);
	wr32(bp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(initrd_addr >> 32));
	wr32(bp + BZ_RAMDISK_SIZE, ctx->initrd ? (uint32_t)ctx->initrd->len : 0);
	wr32(bp + BP_EXT_RAMDISK_SIZE, ctx->initrd ? (uint32_t)((uint64_t)ctx->initrd->len >> 32) : 0);
	n = loader__e820(ctx->mem, map, BP_E820_MAX);
	bp[BP_E820_ENTRIES] = (uint8_t)n;
	for (size_t i = 0; i < n; i++) {
		uint8_t *e = bp + BP_E820_TABLE + i * 20;

		wr64(e, map[i].addr);
		wr64(e + 8, map[i].size);
		wr32(e + 16, map[i].type);
	}
	if (guest_mem__write(ctx->mem, LOADER_BOOT_PARAMS, bp, sizeof(bp)))
		return loader__errf(ctx->err, ctx->errlen, "kernel '%s': cannot write boot_params",
				    k->path);
	if (loader__put_long_mode(ctx, entry))
		return -1;
	entry->rip = load + 0x200; /* startup_64: 64-bit entry, 0x200 past the 32-bit one */
	entry->rsi = LOADER_BOOT_PARAMS;
	entry->format_name = "bzImage";
	return 0;
}
