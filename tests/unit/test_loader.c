/* Unit tests for the guest loader (vnode/loader*.c): synthesized ELF and
 * bzImage files, hostile variants of them, and what ends up in guest RAM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest-mem.h"
#include "loader.h"

#define MiB (1ULL << 20)
#define RAM_SIZE (64 * MiB)

/* ---- little-endian helpers ------------------------------------------ */

static void w16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void w32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void w64(uint8_t *p, uint64_t v)
{
	w32(p, (uint32_t)v);
	w32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t r32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t r64(const uint8_t *p)
{
	return (uint64_t)r32(p) | (uint64_t)r32(p + 4) << 32;
}

/* ---- guest memory and temp files ------------------------------------ */

static struct guest_mem mem_new(uint64_t size)
{
	struct guest_mem m = { .size = size, .low_size = size, .high_size = 0 };

	m.host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		      -1, 0);
	assert_true(m.host != MAP_FAILED);
	/* Not zero: the loader must zero bss and page tables itself. */
	memset(m.host, 0xAA, 16 * MiB);
	return m;
}

static void mem_free(struct guest_mem *m)
{
	munmap(m->host, m->size);
}

static uint8_t *gp(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	uint8_t *p = guest_mem__ptr(m, gpa, len);

	assert_non_null(p);
	return p;
}

struct tmpfile {
	char path[64];
};

static void tmp_write(struct tmpfile *t, const void *data, size_t len)
{
	FILE *f;
	int fd;

	snprintf(t->path, sizeof(t->path), "/tmp/test_loader.XXXXXX");
	fd = mkstemp(t->path);
	assert_true(fd >= 0);
	f = fdopen(fd, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static void tmp_remove(struct tmpfile *t)
{
	unlink(t->path);
}

/* ---- synthesized ELF ------------------------------------------------- */

enum note_where { NOTE_NONE, NOTE_PHDR, NOTE_SECTION };

struct elf_opts {
	int is64;
	enum note_where note;
	unsigned desc_size; /* 4 or 8 */
	uint64_t pvh_entry;
	uint64_t entry;
	uint64_t seg0_paddr, seg1_paddr;
};

#define SEG0_OFF   0x1000
#define SEG0_FILE  0x1000
#define SEG0_MEM   0x3000
#define SEG1_OFF   0x2000
#define SEG1_FILE  0x800
#define NOTE_OFF   0x200
#define SHDR_OFF   0x2800
#define ELF_SIZE   0x2900

static struct elf_opts elf_defaults(int is64, enum note_where note)
{
	return (struct elf_opts){
		.is64 = is64, .note = note, .desc_size = is64 ? 8 : 4,
		.pvh_entry = 0x100010, .entry = 0x100000,
		.seg0_paddr = 0x100000, .seg1_paddr = 0x200000,
	};
}

static size_t put_note(uint8_t *p, unsigned desc_size, uint64_t value)
{
	w32(p, 4);
	w32(p + 4, desc_size);
	w32(p + 8, 18); /* XEN_ELFNOTE_PHYS32_ENTRY */
	memcpy(p + 12, "Xen", 4);
	if (desc_size == 8)
		w64(p + 16, value);
	else
		w32(p + 16, (uint32_t)value);
	return 16 + ((desc_size + 3) & ~3u);
}

/* Two PT_LOAD segments (the first with bss), optionally a GNU-style note
 * ahead of the Xen one so the note walker has to skip something. */
static uint8_t *make_elf(const struct elf_opts *o, size_t *len)
{
	uint8_t *b = calloc(1, ELF_SIZE);
	unsigned phnum = o->note == NOTE_PHDR ? 3 : 2;
	size_t note_len = 0;

	assert_non_null(b);
	memcpy(b, "\x7f" "ELF", 4);
	b[4] = o->is64 ? 2 : 1;
	b[5] = 1;
	b[6] = 1;
	w16(b + 16, 2);
	w16(b + 18, o->is64 ? 62 : 3);
	w32(b + 20, 1);
	if (o->note != NOTE_NONE) {
		/* a foreign note first: "GNU" build-id, 20 bytes */
		w32(b + NOTE_OFF, 4);
		w32(b + NOTE_OFF + 4, 20);
		w32(b + NOTE_OFF + 8, 3);
		memcpy(b + NOTE_OFF + 12, "GNU", 4);
		note_len = 16 + 20;
		note_len += put_note(b + NOTE_OFF + note_len, o->desc_size, o->pvh_entry);
	}
	for (unsigned i = 0; i < SEG0_FILE; i++)
		b[SEG0_OFF + i] = (uint8_t)(i * 7 + 1);
	for (unsigned i = 0; i < SEG1_FILE; i++)
		b[SEG1_OFF + i] = (uint8_t)(i * 3 + 5);

	struct { uint32_t type; uint64_t off, paddr, filesz, memsz, align; } ph[3] = {
		{ 1, SEG0_OFF, o->seg0_paddr, SEG0_FILE, SEG0_MEM, 0x1000 },
		{ 1, SEG1_OFF, o->seg1_paddr, SEG1_FILE, SEG1_FILE, 0x1000 },
		{ 4, NOTE_OFF, 0, note_len, note_len, 4 },
	};
	if (o->is64) {
		w64(b + 24, o->entry);
		w64(b + 32, 64);
		w16(b + 52, 64);
		w16(b + 54, 56);
		w16(b + 56, (uint16_t)phnum);
		for (unsigned i = 0; i < phnum; i++) {
			uint8_t *p = b + 64 + i * 56;

			w32(p, ph[i].type);
			w32(p + 4, 5);
			w64(p + 8, ph[i].off);
			w64(p + 16, ph[i].paddr + 0xffffffff80000000ULL); /* vaddr: unused */
			w64(p + 24, ph[i].paddr);
			w64(p + 32, ph[i].filesz);
			w64(p + 40, ph[i].memsz);
			w64(p + 48, ph[i].align);
		}
	} else {
		w32(b + 24, (uint32_t)o->entry);
		w32(b + 28, 52);
		w16(b + 40, 52);
		w16(b + 42, 32);
		w16(b + 44, (uint16_t)phnum);
		for (unsigned i = 0; i < phnum; i++) {
			uint8_t *p = b + 52 + i * 32;

			w32(p, ph[i].type);
			w32(p + 4, (uint32_t)ph[i].off);
			w32(p + 8, (uint32_t)ph[i].paddr);
			w32(p + 12, (uint32_t)ph[i].paddr);
			w32(p + 16, (uint32_t)ph[i].filesz);
			w32(p + 20, (uint32_t)ph[i].memsz);
			w32(p + 24, 5);
			w32(p + 28, (uint32_t)ph[i].align);
		}
	}
	if (o->note == NOTE_SECTION) {
		/* null section + one SHT_NOTE section over the notes */
		unsigned shentsize = o->is64 ? 64 : 40;
		uint8_t *s = b + SHDR_OFF + shentsize;

		w32(s + 4, 7);
		if (o->is64) {
			w64(b + 40, SHDR_OFF);
			w16(b + 58, 64);
			w16(b + 60, 2);
			w64(s + 0x18, NOTE_OFF);
			w64(s + 0x20, note_len);
			w64(s + 0x30, 4);
		} else {
			w32(b + 32, SHDR_OFF);
			w16(b + 46, 40);
			w16(b + 48, 2);
			w32(s + 0x10, NOTE_OFF);
			w32(s + 0x14, (uint32_t)note_len);
			w32(s + 0x20, 4);
		}
	}
	*len = ELF_SIZE;
	return b;
}

/* ELF64 program header i, field at byte offset `field` */
static uint8_t *ph64(uint8_t *elf, unsigned i, unsigned field)
{
	return elf + 64 + i * 56 + field;
}

/* ---- ELF parser ------------------------------------------------------ */

static void test_elf64_without_note(void **state)
{
	struct elf_opts o = elf_defaults(1, NOTE_NONE);
	struct elf_image_info ei;
	char err[256];
	size_t len;
	uint8_t *elf = make_elf(&o, &len);

	(void)state;
	assert_int_equal(loader__parse_elf(elf, len, &ei, err, sizeof(err)), 0);
	assert_int_equal(ei.is_elf64, 1);
	assert_int_equal(ei.entry, 0x100000);
	assert_int_equal(ei.pvh_entry, 0);
	assert_int_equal(ei.load_lo, 0x100000);
	assert_int_equal(ei.load_hi, 0x200000 + SEG1_FILE);
	free(elf);
}

static void test_elf64_pvh_note(void **state)
{
	struct elf_opts o = elf_defaults(1, NOTE_PHDR);
	struct elf_image_info ei;
	char err[256];
	size_t len;
	uint8_t *elf = make_elf(&o, &len);

	(void)state;
	assert_int_equal(loader__parse_elf(elf, len, &ei, err, sizeof(err)), 0);
	assert_int_equal(ei.pvh_entry, 0x100010);
	free(elf);

	/* a 4-byte descriptor works as well */
	o.desc_size = 4;
	elf = make_elf(&o, &len);
	assert_int_equal(loader__parse_elf(elf, len, &ei, err, sizeof(err)), 0);
	assert_int_equal(ei.pvh_entry, 0x100010);
	free(elf);
}

static void test_elf32_and_section_note(void **state)
{
	struct elf_opts o = elf_defaults(0, NOTE_PHDR);
	struct elf_image_info ei;
	char err[256];
	size_t len;
	uint8_t *elf = make_elf(&o, &len);

	(void)state;
	assert_int_equal(loader__parse_elf(elf, len, &ei, err, sizeof(err)), 0);
	assert_int_equal(ei.is_elf64, 0);
	assert_int_equal(ei.pvh_entry, 0x100010);
	free(elf);

	o = elf_defaults(0, NOTE_SECTION);
	elf = make_elf(&o, &len);
	assert_int_equal(loader__parse_elf(elf, len, &ei, err, sizeof(err)), 0);
	assert_int_equal(ei.pvh_entry, 0x100010);
	free(elf);

	o = elf_defaults(1, NOTE_SECTION);
	elf = make_elf(&o, &len);
	assert_int_equal(loader__parse_elf(elf, len, &ei, err, sizeof(err)), 0);
	assert_int_equal(ei.pvh_entry, 0x100010);
	/* a section table beyond the file is refused, not read */
	w64(elf + 40, ELF_SIZE - 10);
	assert_int_equal(loader__parse_elf(elf, len, &ei, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "section header table"));
	free(elf);
}

static void expect_elf_error(uint8_t *elf, size_t len, const char *needle)
{
	struct elf_image_info ei;
	char err[256] = "";

	assert_int_equal(loader__parse_elf(elf, len, &ei, err, sizeof(err)), -1);
	if (!strstr(err, needle))
		fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

static void test_elf_rejects_corrupt(void **state)
{
	struct elf_opts o = elf_defaults(1, NOTE_PHDR);
	size_t len;
	uint8_t *elf;

	(void)state;
#define FRESH() do { free(elf); elf = make_elf(&o, &len); } while (0)
	elf = make_elf(&o, &len);

	elf[0] = 'X';
	expect_elf_error(elf, len, "not an ELF");
	FRESH();
	elf[5] = 2;
	expect_elf_error(elf, len, "little-endian");
	FRESH();
	w16(elf + 18, 40); /* ARM */
	expect_elf_error(elf, len, "e_machine 40");
	FRESH();
	w64(elf + 32, len - 100); /* phdrs past the end */
	expect_elf_error(elf, len, "program header table");
	FRESH();
	w64(elf + 32, UINT64_MAX - 8); /* phoff that would wrap */
	expect_elf_error(elf, len, "program header table");
	FRESH();
	w16(elf + 56, 0);
	expect_elf_error(elf, len, "no program headers");
	FRESH();
	w64(ph64(elf, 0, 32), 0x7fffffffffffffffULL); /* huge p_filesz */
	w64(ph64(elf, 0, 40), 0x7fffffffffffffffULL);
	expect_elf_error(elf, len, "beyond the end of the file");
	FRESH();
	w64(ph64(elf, 0, 8), UINT64_MAX - 4); /* p_offset + p_filesz wraps */
	expect_elf_error(elf, len, "beyond the end of the file");
	FRESH();
	w64(ph64(elf, 0, 32), SEG0_MEM + 1); /* filesz > memsz */
	expect_elf_error(elf, len, "p_filesz");
	FRESH();
	w64(ph64(elf, 1, 24), UINT64_MAX - 0x10); /* paddr + memsz wraps */
	expect_elf_error(elf, len, "wraps");
	FRESH();
	w64(ph64(elf, 1, 24), 0x101000); /* inside segment 0's bss */
	expect_elf_error(elf, len, "overlap");
	FRESH();
	w32(elf + NOTE_OFF + 36 + 4, 0x1000); /* Xen note descsz past the segment */
	expect_elf_error(elf, len, "runs past");
	FRESH();
	w32(elf + NOTE_OFF + 36 + 4, 2); /* descsz neither 4 nor 8 */
	expect_elf_error(elf, len, "2-byte descriptor");
	FRESH();
	w32(elf + NOTE_OFF, 0xfffffff0); /* namesz that would wrap the padding */
	expect_elf_error(elf, len, "runs past");
	FRESH();
	w64(ph64(elf, 2, 32), 0x10000); /* PT_NOTE beyond the file */
	expect_elf_error(elf, len, "PT_NOTE segment 2");
	FRESH();
	w64(elf + NOTE_OFF + 36 + 16, 0x100000000ULL); /* PVH entry above 4 GiB */
	expect_elf_error(elf, len, "32-bit physical");
	FRESH();
	w32(ph64(elf, 0, 0), 6);
	w32(ph64(elf, 1, 0), 6);
	expect_elf_error(elf, len, "no PT_LOAD");
#undef FRESH
	free(elf);
}

/* Every truncation of a valid file fails cleanly (ASan watches the reads). */
static void test_elf_truncations(void **state)
{
	int is64s[2] = { 1, 0 };

	(void)state;
	for (int k = 0; k < 2; k++) {
		struct elf_opts o = elf_defaults(is64s[k], NOTE_SECTION);
		struct elf_image_info ei;
		char err[256];
		size_t len;
		uint8_t *elf = make_elf(&o, &len);

		for (size_t n = 0; n < len; n++) {
			uint8_t *cut = malloc(n ? n : 1);

			memcpy(cut, elf, n);
			/* up to SEG1_OFF + SEG1_FILE the segments are incomplete */
			if (n < SEG1_OFF + SEG1_FILE)
				assert_int_equal(loader__parse_elf(cut, n, &ei, err, sizeof(err)), -1);
			else
				(void)loader__parse_elf(cut, n, &ei, err, sizeof(err));
			free(cut);
		}
		free(elf);
	}
}

/* ---- loading ELF images ---------------------------------------------- */

static int load_file(const struct guest_mem *m, const void *data, size_t len, const char *initrd,
		     const char *cmdline, enum boot_format fmt, struct boot_entry *e, char *err,
		     size_t errlen)
{
	struct tmpfile t;
	struct boot_request req;
	int r;

	tmp_write(&t, data, len);
	req = (struct boot_request){ .kernel_path = t.path, .initrd_path = initrd,
				     .cmdline = cmdline, .format = fmt };
	r = loader__load(m, &req, e, err, errlen);
	tmp_remove(&t);
	return r;
}

static void test_load_errors_name_the_file(void **state)
{
	struct guest_mem m = mem_new(RAM_SIZE);
	struct boot_request req = { .kernel_path = "/nonexistent/vmlinux", .cmdline = "",
				    .format = BOOT_FORMAT_AUTO };
	struct boot_entry e;
	struct tmpfile t;
	char err[512];

	(void)state;
	assert_int_equal(loader__load(&m, &req, &e, err, sizeof(err)), -1);
	assert_string_equal(err, "kernel '/nonexistent/vmlinux': No such file or directory");

	/* not a kernel at all: the message shows what we found */
	assert_int_equal(load_file(&m, "MZ\x90\x00garbage", 11, NULL, "", BOOT_FORMAT_AUTO, &e, err,
				   sizeof(err)), -1);
	assert_non_null(strstr(err, "neither an ELF nor a Linux bzImage"));
	assert_non_null(strstr(err, "first bytes: 4d 5a 90 00 67 61 72 62"));

	/* missing initrd */
	{
		struct elf_opts o = elf_defaults(1, NOTE_PHDR);
		size_t len;
		uint8_t *elf = make_elf(&o, &len);

		assert_int_equal(load_file(&m, elf, len, "/nonexistent/initrd", "", BOOT_FORMAT_AUTO,
					   &e, err, sizeof(err)), -1);
		assert_string_equal(err, "initrd '/nonexistent/initrd': No such file or directory");
		free(elf);
	}
	/* empty kernel */
	tmp_write(&t, "", 0);
	req.kernel_path = t.path;
	assert_int_equal(loader__load(&m, &req, &e, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "empty file"));
	tmp_remove(&t);
	mem_free(&m);
}

static void test_load_segment_beyond_ram(void **state)
{
	struct guest_mem m = mem_new(RAM_SIZE);
	struct elf_opts o = elf_defaults(1, NOTE_PHDR);
	struct boot_entry e;
	char err[512];
	size_t len;
	uint8_t *elf;

	(void)state;
	o.seg1_paddr = RAM_SIZE - 0x100; /* runs 0x700 bytes past the end */
	elf = make_elf(&o, &len);
	assert_int_equal(load_file(&m, elf, len, NULL, "", BOOT_FORMAT_AUTO, &e, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "PT_LOAD segment 1 at 0x3ffff00 (2 KiB) lies beyond guest RAM "
				    "(64 MiB)"));
	assert_non_null(strstr(err, "kernel '/tmp/test_loader."));
	assert_int_equal(e.rip, 0);
	free(elf);

	/* over our own boot data at 0x5000..0xefff */
	o = elf_defaults(1, NOTE_NONE);
	o.seg1_paddr = 0x8000;
	elf = make_elf(&o, &len);
	assert_int_equal(load_file(&m, elf, len, NULL, "", BOOT_FORMAT_AUTO, &e, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "overlaps the loader's boot data"));
	free(elf);
	mem_free(&m);
}

static void test_pvh_start_info(void **state)
{
	struct guest_mem m = mem_new(RAM_SIZE);
	struct elf_opts o = elf_defaults(1, NOTE_PHDR);
	struct e820_range map[8];
	struct boot_entry e;
	struct tmpfile rd;
	uint8_t initrd[10000];
	char err[512];
	const char *cmdline = "console=ttyS0 simuboost.test=marker123";
	size_t len, n;
	uint8_t *elf = make_elf(&o, &len), *si, *p;
	uint64_t mod, rd_addr;

	(void)state;
	for (size_t i = 0; i < sizeof(initrd); i++)
		initrd[i] = (uint8_t)(i ^ 0x5a);
	tmp_write(&rd, initrd, sizeof(initrd));
	assert_int_equal(load_file(&m, elf, len, rd.path, cmdline, BOOT_FORMAT_AUTO, &e, err,
				   sizeof(err)), 0);
	assert_int_equal(e.mode, BOOT_ENTRY_PVH32);
	assert_string_equal(e.format_name, "pvh");
	assert_int_equal(e.rip, 0x100010);
	assert_int_equal(e.rbx, 0x6000);

	/* segments: file bytes copied, bss zeroed over the 0xAA fill */
	p = gp(&m, 0x100000, SEG0_MEM);
	assert_memory_equal(p, elf + SEG0_OFF, SEG0_FILE);
	for (unsigned i = SEG0_FILE; i < SEG0_MEM; i++)
		assert_int_equal(p[i], 0);
	assert_memory_equal(gp(&m, 0x200000, SEG1_FILE), elf + SEG1_OFF, SEG1_FILE);

	si = gp(&m, e.rbx, 56);
	assert_int_equal(r32(si), 0x336ec578);
	assert_int_equal(r32(si + 4), 1);
	assert_int_equal(r32(si + 12), 1); /* nr_modules */
	assert_string_equal((char *)gp(&m, r64(si + 24), strlen(cmdline) + 1), cmdline);
	assert_int_equal(r64(si + 32), 0); /* rsdp */

	n = loader__e820(&m, map, 8);
	assert_int_equal(n, 3);
	assert_int_equal(r32(si + 48), n);
	for (size_t i = 0; i < n; i++) {
		uint8_t *ent = gp(&m, r64(si + 40) + i * 24, 24);

		assert_int_equal(r64(ent), map[i].addr);
		assert_int_equal(r64(ent + 8), map[i].size);
		assert_int_equal(r32(ent + 16), map[i].type);
	}

	mod = r64(si + 16);
	rd_addr = r64(gp(&m, mod, 32));
	assert_int_equal(r64(gp(&m, mod, 32) + 8), sizeof(initrd));
	assert_int_equal(rd_addr % 4096, 0);
	/* top of low RAM: within a page of the end */
	assert_true(rd_addr + sizeof(initrd) <= RAM_SIZE);
	assert_true(rd_addr + sizeof(initrd) + 4096 > RAM_SIZE);
	assert_memory_equal(gp(&m, rd_addr, sizeof(initrd)), initrd, sizeof(initrd));

	/* the same kernel without an initrd: no module */
	assert_int_equal(load_file(&m, elf, len, NULL, "", BOOT_FORMAT_PVH, &e, err, sizeof(err)), 0);
	si = gp(&m, e.rbx, 56);
	assert_int_equal(r32(si + 12), 0);
	assert_int_equal(r64(si + 16), 0);
	assert_int_equal(*gp(&m, r64(si + 24), 1), 0);

	tmp_remove(&rd);
	free(elf);
	mem_free(&m);
}

static void test_pvh_limits(void **state)
{
	struct guest_mem m = mem_new(RAM_SIZE);
	struct elf_opts o = elf_defaults(1, NOTE_PHDR);
	struct boot_entry e;
	struct tmpfile rd;
	char err[512], *longline;
	size_t len;
	uint8_t *elf = make_elf(&o, &len), *big;

	(void)state;
	longline = malloc(5000);
	memset(longline, 'x', 4999);
	longline[4999] = '\0';
	assert_int_equal(load_file(&m, elf, len, NULL, longline, BOOT_FORMAT_AUTO, &e, err,
				   sizeof(err)), -1);
	assert_non_null(strstr(err, "command line is 4999 bytes, the limit for this kernel is 4095"));
	longline[4095] = '\0';
	assert_int_equal(load_file(&m, elf, len, NULL, longline, BOOT_FORMAT_AUTO, &e, err,
				   sizeof(err)), 0);
	free(longline);

	/* an initrd larger than the RAM left above the kernel */
	big = calloc(1, RAM_SIZE - 2 * MiB);
	tmp_write(&rd, big, RAM_SIZE - 2 * MiB);
	assert_int_equal(load_file(&m, elf, len, rd.path, "", BOOT_FORMAT_AUTO, &e, err,
				   sizeof(err)), -1);
	assert_non_null(strstr(err, "does not fit"));
	assert_non_null(strstr(err, rd.path));
	tmp_remove(&rd);
	free(big);

	/* boot = elf64 on a PVH-capable ELF64 is honoured; boot = bzImage is not */
	assert_int_equal(load_file(&m, elf, len, NULL, "", BOOT_FORMAT_BZIMAGE, &e, err,
				   sizeof(err)), -1);
	assert_non_null(strstr(err, "boot = bzImage"));
	free(elf);
	mem_free(&m);
}

/* Walks 4-level page tables like the MMU; returns the physical address or
 * UINT64_MAX for a not-present entry. */
static uint64_t walk(const struct guest_mem *m, uint64_t cr3, uint64_t va)
{
	uint64_t pml4e = r64(gp(m, (cr3 & ~0xfffULL) + ((va >> 39) & 511) * 8, 8));
	uint64_t pdpte, pde;

	if (!(pml4e & 1))
		return UINT64_MAX;
	pdpte = r64(gp(m, (pml4e & 0x000ffffffffff000ULL) + ((va >> 30) & 511) * 8, 8));
	if (!(pdpte & 1))
		return UINT64_MAX;
	assert_false(pdpte & 0x80); /* no 1 GiB pages */
	pde = r64(gp(m, (pdpte & 0x000ffffffffff000ULL) + ((va >> 21) & 511) * 8, 8));
	if (!(pde & 1))
		return UINT64_MAX;
	assert_true(pde & 0x80); /* 2 MiB page */
	assert_true(pde & 0x2);  /* writable */
	return (pde & 0x000fffffffe00000ULL) | (va & 0x1fffff);
}

static void test_elf64_long_mode(void **state)
{
	struct guest_mem m = mem_new(RAM_SIZE);
	struct elf_opts o = elf_defaults(1, NOTE_NONE);
	struct boot_entry e;
	char err[512];
	size_t len;
	uint8_t *elf = make_elf(&o, &len), *gdt;
	static const uint64_t vas[] = { 0, 0x100000, 0x12345678, 0x3fffffff, 0x40000000,
					0xc0001234, 0xfffffff8 };

	(void)state;
	assert_int_equal(load_file(&m, elf, len, NULL, "", BOOT_FORMAT_AUTO, &e, err, sizeof(err)), 0);
	assert_int_equal(e.mode, BOOT_ENTRY_LONG64);
	assert_string_equal(e.format_name, "elf64");
	assert_int_equal(e.rip, 0x100000);
	assert_int_equal(e.rsi, 0);
	for (size_t i = 0; i < sizeof(vas) / sizeof(vas[0]); i++)
		assert_int_equal(walk(&m, e.cr3, vas[i]), vas[i]);
	assert_int_equal(walk(&m, e.cr3, 0x100000000ULL), UINT64_MAX);
	/* page tables and GDT stay clear of the kernel and of each other */
	assert_true(e.cr3 + 6 * 4096 <= 0x100000);
	assert_int_equal(e.gdt_limit, 31);
	gdt = gp(&m, e.gdt_base, 32);
	assert_int_equal(r64(gdt), 0);
	assert_int_equal(r64(gdt + 0x10), 0x00af9a000000ffffULL);
	assert_int_equal(r64(gdt + 0x18), 0x00cf92000000ffffULL);
	assert_memory_equal(gp(&m, 0x100000, SEG0_FILE), elf + SEG0_OFF, SEG0_FILE);

	/* ELF64 has no way to pass a command line or initrd */
	assert_int_equal(load_file(&m, elf, len, NULL, "quiet", BOOT_FORMAT_AUTO, &e, err,
				   sizeof(err)), -1);
	assert_non_null(strstr(err, "command line"));
	/* PVH requested, but there is no note */
	assert_int_equal(load_file(&m, elf, len, NULL, "", BOOT_FORMAT_PVH, &e, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no PVH entry note"));
	free(elf);

	/* e_entry outside every segment (a virtual address, like vmlinux's) */
	o.entry = 0xffffffff81000000ULL;
	elf = make_elf(&o, &len);
	assert_int_equal(load_file(&m, elf, len, NULL, "", BOOT_FORMAT_ELF64, &e, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "e_entry 0xffffffff81000000"));
	free(elf);

	/* a 32-bit ELF without a note cannot be booted */
	o = elf_defaults(0, NOTE_NONE);
	elf = make_elf(&o, &len);
	assert_int_equal(load_file(&m, elf, len, NULL, "", BOOT_FORMAT_AUTO, &e, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "32-bit ELF without a PVH entry note"));
	free(elf);
	mem_free(&m);
}

static void test_e820(void **state)
{
	struct guest_mem m = { .size = 512 * MiB, .low_size = 512 * MiB };
	struct e820_range r[8];

	(void)state;
	assert_int_equal(loader__e820(&m, r, 8), 3);
	assert_int_equal(r[0].addr, 0);
	assert_int_equal(r[0].size, 0x9fc00);
	assert_int_equal(r[0].type, 1);
	assert_int_equal(r[1].addr, 0x9fc00);
	assert_int_equal(r[1].size, 0x100000 - 0x9fc00);
	assert_int_equal(r[1].type, 2);
	assert_int_equal(r[2].addr, 0x100000);
	assert_int_equal(r[2].size, 511 * MiB);
	assert_int_equal(r[2].type, 1);

	m = (struct guest_mem){ .size = 4096 * MiB, .low_size = 3072 * MiB, .high_size = 1024 * MiB };
	assert_int_equal(loader__e820(&m, r, 8), 4);
	assert_int_equal(r[3].addr, 0x100000000ULL);
	assert_int_equal(r[3].size, 1024 * MiB);
	assert_int_equal(r[3].type, 1);
	/* never more than asked for */
	assert_int_equal(loader__e820(&m, r, 2), 2);
}

/* ---- bzImage ------------------------------------------------------------ */

#define BZ_SETUP_SECTS 3
#define BZ_SETUP_SIZE ((BZ_SETUP_SECTS + 1) * 512)

struct bz_opts {
	uint16_t protocol;
	uint8_t setup_sects;
	uint16_t xloadflags;
	uint32_t kernel_alignment;
	uint32_t cmdline_size;
	const uint8_t *payload;
	size_t payload_len;
};

static struct bz_opts bz_defaults(void)
{
	return (struct bz_opts){ .protocol = 0x020f, .setup_sects = BZ_SETUP_SECTS,
				 .xloadflags = 0x3, .kernel_alignment = 0x200000,
				 .cmdline_size = 2047 };
}

/* Setup sectors, then a protected-mode part of 0x4000 bytes of "code"
 * with the payload at pm offset 0x400. */
static uint8_t *make_bzimage(const struct bz_opts *o, size_t *len)
{
	unsigned sects = o->setup_sects ? o->setup_sects : 4;
	size_t setup = (sects + 1) * 512, pm = 0x4000 + o->payload_len;
	uint8_t *b = calloc(1, setup + pm);

	assert_non_null(b);
	b[0x1f1] = o->setup_sects;
	w16(b + 0x1fa, 0xffff);        /* vid_mode */
	w16(b + 0x1fe, 0xAA55);
	b[0x200] = 0xeb;
	b[0x201] = 0x6a;               /* header ends at 0x26c */
	memcpy(b + 0x202, "HdrS", 4);
	w16(b + 0x206, o->protocol);
	b[0x211] = 0x01;               /* LOADED_HIGH */
	w32(b + 0x214, 0x100000);
	w32(b + 0x22c, 0x7fffffff);    /* initrd_addr_max */
	w32(b + 0x230, o->kernel_alignment);
	b[0x234] = 1;                  /* relocatable */
	w16(b + 0x236, o->xloadflags);
	w32(b + 0x238, o->cmdline_size);
	w32(b + 0x248, 0x400);         /* payload_offset, from the pm start */
	w32(b + 0x24c, o->payload_len ? (uint32_t)o->payload_len : 0x100);
	w64(b + 0x258, 0x1000000);     /* pref_address */
	w32(b + 0x260, 0x800000);      /* init_size: 8 MiB */
	for (size_t i = 0; i < 0x400; i++)
		b[setup + i] = (uint8_t)(0x90 + i);
	if (o->payload)
		memcpy(b + setup + 0x400, o->payload, o->payload_len);
	*len = setup + pm;
	return b;
}

static void test_bzimage_parse(void **state)
{
	struct bz_opts o = bz_defaults();
	struct bzimage_info bi;
	char err[256];
	size_t len;
	uint8_t *bz = make_bzimage(&o, &len);

	(void)state;
	assert_int_equal(loader__parse_bzimage(bz, len, &bi, err, sizeof(err)), 0);
	assert_int_equal(bi.protocol, 0x020f);
	assert_int_equal(bi.setup_size, BZ_SETUP_SIZE);
	assert_int_equal(bi.payload_offset, BZ_SETUP_SIZE + 0x400);
	assert_int_equal(bi.payload_length, 0x100);
	assert_int_equal(bi.xloadflags, 3);
	assert_int_equal(bi.kernel_alignment, 0x200000);
	assert_int_equal(bi.pref_address, 0x1000000);
	assert_int_equal(bi.init_size, 0x800000);
	assert_int_equal(bi.cmdline_size, 2047);
	assert_int_equal(bi.initrd_addr_max, 0x7fffffff);
	free(bz);

	o.setup_sects = 0; /* means 4 */
	bz = make_bzimage(&o, &len);
	assert_int_equal(loader__parse_bzimage(bz, len, &bi, err, sizeof(err)), 0);
	assert_int_equal(bi.setup_size, 5 * 512);

	/* hostile variants */
	bz[0x202] = 'X';
	assert_int_equal(loader__parse_bzimage(bz, len, &bi, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "HdrS"));
	bz[0x202] = 'H';
	w16(bz + 0x1fe, 0x1234);
	assert_int_equal(loader__parse_bzimage(bz, len, &bi, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "boot_flag"));
	w16(bz + 0x1fe, 0xAA55);
	w16(bz + 0x206, 0x020b);
	assert_int_equal(loader__parse_bzimage(bz, len, &bi, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "2.11 is older than 2.12"));
	w16(bz + 0x206, 0x020f);
	w32(bz + 0x248, 0xfffffff0); /* payload far past the end */
	assert_int_equal(loader__parse_bzimage(bz, len, &bi, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "beyond the end of the file"));
	w32(bz + 0x248, 0x400);
	w32(bz + 0x24c, 0xffffffff);
	assert_int_equal(loader__parse_bzimage(bz, len, &bi, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "beyond the end of the file"));
	w32(bz + 0x24c, 0x100);
	bz[0x1f1] = 0xff; /* setup larger than the file */
	assert_int_equal(loader__parse_bzimage(bz, len, &bi, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "covers the whole file"));
	bz[0x1f1] = 0;
	for (size_t n = 0; n < 0x264; n++)
		assert_int_equal(loader__parse_bzimage(bz, n, &bi, err, sizeof(err)), -1);
	free(bz);
}

static void test_bzimage_boot_params(void **state)
{
	struct guest_mem m = mem_new(RAM_SIZE);
	struct bz_opts o = bz_defaults();
	struct e820_range map[8];
	struct boot_entry e;
	struct tmpfile rd;
	uint8_t initrd[5000], *bp;
	char err[512], *longline;
	const char *cmdline = "console=ttyS0 earlyprintk=serial";
	size_t len, n;
	uint8_t *bz = make_bzimage(&o, &len);
	uint32_t rd_addr;

	(void)state;
	memset(initrd, 0x42, sizeof(initrd));
	tmp_write(&rd, initrd, sizeof(initrd));
	assert_int_equal(load_file(&m, bz, len, rd.path, cmdline, BOOT_FORMAT_BZIMAGE, &e, err,
				   sizeof(err)), 0);
	assert_int_equal(e.mode, BOOT_ENTRY_LONG64);
	assert_string_equal(e.format_name, "bzImage");
	/* 1 MiB aligned up to kernel_alignment (2 MiB), 64-bit entry at +0x200 */
	assert_int_equal(e.rip, 0x200000 + 0x200);
	assert_int_equal(e.rsi, 0x7000);
	assert_memory_equal(gp(&m, 0x200000, 0x400), bz + BZ_SETUP_SIZE, 0x400);
	assert_int_equal(walk(&m, e.cr3, e.rip), e.rip);

	bp = gp(&m, e.rsi, 4096);
	assert_int_equal(bp[0x1f1], BZ_SETUP_SECTS);       /* header copied */
	assert_memory_equal(bp + 0x202, "HdrS", 4);
	assert_int_equal(r32(bp + 0x230), 0x200000);
	assert_int_equal(r32(bp + 0x260), 0x800000);
	assert_int_equal(bp[0x210], 0xff);                 /* type_of_loader */
	assert_int_equal(bp[0x211] & 0x81, 0x81);          /* LOADED_HIGH|CAN_USE_HEAP */
	assert_int_equal(bp[0x1ef], 0);                    /* sentinel */
	assert_string_equal((char *)gp(&m, r32(bp + 0x228), strlen(cmdline) + 1), cmdline);
	rd_addr = r32(bp + 0x218);
	assert_int_equal(r32(bp + 0x21c), sizeof(initrd));
	assert_int_equal(rd_addr % 4096, 0);
	assert_true(rd_addr >= 0x200000 + 0x800000);       /* above init_size */
	assert_true(rd_addr + sizeof(initrd) + 4096 > RAM_SIZE);
	assert_memory_equal(gp(&m, rd_addr, sizeof(initrd)), initrd, sizeof(initrd));
	n = loader__e820(&m, map, 8);
	assert_int_equal(bp[0x1e8], n);
	for (size_t i = 0; i < n; i++) {
		uint8_t *ent = bp + 0x2d0 + i * 20;

		assert_int_equal(r64(ent), map[i].addr);
		assert_int_equal(r64(ent + 8), map[i].size);
		assert_int_equal(r32(ent + 16), map[i].type);
	}
	tmp_remove(&rd);

	/* cmdline_size from the header is the limit */
	longline = malloc(3000);
	memset(longline, 'y', 2999);
	longline[2999] = '\0';
	assert_int_equal(load_file(&m, bz, len, NULL, longline, BOOT_FORMAT_BZIMAGE, &e, err,
				   sizeof(err)), -1);
	assert_non_null(strstr(err, "limit for this kernel is 2047"));
	free(longline);
	/* auto on a bzImage whose payload does not extract: 64-bit protocol */
	assert_int_equal(load_file(&m, bz, len, NULL, "", BOOT_FORMAT_AUTO, &e, err, sizeof(err)), 0);
	assert_string_equal(e.format_name, "bzImage");
	/* but PVH was demanded */
	assert_int_equal(load_file(&m, bz, len, NULL, "", BOOT_FORMAT_PVH, &e, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot extract vmlinux"));
	free(bz);

	/* no 64-bit entry */
	o.xloadflags = 0;
	bz = make_bzimage(&o, &len);
	assert_int_equal(load_file(&m, bz, len, NULL, "", BOOT_FORMAT_BZIMAGE, &e, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "XLF_KERNEL_64"));
	free(bz);
	/* init_size beyond RAM */
	o = bz_defaults();
	bz = make_bzimage(&o, &len);
	w32(bz + 0x260, RAM_SIZE);
	assert_int_equal(load_file(&m, bz, len, NULL, "", BOOT_FORMAT_BZIMAGE, &e, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "init_size"));
	free(bz);
	mem_free(&m);
}

/* ---- extraction ------------------------------------------------------- */

/* Compresses with libarchive's raw writer, plus Linux's 4-byte size trailer
 * (size_append) for every filter but gzip. */
static uint8_t *compress(int filter, const uint8_t *in, size_t len, size_t *out_len)
{
	size_t cap = len + 65536, used = 0;
	uint8_t *out = malloc(cap + 4);
	struct archive *a = archive_write_new();
	struct archive_entry *ae = archive_entry_new();

	assert_non_null(out);
	assert_int_equal(archive_write_add_filter(a, filter), ARCHIVE_OK);
	assert_int_equal(archive_write_set_format_raw(a), ARCHIVE_OK);
	archive_write_set_bytes_in_last_block(a, 1);
	assert_int_equal(archive_write_open_memory(a, out, cap, &used), ARCHIVE_OK);
	archive_entry_set_filetype(ae, AE_IFREG);
	archive_entry_set_pathname(ae, "vmlinux.bin");
	archive_entry_set_size(ae, (la_int64_t)len);
	assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
	assert_int_equal(archive_write_data(a, in, len), (la_ssize_t)len);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_entry_free(ae);
	archive_write_free(a);
	if (filter != ARCHIVE_FILTER_GZIP) {
		w32(out + used, (uint32_t)len);
		used += 4;
	}
	*out_len = used;
	return out;
}

static void check_extract(int filter, const char *name)
{
	struct elf_opts eo = elf_defaults(1, NOTE_PHDR);
	struct bz_opts o = bz_defaults();
	struct guest_mem m;
	struct boot_entry e;
	char err[512];
	size_t elf_len, clen, bz_len, out_len;
	uint8_t *elf = make_elf(&eo, &elf_len);
	uint8_t *c = compress(filter, elf, elf_len, &clen), *bz, *out;

	o.payload = c;
	o.payload_len = clen;
	bz = make_bzimage(&o, &bz_len);
	out = loader__extract_vmlinux(bz, bz_len, &out_len, err, sizeof(err));
	if (!out)
		fail_msg("%s: %s", name, err);
	assert_int_equal(out_len, elf_len);
	assert_memory_equal(out, elf, elf_len);
	free(out);

	/* auto: the bzImage boots as PVH through the extracted vmlinux */
	m = mem_new(RAM_SIZE);
	assert_int_equal(load_file(&m, bz, bz_len, NULL, "quiet", BOOT_FORMAT_AUTO, &e, err,
				   sizeof(err)), 0);
	assert_string_equal(e.format_name, "pvh");
	assert_int_equal(e.mode, BOOT_ENTRY_PVH32);
	assert_int_equal(e.rip, 0x100010);
	assert_memory_equal(gp(&m, 0x100000, SEG0_FILE), elf + SEG0_OFF, SEG0_FILE);
	mem_free(&m);

	/* without Linux's size trailer it extracts as well */
	if (filter != ARCHIVE_FILTER_GZIP) {
		w32(bz + 0x24c, (uint32_t)(clen - 4));
		out = loader__extract_vmlinux(bz, bz_len, &out_len, err, sizeof(err));
		if (!out)
			fail_msg("%s without trailer: %s", name, err);
		assert_int_equal(out_len, elf_len);
		free(out);
	}

	/* cut the stream short: the ELF is incomplete and refused */
	w32(bz + 0x24c, (uint32_t)(clen / 2));
	assert_null(loader__extract_vmlinux(bz, bz_len, &out_len, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot extract vmlinux"));
	free(bz);
	free(c);
	free(elf);
}

static void test_extract_gzip(void **state)
{
	(void)state;
	check_extract(ARCHIVE_FILTER_GZIP, "gzip");
}

static void test_extract_xz(void **state)
{
	(void)state;
	check_extract(ARCHIVE_FILTER_XZ, "xz");
}

static void test_extract_zstd_bzip2_lzma(void **state)
{
	(void)state;
	check_extract(ARCHIVE_FILTER_ZSTD, "zstd");
	check_extract(ARCHIVE_FILTER_BZIP2, "bzip2");
	check_extract(ARCHIVE_FILTER_LZMA, "lzma");
}

static void test_extract_rejects(void **state)
{
	struct bz_opts o = bz_defaults();
	struct elf_opts eo = elf_defaults(1, NOTE_NONE);
	struct guest_mem m = mem_new(RAM_SIZE);
	struct boot_entry e;
	uint8_t junk[300], *bz, *c, *elf;
	char err[512];
	size_t bz_len, out_len, clen, elf_len;

	(void)state;
	/* not compressed at all */
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 37);
	o.payload = junk;
	o.payload_len = sizeof(junk);
	bz = make_bzimage(&o, &bz_len);
	assert_null(loader__extract_vmlinux(bz, bz_len, &out_len, err, sizeof(err)));
	assert_non_null(strstr(err, "starting 00 25 4a 6f 94 b9"));
	free(bz);

	/* compressed, but not an ELF inside */
	c = compress(ARCHIVE_FILTER_GZIP, junk, sizeof(junk), &clen);
	o.payload = c;
	o.payload_len = clen;
	bz = make_bzimage(&o, &bz_len);
	assert_null(loader__extract_vmlinux(bz, bz_len, &out_len, err, sizeof(err)));
	assert_non_null(strstr(err, "not an ELF vmlinux"));
	free(bz);
	free(c);

	/* a vmlinux without PVH note: auto falls back to the 64-bit protocol */
	elf = make_elf(&eo, &elf_len);
	c = compress(ARCHIVE_FILTER_XZ, elf, elf_len, &clen);
	o.payload = c;
	o.payload_len = clen;
	bz = make_bzimage(&o, &bz_len);
	assert_int_equal(load_file(&m, bz, bz_len, NULL, "", BOOT_FORMAT_AUTO, &e, err, sizeof(err)), 0);
	assert_string_equal(e.format_name, "bzImage");
	assert_int_equal(load_file(&m, bz, bz_len, NULL, "", BOOT_FORMAT_PVH, &e, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no PVH entry note"));
	assert_int_equal(load_file(&m, bz, bz_len, NULL, "", BOOT_FORMAT_ELF64, &e, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "boot = elf64"));
	free(bz);
	free(c);
	free(elf);
	mem_free(&m);
}

/* A PVH kernel that came from a bzImage inherits the header's cmdline limit. */
static void test_extracted_cmdline_limit(void **state)
{
	struct elf_opts eo = elf_defaults(1, NOTE_PHDR);
	struct bz_opts o = bz_defaults();
	struct guest_mem m = mem_new(RAM_SIZE);
	struct boot_entry e;
	char err[512], line[300];
	size_t elf_len, clen, bz_len;
	uint8_t *elf = make_elf(&eo, &elf_len), *c, *bz;

	(void)state;
	c = compress(ARCHIVE_FILTER_GZIP, elf, elf_len, &clen);
	o.payload = c;
	o.payload_len = clen;
	o.cmdline_size = 255;
	bz = make_bzimage(&o, &bz_len);
	memset(line, 'z', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	assert_int_equal(load_file(&m, bz, bz_len, NULL, line, BOOT_FORMAT_AUTO, &e, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "limit for this kernel is 255"));
	line[255] = '\0';
	assert_int_equal(load_file(&m, bz, bz_len, NULL, line, BOOT_FORMAT_AUTO, &e, err, sizeof(err)),
			 0);
	assert_string_equal(e.format_name, "pvh");
	free(bz);
	free(c);
	free(elf);
	mem_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_elf64_without_note),
		cmocka_unit_test(test_elf64_pvh_note),
		cmocka_unit_test(test_elf32_and_section_note),
		cmocka_unit_test(test_elf_rejects_corrupt),
		cmocka_unit_test(test_elf_truncations),
		cmocka_unit_test(test_load_errors_name_the_file),
		cmocka_unit_test(test_load_segment_beyond_ram),
		cmocka_unit_test(test_pvh_start_info),
		cmocka_unit_test(test_pvh_limits),
		cmocka_unit_test(test_elf64_long_mode),
		cmocka_unit_test(test_e820),
		cmocka_unit_test(test_bzimage_parse),
		cmocka_unit_test(test_bzimage_boot_params),
		cmocka_unit_test(test_extract_gzip),
		cmocka_unit_test(test_extract_xz),
		cmocka_unit_test(test_extract_zstd_bzip2_lzma),
		cmocka_unit_test(test_extract_rejects),
		cmocka_unit_test(test_extracted_cmdline_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
