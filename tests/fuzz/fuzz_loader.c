/* libFuzzer target for the guest loader's parsers: the ELF parser, the
 * bzImage setup-header parser, host-side vmlinux extraction, and (for inputs
 * the ELF parser accepts) the PVH and ELF64 loaders writing into a small
 * guest RAM. Everything the loader reads from a kernel file goes through
 * these entry points.
 *
 * Build (standalone, until meson wires it up):
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -I vnode vnode/loader*.c vnode/guest-mem.c tests/fuzz/fuzz_loader.c \
 *     -larchive -o fuzz_loader
 *   ./fuzz_loader -max_len=65536 corpus/
 * Seed corpus: any ELF (e.g. guests/ images, /bin/true is refused early but
 * still useful) and a small bzImage header. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loader-priv.h"

/* Parsing is linear in the input; larger inputs only slow the fuzzer. */
#define FUZZ_MAX_INPUT   (1u << 20)
/* Extraction output is capped at 16 MiB + 32x the payload: with inputs up
 * to 64 KiB a decompression bomb costs at most ~18 MiB per run. */
#define FUZZ_MAX_EXTRACT (64u << 10)
/* Guest RAM for the load paths; segments beyond it must be refused. */
#define FUZZ_RAM         (4u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_load_elf(const uint8_t *data, size_t size, const struct elf_image_info *ei)
{
	struct guest_mem mem = { .size = FUZZ_RAM, .low_size = FUZZ_RAM };
	struct loader_blob kernel = { .what = "kernel", .path = "fuzz", .data = (uint8_t *)data,
				      .len = size };
	struct loader_blob initrd = { .what = "initrd", .path = "fuzz-initrd",
				      .data = (uint8_t *)data, .len = size };
	struct boot_entry entry;
	char err[512];
	struct loader_ctx ctx = {
		.mem = &mem, .kernel = &kernel, .initrd = &initrd,
		.cmdline = "console=ttyS0", .err = err, .errlen = sizeof(err),
	};

	mem.host = calloc(1, FUZZ_RAM);
	if (!mem.host)
		return;
	memset(&entry, 0, sizeof(entry));
	if (ei->pvh_entry) {
		(void)loader_elf__boot_pvh(&ctx, data, size, "fuzz", &entry);
	} else if (ei->is_elf64) {
		ctx.initrd = NULL;
		ctx.cmdline = "";
		(void)loader_elf__boot_elf64(&ctx, &entry);
	}
	free(mem.host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct elf_image_info ei;
	struct bzimage_info bi;
	char err[512];

	if (size > FUZZ_MAX_INPUT)
		return 0;
	if (loader__parse_elf(data, size, &ei, err, sizeof(err)) == 0)
		fuzz_load_elf(data, size, &ei);
	(void)loader__parse_bzimage(data, size, &bi, err, sizeof(err));
	if (size <= FUZZ_MAX_EXTRACT) {
		size_t out_len = 0;
		uint8_t *out = loader__extract_vmlinux(data, size, &out_len, err, sizeof(err));

		free(out);
	}
	return 0;
}
