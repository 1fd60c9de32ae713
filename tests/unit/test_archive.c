/* Export and import of a recording: round trips through every compression,
 * only the recording's files exported, and every hostile or broken archive
 * refused with DIR left uncreated and no temporary directory left behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "checkpoint.h"

#define NPAGES 8u
#define PG CKPT_PAGE_SIZE

static char err[1024];

struct fixture {
	char tmp[64];
	char rec[96];               /* the recording */
	char out[96];               /* where imports go; must not exist */
	char path[160];             /* scratch */
};

/* ---- a small recording -------------------------------------------------------------- */

static const struct ckpt_info info = {
	.memory_bytes = NPAGES * PG,
	.interval_ns = 1000000000,
	.mode = "cow",
	.cpu_model = "kvm64",
	.config_path = "vm.cfg",
	.config_text = "memory = \"32K\";\n",
	.created_by = "simuboost test",
};

static void *make_log(uint32_t interval, size_t *len)
{
	struct ckpt_log_writer *w = ckpt_log_writer__new(interval);
	struct ckpt_event pio = { .kind = CKPT_EV_PIO_READ, .guest_time_ns = 100 + interval,
				  .at = { .sync_count = 0, .rip = 0x401000 }, .addr = 0x40,
				  .size = 1, .value = interval };
	struct ckpt_event stop = { .kind = CKPT_EV_STOP, .guest_time_ns = 200 + interval,
				   .at = { .sync_count = 1, .rip = 0x401010, .reg_hash = 7 } };
	void *buf;

	assert_int_equal(ckpt_log_writer__append(w, &pio), 0);
	assert_int_equal(ckpt_log_writer__append(w, &stop), 0);
	assert_int_equal(ckpt_log_writer__finish(w, &buf, len), 0);
	return buf;
}

/* Three checkpoints: 0 stores pages, 1 stores one, 2 only re-references
 * contents (no pack). */
static void build(const char *dir)
{
	struct ckpt_store *st = ckpt_store__create(dir, &info, err, sizeof(err));
	uint8_t page[PG];

	if (!st)
		fail_msg("create: %s", err);
	for (uint32_t k = 0; k < 3; k++) {
		struct ckpt_txn *tx = ckpt_txn__begin(st, k, err, sizeof(err));
		struct ckpt_state s = { .guest_time_ns = k * 1000000000ull };

		assert_non_null(tx);
		for (uint64_t g = 0; g < NPAGES; g++) {
			if (k == 1 && g != 3)
				continue;
			if (k == 2 && g != 4)
				continue;
			memset(page, 0, PG);
			/* checkpoint 2 writes page 4 with page 1's content */
			if (g % 2 || k == 2)
				snprintf((char *)page, PG, "page %u of checkpoint %u",
					 k == 2 ? 1u : (unsigned)g, k == 2 ? 0u : k);
			assert_int_equal(ckpt_txn__add_page(tx, g, page, err, sizeof(err)), 0);
		}
		if (k) {
			size_t len;
			void *log = make_log(k - 1, &len);

			assert_int_equal(ckpt_txn__set_log(tx, log, len, err, sizeof(err)), 0);
		}
		assert_int_equal(ckpt_txn__set_state(tx, &s, err, sizeof(err)), 0);
		if (ckpt_txn__commit(tx, err, sizeof(err)) != 0)
			fail_msg("commit %u: %s", k, err);
	}
	ckpt_store__close(st);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	strcpy(f->tmp, "/tmp/simuboost-archive-XXXXXX");
	assert_non_null(mkdtemp(f->tmp));
	snprintf(f->rec, sizeof(f->rec), "%s/rec", f->tmp);
	snprintf(f->out, sizeof(f->out), "%s/imported", f->tmp);
	build(f->rec);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->tmp);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* ---- files ---------------------------------------------------------------------------- */

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *p;
	long n;

	if (!fp)
		fail_msg("%s: %s", path, strerror(errno));
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	p = malloc((size_t)n + 1);
	assert_int_equal(fread(p, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	*len = (size_t)n;
	return p;
}

static void spill(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names in dir, joined with spaces. */
static void listing(const char *dir, char *out, size_t outlen)
{
	char *names[64];
	size_t n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && n < 64)
			names[n++] = strdup(e->d_name);
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_str);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		snprintf(out + strlen(out), outlen - strlen(out), "%s%s", i ? " " : "", names[i]);
		free(names[i]);
	}
}

#define RECORDING_FILES \
	"000000.log 000000.manifest 000000.pack 000001.log 000001.manifest 000001.pack " \
	"000002.manifest recording.meta"

/* Same names, same bytes. */
static void assert_same_recording(const char *a, const char *b)
{
	char la[1024], lb[1024], pa[256], pb[256];
	char *save, *name;

	listing(a, la, sizeof(la));
	listing(b, lb, sizeof(lb));
	assert_string_equal(la, lb);
	for (name = strtok_r(la, " ", &save); name; name = strtok_r(NULL, " ", &save)) {
		size_t na, nb;
		uint8_t *da, *db;

		snprintf(pa, sizeof(pa), "%s/%s", a, name);
		snprintf(pb, sizeof(pb), "%s/%s", b, name);
		da = slurp(pa, &na);
		db = slurp(pb, &nb);
		assert_int_equal(na, nb);
		assert_memory_equal(da, db, na);
		free(da);
		free(db);
	}
}

static bool exists(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0;
}

/* Nothing but what the test made: no DIR, no DIR.import-*. */
static void assert_nothing_left(struct fixture *f, const char *also)
{
	char names[1024], want[256];

	assert_false(exists(f->out));
	listing(f->tmp, names, sizeof(names));
	snprintf(want, sizeof(want), "%s%srec", also ? also : "", also ? " " : "");
	assert_string_equal(names, want);
}

/* ---- round trips ------------------------------------------------------------------------- */

static void round_trip(struct fixture *f, const char *suffix)
{
	char listing_out[1024];

	snprintf(f->path, sizeof(f->path), "%s/rec%s", f->tmp, suffix);
	if (ckpt_archive__export(f->rec, f->path, NULL, err, sizeof(err)) != 0)
		fail_msg("export %s: %s", suffix, err);
	if (ckpt_archive__import(f->path, f->out, NULL, err, sizeof(err)) != 0)
		fail_msg("import %s: %s", suffix, err);
	listing(f->out, listing_out, sizeof(listing_out));
	assert_string_equal(listing_out, RECORDING_FILES);
	assert_same_recording(f->rec, f->out);
	/* Made like a recording, 0755 under the umask (022 here). */
	{
		struct stat sb;

		assert_int_equal(stat(f->out, &sb), 0);
		assert_int_equal(sb.st_mode & 07777, 0755);
	}
	/* The imported recording opens and reads. */
	{
		struct ckpt_store *st = ckpt_store__open(f->out, err, sizeof(err));
		struct ckpt_log *log;

		assert_non_null(st);
		assert_int_equal(ckpt_store__count(st), 3);
		assert_int_equal(ckpt_log__load(st, 1, &log, err, sizeof(err)), 0);
		assert_int_equal(ckpt_log__event(log, 0)->value, 1);
		ckpt_log__free(log);
		ckpt_store__close(st);
	}
	snprintf(listing_out, sizeof(listing_out), "rm -rf %s %s", f->out, f->path);
	assert_int_equal(system(listing_out), 0);
	/* No ARCHIVE.tmp stays behind. */
	assert_nothing_left(f, NULL);
}

static void test_round_trip_tar(void **state)
{
	round_trip(*state, ".tar");
}

static void test_round_trip_gz(void **state)
{
	round_trip(*state, ".tar.gz");
}

static void test_round_trip_xz(void **state)
{
	round_trip(*state, ".tar.xz");
}

static void test_round_trip_zst(void **state)
{
	round_trip(*state, ".tar.zst");
}

static void test_round_trip_lz4(void **state)
{
	round_trip(*state, ".tar.lz4");
}

/* The entry names of an archive, in order. */
static void archive_names(const char *path, char *out, size_t outlen)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;

	archive_read_support_filter_all(a);
	archive_read_support_format_all(a);
	assert_int_equal(archive_read_open_filename(a, path, 65536), ARCHIVE_OK);
	out[0] = '\0';
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		assert_int_equal(archive_entry_filetype(e), AE_IFREG);
		snprintf(out + strlen(out), outlen - strlen(out), "%s%s", out[0] ? " " : "",
			 archive_entry_pathname(e));
	}
	archive_read_free(a);
}

struct told {
	unsigned calls;
	uint64_t done, total;
	bool backwards;
};

static void tell(void *ctx, uint64_t done, uint64_t total)
{
	struct told *t = ctx;
	t->backwards |= t->calls && (done < t->done || total != t->total);
	t->calls++;
	t->done = done;
	t->total = total;
}

/* Progress: export counts every byte of the files it takes, up to their
 * sum; import the archive's bytes read, up to its size. */
static void test_progress(void **state)
{
	struct fixture *f = *state;
	struct told ex = { 0 }, im = { 0 };
	struct ckpt_progress pe = { .fn = tell, .ctx = &ex }, pi = { .fn = tell, .ctx = &im };
	struct stat sb;

	snprintf(f->path, sizeof(f->path), "%s/rec.tar.zst", f->tmp);
	assert_int_equal(ckpt_archive__export(f->rec, f->path, &pe, err, sizeof(err)), 0);
	assert_true(ex.calls >= 3 && !ex.backwards);
	assert_true(ex.done > 0 && ex.done == ex.total);
	assert_int_equal(ckpt_archive__import(f->path, f->out, &pi, err, sizeof(err)), 0);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_true(im.calls >= 3 && !im.backwards);
	assert_true(im.done > 0 && im.done <= im.total && im.total == (uint64_t)sb.st_size);
}

static void test_export_only_recording_files(void **state)
{
	struct fixture *f = *state;
	char names[1024];

	/* Leftovers of an interrupted commit and a stranger. */
	snprintf(f->path, sizeof(f->path), "%s/000003.manifest.tmp", f->rec);
	spill(f->path, "half", 4);
	snprintf(f->path, sizeof(f->path), "%s/000002.log.tmp", f->rec);
	spill(f->path, "half", 4);
	snprintf(f->path, sizeof(f->path), "%s/notes.txt", f->rec);
	spill(f->path, "mine", 4);
	snprintf(f->path, sizeof(f->path), "%s/rec.tar.gz", f->tmp);
	assert_int_equal(ckpt_archive__export(f->rec, f->path, NULL, err, sizeof(err)), 0);
	archive_names(f->path, names, sizeof(names));
	/* The last manifest leads (see test_import_refuses_cut_archive). */
	assert_string_equal(names, "000002.manifest recording.meta 000000.manifest 000000.pack "
			    "000000.log 000001.manifest 000001.pack 000001.log");
	/* And the import has exactly those. */
	assert_int_equal(ckpt_archive__import(f->path, f->out, NULL, err, sizeof(err)), 0);
	listing(f->out, names, sizeof(names));
	assert_string_equal(names, RECORDING_FILES);
}

static void test_export_errors(void **state)
{
	struct fixture *f = *state;

	snprintf(f->path, sizeof(f->path), "%s/rec.zip", f->tmp);
	assert_int_equal(ckpt_archive__export(f->rec, f->path, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "rec.zip: unknown archive suffix (use .tar, .tar.gz, "
			       ".tar.xz, .tar.zst or .tar.lz4)"));
	snprintf(f->path, sizeof(f->path), "%s/rec.tar.bz2", f->tmp);
	assert_int_equal(ckpt_archive__export(f->rec, f->path, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown archive suffix"));
	/* Not a recording. */
	snprintf(f->path, sizeof(f->path), "%s/x.tar", f->tmp);
	assert_int_equal(ckpt_archive__export(f->tmp, f->path, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "recording.meta"));
	/* Unwritable destination. */
	assert_int_equal(ckpt_archive__export(f->rec, "/nonexistent/dir/x.tar", NULL, err,
					      sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/dir/x.tar.tmp: No such file or directory"));
	assert_nothing_left(f, NULL);
}

/* ---- hostile and broken archives ------------------------------------------------------------ */

struct entry {
	const char *path;
	mode_t type;                /* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR */
	const void *data;
	size_t len;
	const char *link;           /* symlink target, or hardlink source */
	bool hardlink;
	bool sparse;                /* data at 0 and at 4096, a hole between */
};

/* A tar in memory with the given entries. */
static uint8_t *make_tar(const struct entry *ents, size_t n, size_t *len)
{
	size_t cap = 1 << 20, used = 0;
	uint8_t *buf = malloc(cap);
	struct archive *a = archive_write_new();

	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();

		archive_entry_set_pathname(e, ents[i].path);
		archive_entry_set_filetype(e, ents[i].type);
		archive_entry_set_perm(e, 0644);
		if (ents[i].type == AE_IFLNK)
			archive_entry_set_symlink(e, ents[i].link);
		if (ents[i].hardlink)
			archive_entry_set_hardlink(e, ents[i].link);
		if (ents[i].type == AE_IFREG && !ents[i].hardlink)
			archive_entry_set_size(e, (la_int64_t)ents[i].len);
		if (ents[i].sparse) {
			archive_entry_sparse_add_entry(e, 0, 1);
			archive_entry_sparse_add_entry(e, 4096, 1);
		}
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (ents[i].len && !ents[i].hardlink)
			assert_int_equal(archive_write_data(a, ents[i].data, ents[i].len),
					 (la_ssize_t)ents[i].len);
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	*len = used;
	return buf;
}

/* The recording's own files as entries, named with prefix, plus extra. */
struct rec_files {
	struct entry e[16];
	uint8_t *data[16];
	char names[16][64];
	size_t n;
};

static void load_rec(struct fixture *f, struct rec_files *r, const char *prefix)
{
	static const char *const files[] = { "recording.meta", "000000.manifest", "000000.pack",
		"000000.log", "000001.manifest", "000001.pack", "000001.log", "000002.manifest" };

	memset(r, 0, sizeof(*r));
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		size_t len;

		snprintf(f->path, sizeof(f->path), "%s/%s", f->rec, files[i]);
		r->data[i] = slurp(f->path, &len);
		snprintf(r->names[i], sizeof(r->names[i]), "%s%s", prefix, files[i]);
		r->e[i] = (struct entry){ .path = r->names[i], .type = AE_IFREG,
					  .data = r->data[i], .len = len };
	}
	r->n = sizeof(files) / sizeof(files[0]);
}

static void free_rec(struct rec_files *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->data[i]);
}

/* The recording with one more entry (at position `at`) must be refused
 * with `want` in the message, and leave nothing behind. */
static void refused_with(struct fixture *f, const struct entry *extra, size_t at,
			 const char *want)
{
	struct rec_files r;
	struct entry ents[17];
	size_t n = 0, len;
	uint8_t *tar;

	load_rec(f, &r, "");
	for (size_t i = 0; i <= r.n; i++) {
		if (i == at)
			ents[n++] = *extra;
		if (i < r.n)
			ents[n++] = r.e[i];
	}
	tar = make_tar(ents, n, &len);
	err[0] = '\0';
	assert_int_equal(ckpt_archive__import_memory(tar, len, f->out, err, sizeof(err)), -1);
	if (!strstr(err, want))
		fail_msg("expected '%s' in: %s", want, err);
	assert_nothing_left(f, NULL);
	/* The same from a file. */
	snprintf(f->path, sizeof(f->path), "%s/bad.tar", f->tmp);
	spill(f->path, tar, len);
	assert_int_equal(ckpt_archive__import(f->path, f->out, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "bad.tar: "));
	if (!strstr(err, want))
		fail_msg("expected '%s' in: %s", want, err);
	unlink(f->path);
	assert_nothing_left(f, NULL);
	free(tar);
	free_rec(&r);
}

static void test_import_refuses_paths(void **state)
{
	struct fixture *f = *state;
	const struct entry evil = { "../evil", AE_IFREG, "x", 1 };
	const struct entry evil2 = { "000000.log/../../evil", AE_IFREG, "x", 1 };
	const struct entry abs = { "/tmp/000009.log", AE_IFREG, "x", 1 };
	const struct entry unknown = { "notes.txt", AE_IFREG, "x", 1 };
	const struct entry tmpname = { "000003.log.tmp", AE_IFREG, "x", 1 };
	const struct entry shortname = { "00001.log", AE_IFREG, "x", 1 };
	const struct entry subdir = { "sub/000009.log", AE_IFREG, "x", 1 };
	const struct entry dir = { "sub/", AE_IFDIR };
	const struct entry dot = { ".", AE_IFREG, "x", 1 };
	const struct entry nested = { "rec/sub/", AE_IFDIR };
	const struct entry nested_file = { "rec/sub/000000.log", AE_IFREG, "x", 1 };

	refused_with(f, &evil, 3, "entry '../evil': path leaves the recording");
	refused_with(f, &evil2, 0, "entry '000000.log/../../evil': path leaves the recording");
	refused_with(f, &abs, 8, "entry '/tmp/000009.log': absolute path");
	refused_with(f, &unknown, 2, "entry 'notes.txt': not a recording file");
	refused_with(f, &tmpname, 2, "entry '000003.log.tmp': not a recording file");
	refused_with(f, &shortname, 2, "entry '00001.log': not a recording file");
	refused_with(f, &subdir, 4, "entry 'sub/000009.log': in a subdirectory (the archive's "
		     "other files are at its top)");
	refused_with(f, &subdir, 0, "entry 'recording.meta': outside the archive's top "
		     "directory 'sub'");
	refused_with(f, &nested, 0, "entry 'rec/sub/': a directory inside the recording");
	refused_with(f, &nested_file, 0, "entry 'rec/sub/000000.log': in a subdirectory of "
		     "the recording");
	refused_with(f, &dir, 1, "entry 'sub/': in a subdirectory");
	refused_with(f, &dot, 1, "entry '.': not a file name");
}

static void test_import_refuses_links(void **state)
{
	struct fixture *f = *state;
	const struct entry sym = { "000009.log", AE_IFLNK, .link = "/etc/passwd" };
	const struct entry hard = { "000009.log", AE_IFREG, .link = "recording.meta",
				    .hardlink = true };
	const struct entry chr = { "000009.log", AE_IFCHR };
	const struct entry fifo = { "000009.log", AE_IFIFO };
	static uint8_t holey[4097];
	const struct entry sparse = { "000009.log", AE_IFREG, holey, sizeof(holey),
				      .sparse = true };

	refused_with(f, &sym, 1, "entry '000009.log': a symbolic link (only regular files)");
	refused_with(f, &hard, 8, "entry '000009.log': a hard link (only regular files)");
	refused_with(f, &chr, 0, "entry '000009.log': a character device (only regular files)");
	refused_with(f, &fifo, 5, "entry '000009.log': a FIFO (only regular files)");
	holey[0] = holey[4096] = 1;
	refused_with(f, &sparse, 1, "entry '000009.log': a sparse file (only plain files)");
}

static void test_import_refuses_duplicates_and_missing(void **state)
{
	struct fixture *f = *state;
	const struct entry dup = { "000000.log", AE_IFREG, "x", 1 };
	struct rec_files r;
	uint8_t *tar;
	size_t len;

	const struct entry stray_pack = { "000005.pack", AE_IFREG, "x", 1 };
	const struct entry stray_log = { "000002.log", AE_IFREG, "x", 1 };

	refused_with(f, &dup, 8, "entry '000000.log': appears twice in the archive");
	refused_with(f, &stray_pack, 3, "entry '000005.pack': past the end of the recording, "
		     "which has 3 checkpoints (an incomplete archive, or checkpoints after a gap)");
	refused_with(f, &stray_log, 8, "entry '000002.log': past the end of the recording");
	/* No recording.meta: not a recording. */
	load_rec(f, &r, "");
	tar = make_tar(r.e + 1, r.n - 1, &len);
	assert_int_equal(ckpt_archive__import_memory(tar, len, f->out, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "archive in memory: not a recording: "));
	assert_non_null(strstr(err, "recording.meta"));
	assert_nothing_left(f, NULL);
	free(tar);
	free_rec(&r);
}

/* A damaged pack is found by verify, and nothing is created. */
static void test_import_refuses_corrupt_pack(void **state)
{
	struct fixture *f = *state;
	struct rec_files r;
	uint8_t *tar;
	size_t len;

	load_rec(f, &r, "");
	assert_string_equal(r.names[2], "000000.pack");
	r.data[2][r.e[2].len - 100] ^= 0x40;
	tar = make_tar(r.e, r.n, &len);
	assert_int_equal(ckpt_archive__import_memory(tar, len, f->out, err, sizeof(err)), -1);
	if (!strstr(err, "archive in memory: the recording does not verify ("))
		fail_msg("unexpected: %s", err);
	assert_non_null(strstr(err, "000000.pack"));
	assert_nothing_left(f, NULL);
	free(tar);
	/* A truncated log likewise. */
	r.data[2][r.e[2].len - 100] ^= 0x40;
	assert_string_equal(r.names[6], "000001.log");
	r.e[6].len -= 3;
	tar = make_tar(r.e, r.n, &len);
	assert_int_equal(ckpt_archive__import_memory(tar, len, f->out, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "000001.log: truncated"));
	assert_nothing_left(f, NULL);
	free(tar);
	free_rec(&r);
}

/* A plain tar cut at an entry boundary reads as a complete smaller
 * archive: every such cut must still be refused. */
static void test_import_refuses_cut_archive(void **state)
{
	struct fixture *f = *state;
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	la_int64_t cuts[16];
	size_t ncuts = 0, len;
	uint8_t *tar;

	snprintf(f->path, sizeof(f->path), "%s/rec.tar", f->tmp);
	assert_int_equal(ckpt_archive__export(f->rec, f->path, NULL, err, sizeof(err)), 0);
	tar = slurp(f->path, &len);
	unlink(f->path);
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_memory(a, tar, len), ARCHIVE_OK);
	while (archive_read_next_header(a, &e) == ARCHIVE_OK && ncuts < 16)
		cuts[ncuts++] = archive_read_header_position(a);
	archive_read_free(a);
	assert_int_equal(ncuts, 8);
	for (size_t i = 1; i < ncuts; i++) {
		err[0] = '\0';
		assert_int_equal(ckpt_archive__import_memory(tar, (size_t)cuts[i], f->out, err,
							     sizeof(err)), -1);
		assert_true(strstr(err, "not a recording") || strstr(err, "past the end") ||
			    strstr(err, "does not verify"));
		assert_nothing_left(f, NULL);
	}
	/* Cut in the zero blocks that end the archive: every file is there. */
	assert_int_equal(ckpt_archive__import_memory(tar, len - 1024, f->out, err, sizeof(err)),
			 0);
	assert_same_recording(f->rec, f->out);
	free(tar);
}

/* ustar header claiming a huge entry, then nothing: refused by its size
 * before any data is read. */
static void test_import_refuses_huge_entry(void **state)
{
	struct fixture *f = *state;
	uint8_t tar[1024];
	unsigned sum = 0;

	memset(tar, 0, sizeof(tar));
	strcpy((char *)tar, "000000.log");
	memcpy(tar + 100, "0000644", 8);
	memcpy(tar + 108, "0000000", 8);
	memcpy(tar + 116, "0000000", 8);
	memcpy(tar + 124, "77777777777", 12);    /* 8 GiB - 1 */
	memcpy(tar + 136, "00000000000", 12);
	tar[156] = '0';
	memcpy(tar + 257, "ustar", 6);
	memcpy(tar + 263, "00", 2);
	memset(tar + 148, ' ', 8);
	for (int i = 0; i < 512; i++)
		sum += tar[i];
	snprintf((char *)tar + 148, 8, "%06o", sum);
	assert_int_equal(ckpt_archive__import_memory(tar, sizeof(tar), f->out, err,
						     sizeof(err)), -1);
	if (!strstr(err, "entry '000000.log': 8589934591 bytes, larger than the "
		    "4294967296-byte limit"))
		fail_msg("unexpected: %s", err);
	assert_nothing_left(f, NULL);
}

static void test_import_garbage(void **state)
{
	struct fixture *f = *state;
	uint8_t junk[4096];
	size_t len;
	void *tar;

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 31 + 7);
	assert_int_equal(ckpt_archive__import_memory(junk, sizeof(junk), f->out, err,
						     sizeof(err)), -1);
	assert_non_null(strstr(err, "archive in memory: "));
	assert_nothing_left(f, NULL);
	assert_int_equal(ckpt_archive__import_memory(junk, 0, f->out, err, sizeof(err)), -1);
	assert_nothing_left(f, NULL);
	/* A valid archive cut short. */
	snprintf(f->path, sizeof(f->path), "%s/rec.tar.gz", f->tmp);
	assert_int_equal(ckpt_archive__export(f->rec, f->path, NULL, err, sizeof(err)), 0);
	tar = slurp(f->path, &len);
	unlink(f->path);
	for (size_t cut = 0; cut < len; cut += len / 7 + 1) {
		assert_int_equal(ckpt_archive__import_memory(tar, cut, f->out, err, sizeof(err)),
				 -1);
		assert_nothing_left(f, NULL);
	}
	free(tar);
	/* Missing archive file. */
	snprintf(f->path, sizeof(f->path), "%s/none.tar", f->tmp);
	assert_int_equal(ckpt_archive__import(f->path, f->out, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "none.tar"));
	assert_nothing_left(f, NULL);
}

static void test_import_into_existing(void **state)
{
	struct fixture *f = *state;
	char names[256];

	snprintf(f->path, sizeof(f->path), "%s/rec.tar", f->tmp);
	assert_int_equal(ckpt_archive__export(f->rec, f->path, NULL, err, sizeof(err)), 0);
	assert_int_equal(mkdir(f->out, 0755), 0);
	assert_int_equal(ckpt_archive__import(f->path, f->out, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "imported: already exists"));
	listing(f->out, names, sizeof(names));
	assert_string_equal(names, "");
	assert_int_equal(rmdir(f->out), 0);
	/* Into a directory whose parent is missing. */
	snprintf(names, sizeof(names), "%s/no/such", f->tmp);
	assert_int_equal(ckpt_archive__import(f->path, names, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no/such.import-"));
	unlink(f->path);
	assert_nothing_left(f, NULL);
}

/* Archives made by hand: one top directory, "./" names. */
static void test_import_top_directory(void **state)
{
	struct fixture *f = *state;
	struct rec_files r;
	struct entry ents[17];
	uint8_t *tar;
	size_t len;
	char cmd[256];

	load_rec(f, &r, "rec/");
	ents[0] = (struct entry){ "rec/", AE_IFDIR };
	memcpy(ents + 1, r.e, r.n * sizeof(r.e[0]));
	tar = make_tar(ents, r.n + 1, &len);
	if (ckpt_archive__import_memory(tar, len, f->out, err, sizeof(err)) != 0)
		fail_msg("import: %s", err);
	assert_same_recording(f->rec, f->out);
	free(tar);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->out);
	assert_int_equal(system(cmd), 0);
	/* Two top directories. */
	strcpy(r.names[5], "other/000001.pack");
	tar = make_tar(ents, r.n + 1, &len);
	assert_int_equal(ckpt_archive__import_memory(tar, len, f->out, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "entry 'other/000001.pack': outside the archive's top "
			       "directory 'rec'"));
	assert_nothing_left(f, NULL);
	free(tar);
	free_rec(&r);

	load_rec(f, &r, "./");
	ents[0] = (struct entry){ "./", AE_IFDIR };
	memcpy(ents + 1, r.e, r.n * sizeof(r.e[0]));
	tar = make_tar(ents, r.n + 1, &len);
	if (ckpt_archive__import_memory(tar, len, f->out, err, sizeof(err)) != 0)
		fail_msg("import: %s", err);
	assert_same_recording(f->rec, f->out);
	free(tar);
	free_rec(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_round_trip_tar),
		T(test_round_trip_gz),
		T(test_round_trip_xz),
		T(test_round_trip_zst),
		T(test_round_trip_lz4),
		T(test_export_only_recording_files),
		T(test_progress),
		T(test_export_errors),
		T(test_import_refuses_paths),
		T(test_import_refuses_links),
		T(test_import_refuses_duplicates_and_missing),
		T(test_import_refuses_corrupt_pack),
		T(test_import_refuses_cut_archive),
		T(test_import_refuses_huge_entry),
		T(test_import_garbage),
		T(test_import_into_existing),
		T(test_import_top_directory),
#undef T
	};

	umask(022);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
