/* Export and import of a whole recording as one tar archive, through
 * libarchive.
 *
 * Export writes recording.meta, then per checkpoint its manifest, pack and
 * the log of the interval that follows it, flat (no directory prefix), to
 * ARCHIVE.tmp, and renames it. Import trusts nothing in the archive: it
 * extracts only regular files with the names a recording uses into a fresh
 * sibling directory DIR.import-XXXXXX, opens and verifies that as a
 * recording, and only then renames it to DIR. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "store-priv.h"

#define ARCHIVE_BLOCK (1u << 20)
/* The largest entry import accepts. A pack holds at most the guest's RAM
 * (plus a few percent of record headers), the other files far less; a
 * larger size claim is a broken or hostile archive, refused before it
 * fills the disk. */
#define IMPORT_MAX_PACK (1ull << 40)
#define IMPORT_MAX_OTHER (4ull << 30)

/* ---- export ---------------------------------------------------------------------- */

struct compression {
	const char *suffix;
	const char *name;           /* for messages */
	int (*add)(struct archive *);
};

static const struct compression compressions[] = {
	{ ".tar", "none", archive_write_add_filter_none },
	{ ".tar.gz", "gzip", archive_write_add_filter_gzip },
	{ ".tar.xz", "xz", archive_write_add_filter_xz },
	{ ".tar.zst", "zstd", archive_write_add_filter_zstd },
	{ ".tar.lz4", "lz4", archive_write_add_filter_lz4 },
};

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && strcmp(s + n - m, suffix) == 0;
}

static const struct compression *compression_for(const char *path)
{
	const struct compression *best = NULL;

	/* ".tar" is a suffix of none of the others, but check every one and
	 * keep the longest so that the order of the table does not matter. */
	for (size_t i = 0; i < sizeof(compressions) / sizeof(compressions[0]); i++)
		if (ends_with(path, compressions[i].suffix) &&
		    (!best || strlen(compressions[i].suffix) > strlen(best->suffix)))
			best = &compressions[i];
	return best;
}

/* Appends one file of the recording, streamed in blocks (packs are as
 * large as guest RAM). */
static int export_file(struct archive *a, int dirfd, const char *name, const char *archive,
		       void *block, const struct ckpt_progress *progress, uint64_t *done,
		       uint64_t total, char *err, size_t errlen)
{
	struct archive_entry *e;
	struct stat sb;
	int fd, rc = -1;
	uint64_t left;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return ckpt__errf(err, errlen, "%s: open: %s", name, strerror(errno));
	if (ckpt_file__stat_regular(fd, name, &sb, err, errlen) != 0)
		return -1;
	e = archive_entry_new();
	if (!e) {
		close(fd);
		return ckpt__errf(err, errlen, "%s: out of memory", archive);
	}
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, sb.st_size);
	archive_entry_set_mtime(e, sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec);
	if (archive_write_header(a, e) != ARCHIVE_OK) {
		ckpt__errf(err, errlen, "%s: %s: %s", archive, name, archive_error_string(a));
		goto out;
	}
	for (left = (uint64_t)sb.st_size; left;) {
		size_t want = left < ARCHIVE_BLOCK ? (size_t)left : ARCHIVE_BLOCK;
		ssize_t n = read(fd, block, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ckpt__errf(err, errlen, "%s: read: %s", name,
				   n < 0 ? strerror(errno) : "file shrank while being exported");
			goto out;
		}
		if (archive_write_data(a, block, (size_t)n) != n) {
			ckpt__errf(err, errlen, "%s: %s: %s", archive, name, archive_error_string(a));
			goto out;
		}
		left -= (uint64_t)n;
		*done += (uint64_t)n;
		if (progress)
			progress->fn(progress->ctx, *done, total);
	}
	rc = 0;
out:
	archive_entry_free(e);
	close(fd);
	return rc;
}

static bool file_exists(int dirfd, const char *name)
{
	struct stat sb;

	return fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Every file of the recording in st: the last checkpoint's manifest first,
 * then recording.meta, then per checkpoint its manifest, its pack (absent
 * when it stored no page) and the log of the interval after it. Files past
 * the last checkpoint (a gap, an interrupted commit) are not part of the
 * recording and stay behind.
 *
 * Why the last manifest leads: a tar cut at an entry boundary reads like a
 * complete smaller archive. Cut anywhere after that first entry, either
 * recording.meta is missing, or the last manifest is present with an
 * earlier file gone, which import notices (a manifest past a gap, or a
 * missing pack or log that verify reports). */
static int export_files(struct archive *a, struct ckpt_store *st, const char *archive,
			const struct ckpt_progress *progress, char *err, size_t errlen)
{
	uint32_t count = ckpt_store__count(st);
	size_t n = 0;
	char (*names)[CKPT_NAME_MAX] = calloc(3 * (size_t)count + 2, sizeof(*names));
	void *block = malloc(ARCHIVE_BLOCK);
	uint64_t done = 0, total = 0;
	int rc = -1;

	if (!names || !block) {
		ckpt__errf(err, errlen, "%s: out of memory", archive);
		goto out;
	}
	if (count)
		ckpt_file__name(names[n++], count - 1, "manifest");
	snprintf(names[n++], CKPT_NAME_MAX, "%s", CKPT_META_NAME);
	for (uint32_t k = 0; k < count; k++) {
		if (k + 1 < count)
			ckpt_file__name(names[n++], k, "manifest");
		ckpt_file__name(names[n], k, "pack");
		if (file_exists(st->dirfd, names[n]))
			n++;
		if (k + 1 < count)
			ckpt_file__name(names[n++], k, "log");
	}
	for (size_t i = 0; progress && i < n; i++) {
		struct stat sb;
		if (fstatat(st->dirfd, names[i], &sb, AT_SYMLINK_NOFOLLOW) == 0)
			total += (uint64_t)sb.st_size;
	}
	for (size_t i = 0; i < n; i++)
		if (export_file(a, st->dirfd, names[i], archive, block, progress, &done, total, err,
				errlen) < 0)
			goto out;
	rc = 0;
out:
	free(block);
	free(names);
	return rc;
}

/* A writer for the suffix's compression, on fd. */
static struct archive *writer_open(const char *archive, int fd, char *err, size_t errlen)
{
	const struct compression *c = compression_for(archive);
	struct archive *a;
	int r;

	if (!c) {
		ckpt__errf(err, errlen, "%s: unknown archive suffix (use .tar, .tar.gz, .tar.xz, "
			   ".tar.zst or .tar.lz4)", archive);
		return NULL;
	}
	a = archive_write_new();
	if (!a) {
		ckpt__errf(err, errlen, "%s: out of memory", archive);
		return NULL;
	}
	/* pax: no 8 GiB size limit on a pack, no 100-byte name limit. */
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK) {
		ckpt__errf(err, errlen, "%s: tar format: %s", archive, archive_error_string(a));
		goto fail;
	}
	/* Anything but OK means this libarchive was built without the
	 * compressor (WARN: it would run an external program instead). */
	r = c->add(a);
	if (r != ARCHIVE_OK) {
		ckpt__errf(err, errlen, "%s: this libarchive (%s) cannot write %s compression%s%s",
			   archive, archive_version_details(), c->name,
			   archive_error_string(a) ? ": " : "",
			   archive_error_string(a) ? archive_error_string(a) : "");
		goto fail;
	}
	/* Compressed output needs no padding to a whole tar block. */
	if (strcmp(c->name, "none") != 0)
		archive_write_set_bytes_in_last_block(a, 1);
	if (archive_write_open_fd(a, fd) != ARCHIVE_OK) {
		ckpt__errf(err, errlen, "%s: %s", archive, archive_error_string(a));
		goto fail;
	}
	return a;
fail:
	archive_write_free(a);
	return NULL;
}

int ckpt_archive__export(const char *dir, const char *archive,
			 const struct ckpt_progress *progress, char *err, size_t errlen)
{
	struct ckpt_store *st;
	struct archive *a = NULL;
	char *tmp = NULL;
	int fd = -1, rc = -1;

	if (!compression_for(archive))
		return ckpt__errf(err, errlen, "%s: unknown archive suffix (use .tar, .tar.gz, "
				  ".tar.xz, .tar.zst or .tar.lz4)", archive);
	st = ckpt_store__open(dir, err, errlen);
	if (!st)
		return -1;
	if (asprintf(&tmp, "%s.tmp", archive) < 0) {
		tmp = NULL;
		ckpt__errf(err, errlen, "%s: out of memory", archive);
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ckpt__errf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	a = writer_open(archive, fd, err, errlen);
	if (!a || export_files(a, st, archive, progress, err, errlen) < 0)
		goto out;
	if (archive_write_close(a) != ARCHIVE_OK) {
		ckpt__errf(err, errlen, "%s: %s", archive, archive_error_string(a));
		goto out;
	}
	/* The archive is complete on disk before it gets its name. */
	if (fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		ckpt__errf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, archive) < 0) {
		ckpt__errf(err, errlen, "%s: rename from %s: %s", archive, tmp, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (a)
		archive_write_free(a);
	if (fd >= 0)
		close(fd);
	if (rc < 0 && tmp)
		unlink(tmp);
	free(tmp);
	ckpt_store__close(st);
	return rc;
}

/* ---- import ------------------------------------------------------------------------ */

struct import {
	const char *what;           /* the archive, for messages */
	const char *dir;
	char *tmp;                  /* DIR.import-XXXXXX, NULL until made */
	int tmpfd;
	char top[NAME_MAX + 1];     /* the archive's top directory, "" if flat */
	bool top_known;
	char *err;
	size_t errlen;
	const struct ckpt_progress *progress;
	uint64_t total;             /* the archive's bytes, 0 if unknown */
};

static int import_fail(struct import *im, const char *entry, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int import_fail(struct import *im, const char *entry, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (entry)
		return ckpt__errf(im->err, im->errlen, "%s: entry '%s': %s", im->what, entry, why);
	return ckpt__errf(im->err, im->errlen, "%s: %s", im->what, why);
}

/* recording.meta, or N digits (N >= 6, as "%06u" prints) and an extension
 * a recording uses. Returns the size bound for the file, 0 if unknown. */
static uint64_t recording_file_limit(const char *name)
{
	size_t digits = strspn(name, "0123456789");
	const char *ext = name + digits;

	if (strcmp(name, CKPT_META_NAME) == 0)
		return IMPORT_MAX_OTHER;
	if (digits < 6 || digits > 10 || *ext != '.')
		return 0;
	if (strcmp(ext, ".pack") == 0)
		return IMPORT_MAX_PACK;
	if (strcmp(ext, ".manifest") == 0 || strcmp(ext, ".log") == 0)
		return IMPORT_MAX_OTHER;
	return 0;
}

static const char *type_name(mode_t type)
{
	switch (type) {
	case AE_IFLNK: return "a symbolic link";
	case AE_IFCHR: return "a character device";
	case AE_IFBLK: return "a block device";
	case AE_IFIFO: return "a FIFO";
	case AE_IFSOCK: return "a socket";
	case AE_IFDIR: return "a directory";
	}
	return "not a regular file";
}

/* The archive's files sit either at its top ("recording.meta") or in one
 * top directory ("rec/recording.meta"), the same for every entry. */
static int set_top(struct import *im, const char *path, const char *top, size_t len)
{
	if (len > NAME_MAX)
		return import_fail(im, path, "name too long");
	if (!im->top_known) {
		memcpy(im->top, top, len);
		im->top[len] = '\0';
		im->top_known = true;
		return 0;
	}
	if (strlen(im->top) == len && memcmp(im->top, top, len) == 0)
		return 0;
	if (im->top[0])
		return import_fail(im, path, "outside the archive's top directory '%s'", im->top);
	return import_fail(im, path, "in a subdirectory (the archive's other files are at its top)");
}

/* Splits path into the archive's top directory (if any) and the file name,
 * refusing anything that would land elsewhere than directly in DIR. *name
 * is NULL for the entry of the top directory itself. */
static int entry_name(struct import *im, const char *path, bool is_dir, const char **name)
{
	const char *p = path, *slash, *rest;

	*name = NULL;
	if (!*path)
		return import_fail(im, path, "empty name");
	if (path[0] == '/')
		return import_fail(im, path, "absolute path");
	/* ".." as any component leaves the directory. */
	for (const char *c = path; c; c = slash ? slash + 1 : NULL) {
		slash = strchr(c, '/');
		if ((slash ? (size_t)(slash - c) : strlen(c)) == 2 && c[0] == '.' && c[1] == '.')
			return import_fail(im, path, "path leaves the recording (\"..\")");
	}
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	if (!*p || strcmp(p, ".") == 0)
		return is_dir ? 0 : import_fail(im, path, "not a file name");
	slash = strchr(p, '/');
	if (!slash) {
		/* "rec" as a directory is the top; as a file, a flat archive's. */
		if (is_dir)
			return set_top(im, path, p, strlen(p));
		if (set_top(im, path, "", 0) < 0)
			return -1;
		*name = p;
		return 0;
	}
	rest = slash + 1;
	if (is_dir && *rest)
		return import_fail(im, path, "a directory inside the recording (a recording has none)");
	if (strchr(rest, '/'))
		return import_fail(im, path, "in a subdirectory of the recording");
	if (set_top(im, path, p, (size_t)(slash - p)) < 0)
		return -1;
	if (!is_dir)
		*name = rest;
	return 0;
}

static int write_all(struct import *im, int fd, const char *name, const void *data, size_t n,
		     int64_t off)
{
	const uint8_t *p = data;

	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return import_fail(im, name, "write: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

static int extract_data(struct import *im, struct archive *a, int fd, const char *path,
			uint64_t limit)
{
	uint64_t end = 0;

	for (;;) {
		const void *block;
		size_t n;
		int64_t off;
		int r = archive_read_data_block(a, &block, &n, &off);

		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK)
			return import_fail(im, path, "%s", archive_error_string(a));
		/* Sparse entries are refused, so the data comes in one piece
		 * after another; and never beyond the bound, whatever the
		 * header claimed. */
		if (off < 0 || (uint64_t)off != end)
			return import_fail(im, path, "data with holes (only plain files)");
		if (n > limit - end)
			return import_fail(im, path, "data beyond the %" PRIu64 "-byte limit",
					   limit);
		if (write_all(im, fd, path, block, n, off) < 0)
			return -1;
		end += n;
	}
	if (fsync(fd) < 0)
		return import_fail(im, path, "fsync: %s", strerror(errno));
	return 0;
}

/* Refuses early what would fill the disk (the extraction would fail at
 * the end anyway, having filled it); -1: not enough room. */
static int room_for(struct import *im, int64_t size)
{
	struct statvfs sv;

	if (fstatvfs(im->tmpfd, &sv) < 0)
		return 0; /* unknown: the writes will tell */
	return (uint64_t)size > (uint64_t)sv.f_bavail * sv.f_frsize ? -1 : 0;
}

static int extract_entry(struct import *im, struct archive *a, struct archive_entry *e)
{
	const char *path = archive_entry_pathname(e), *name;
	mode_t type = archive_entry_filetype(e);
	uint64_t limit;
	int fd, rc;

	if (!path)
		return import_fail(im, NULL, "an entry without a name");
	if (archive_entry_hardlink(e))
		return import_fail(im, path, "a hard link (only regular files)");
	if (type != AE_IFREG && type != AE_IFDIR)
		return import_fail(im, path, "%s (only regular files)", type_name(type));
	if (entry_name(im, path, type == AE_IFDIR, &name) < 0)
		return -1;
	if (!name)
		return 0;
	limit = recording_file_limit(name);
	if (!limit)
		return import_fail(im, path, "not a recording file (expected recording.meta or "
				   "NNNNNN.manifest, .pack or .log)");
	if (archive_entry_size_is_set(e) && archive_entry_size(e) < 0)
		return import_fail(im, path, "negative size");
	if (archive_entry_size_is_set(e) && (uint64_t)archive_entry_size(e) > limit)
		return import_fail(im, path, "%" PRId64 " bytes, larger than the %" PRIu64
				   "-byte limit", archive_entry_size(e), limit);
	if (archive_entry_sparse_count(e) > 0)
		return import_fail(im, path, "a sparse file (only plain files)");
	if (archive_entry_size_is_set(e) && room_for(im, archive_entry_size(e)) < 0)
		return import_fail(im, path, "%" PRId64 " bytes, more than the file system "
				   "has free", archive_entry_size(e));
	fd = openat(im->tmpfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return import_fail(im, path, errno == EEXIST ? "appears twice in the archive" :
				   "create: %s", strerror(errno));
	rc = extract_data(im, a, fd, path, limit);
	if (close(fd) < 0 && rc == 0)
		rc = import_fail(im, path, "close: %s", strerror(errno));
	return rc;
}

static struct archive *reader_new(void)
{
	struct archive *a = archive_read_new();

	if (!a)
		return NULL;
	/* Only what export writes: no external decompression programs, no
	 * other archive formats. */
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_xz(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_lz4(a);
	archive_read_support_format_tar(a);
	return a;
}

static int extract_all(struct import *im, struct archive *a)
{
	struct archive_entry *e;
	int r;

	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		if (extract_entry(im, a, e) < 0)
			return -1;
		if (im->progress) /* the archive's bytes read, compressed */
			im->progress->fn(im->progress->ctx, (uint64_t)archive_filter_bytes(a, -1),
					 im->total);
	}
	if (r != ARCHIVE_EOF)
		return import_fail(im, NULL, "%s", archive_error_string(a) ?
				   archive_error_string(a) : "not a readable tar archive");
	return 0;
}

/* Removes the temporary directory and the files extraction put in it (no
 * subdirectories: extraction never makes any). */
static void remove_tmp(struct import *im)
{
	DIR *d;
	struct dirent *e;

	if (!im->tmp)
		return;
	d = fdopendir(im->tmpfd);
	if (d) {
		rewinddir(d); /* check_strays read through a dup of the descriptor */
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				unlinkat(im->tmpfd, e->d_name, 0);
		closedir(d); /* closes tmpfd */
	} else {
		close(im->tmpfd);
	}
	im->tmpfd = -1;
	rmdir(im->tmp);
}

struct verify_first {
	char line[512];
};

static void verify_report(void *opaque, const char *problem)
{
	struct verify_first *v = opaque;

	if (!v->line[0])
		snprintf(v->line, sizeof(v->line), "%s", problem);
}

/* A file the recording does not reach: checkpoint files past its last
 * checkpoint, or a log past its last interval. Open ends a recording at a
 * gap, so these are what is left of a cut archive (or a hand-made one with
 * files after a gap); importing them as a shorter recording would hide
 * that. */
static int check_strays(struct import *im, uint32_t count)
{
	DIR *d;
	struct dirent *e;
	int fd = dup(im->tmpfd), rc = 0;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return import_fail(im, NULL, "%s: %s", im->tmp, strerror(errno));
	}
	rewinddir(d);
	while (rc == 0 && (e = readdir(d))) {
		char *ext;
		unsigned long k = strtoul(e->d_name, &ext, 10);

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		if (strcmp(ext, ".log") == 0 ? k + 1 >= count : k >= count)
			rc = import_fail(im, e->d_name, "past the end of the recording, which has %"
					 PRIu32 " checkpoint%s (an incomplete archive, or checkpoints "
					 "after a gap)", count, count == 1 ? "" : "s");
	}
	closedir(d);
	return rc;
}

static int verify_tmp(struct import *im)
{
	struct verify_first v = { .line = "" };
	char why[512];
	struct ckpt_store *st;
	long problems;

	st = ckpt_store__open(im->tmp, why, sizeof(why));
	if (!st)
		return import_fail(im, NULL, "not a recording: %s", why);
	if (check_strays(im, ckpt_store__count(st)) < 0) {
		ckpt_store__close(st);
		return -1;
	}
	problems = ckpt_store__verify(st, verify_report, &v, why, sizeof(why));
	ckpt_store__close(st);
	if (problems < 0)
		return import_fail(im, NULL, "verify: %s", why);
	if (problems > 0)
		return import_fail(im, NULL, "the recording does not verify (%ld problem%s, the "
				   "first: %s)", problems, problems == 1 ? "" : "s", v.line);
	return 0;
}

static int make_tmp(struct import *im)
{
	size_t n = strlen(im->dir);

	static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	int tries = 0;

	/* "rec/" and "rec" are the same directory; the sibling is "rec.import-". */
	while (n > 1 && im->dir[n - 1] == '/')
		n--;
	if (asprintf(&im->tmp, "%.*s.import-XXXXXX", (int)n, im->dir) < 0) {
		im->tmp = NULL;
		return import_fail(im, NULL, "out of memory");
	}
	/* mkdtemp's, but with mode 0755 under the umask like a recording made
	 * by ckpt_store__create (mkdtemp's 0700 would stay after the rename). */
	for (;;) {
		char *x = im->tmp + strlen(im->tmp) - 6;
		uint8_t r[6];

		if (getentropy(r, sizeof(r)) < 0) {
			/* No getrandom(): pid and attempt still vary the name. */
			uint64_t v = ((uint64_t)getpid() << 8 | (unsigned)tries) *
				     0x9e3779b97f4a7c15ull;

			memcpy(r, &v, sizeof(r));
		}
		for (int i = 0; i < 6; i++)
			x[i] = chars[r[i] % (sizeof(chars) - 1)];
		if (mkdir(im->tmp, 0755) == 0)
			break;
		if (errno != EEXIST || ++tries == 100) {
			import_fail(im, NULL, "%s: %s", im->tmp, strerror(errno));
			free(im->tmp);
			im->tmp = NULL;
			return -1;
		}
	}
	im->tmpfd = open(im->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (im->tmpfd < 0) {
		import_fail(im, NULL, "%s: %s", im->tmp, strerror(errno));
		rmdir(im->tmp);
		free(im->tmp);
		im->tmp = NULL;
		return -1;
	}
	return 0;
}

/* Publishes the verified directory as DIR, never over anything. */
static int publish(struct import *im)
{
	if (fsync(im->tmpfd) < 0)
		return import_fail(im, NULL, "%s: fsync: %s", im->tmp, strerror(errno));
	if (renameat2(AT_FDCWD, im->tmp, AT_FDCWD, im->dir, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return import_fail(im, NULL, "%s: rename from %s: %s", im->dir, im->tmp,
				   strerror(errno));
	/* A file system without RENAME_NOREPLACE: rename() would replace an
	 * empty directory made since the check, so look once more. */
	if (access(im->dir, F_OK) == 0)
		return import_fail(im, NULL, "%s: already exists", im->dir);
	if (rename(im->tmp, im->dir) < 0)
		return import_fail(im, NULL, "%s: rename from %s: %s", im->dir, im->tmp,
				   strerror(errno));
	return 0;
}

/* The common part of both imports; `a` is opened on the archive. */
static int import_run(struct import *im, struct archive *a)
{
	int rc = -1;

	if (make_tmp(im) < 0)
		return -1;
	if (extract_all(im, a) == 0 && verify_tmp(im) == 0 && publish(im) == 0) {
		close(im->tmpfd);
		rc = 0;
	} else {
		remove_tmp(im);
	}
	free(im->tmp);
	im->tmp = NULL;
	return rc;
}

static int check_dir_absent(const char *dir, char *err, size_t errlen)
{
	struct stat sb;

	if (lstat(dir, &sb) == 0)
		return ckpt__errf(err, errlen, "%s: already exists (import makes a new directory)",
				  dir);
	if (errno != ENOENT)
		return ckpt__errf(err, errlen, "%s: %s", dir, strerror(errno));
	return 0;
}

int ckpt_archive__import(const char *archive, const char *dir,
			 const struct ckpt_progress *progress, char *err, size_t errlen)
{
	struct import im = { .what = archive, .dir = dir, .tmpfd = -1, .err = err,
			     .errlen = errlen, .progress = progress };
	struct archive *a;
	struct stat sb;
	int rc = -1;

	if (stat(archive, &sb) == 0 && S_ISREG(sb.st_mode))
		im.total = (uint64_t)sb.st_size;

	if (check_dir_absent(dir, err, errlen) < 0)
		return -1;
	a = reader_new();
	if (!a)
		return ckpt__errf(err, errlen, "%s: out of memory", archive);
	if (archive_read_open_filename(a, archive, ARCHIVE_BLOCK) != ARCHIVE_OK)
		ckpt__errf(err, errlen, "%s: %s", archive, archive_error_string(a));
	else
		rc = import_run(&im, a);
	archive_read_free(a);
	return rc;
}

int ckpt_archive__import_memory(const void *buf, size_t len, const char *dir, char *err,
				size_t errlen)
{
	struct import im = { .what = "archive in memory", .dir = dir, .tmpfd = -1, .err = err,
			     .errlen = errlen };
	struct archive *a;
	int rc = -1;

	if (check_dir_absent(dir, err, errlen) < 0)
		return -1;
	a = reader_new();
	if (!a)
		return ckpt__errf(err, errlen, "%s: out of memory", im.what);
	if (archive_read_open_memory(a, buf, len) != ARCHIVE_OK)
		ckpt__errf(err, errlen, "%s: %s", im.what, archive_error_string(a));
	else
		rc = import_run(&im, a);
	archive_read_free(a);
	return rc;
}
