/* The recording directory: recording.meta (the envelope around a JSON
 * object), creation, opening, and which checkpoints exist. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "store-priv.h"

static void info_free(struct ckpt_info *info)
{
	free((char *)info->mode);
	free((char *)info->cpu_model);
	free((char *)info->config_path);
	free((char *)info->config_text);
	free((char *)info->created_by);
	memset(info, 0, sizeof(*info));
}

static int dup_str(const char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -1;
}

static int info_copy(struct ckpt_info *dst, const struct ckpt_info *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->memory_bytes = src->memory_bytes;
	dst->interval_ns = src->interval_ns;
	if (dup_str(&dst->mode, src->mode) || dup_str(&dst->cpu_model, src->cpu_model) ||
	    dup_str(&dst->config_path, src->config_path) ||
	    dup_str(&dst->config_text, src->config_text) ||
	    dup_str(&dst->created_by, src->created_by)) {
		info_free(dst);
		return -1;
	}
	return 0;
}

static struct ckpt_store *store_new(const char *dir, int dirfd)
{
	struct ckpt_store *st = calloc(1, sizeof(*st));
	uint8_t *zero;

	if (!st)
		return NULL;
	st->dir = strdup(dir);
	zero = calloc(1, CKPT_PAGE_SIZE);
	if (!st->dir || !zero) {
		free(st->dir);
		free(st);
		free(zero);
		return NULL;
	}
	st->zero_hash = ckpt_hash__page(zero);
	free(zero);
	st->dirfd = dirfd;
	pthread_mutex_init(&st->fd_lock, NULL);
	return st;
}

void ckpt_store__close(struct ckpt_store *st)
{
	if (!st)
		return;
	if (st->txn)
		ckpt_txn__abort(st->txn);
	ckpt_pack__close_all(st);
	pthread_mutex_destroy(&st->fd_lock);
	ckpt_index__free(&st->index);
	info_free(&st->info);
	if (st->dirfd >= 0)
		close(st->dirfd);
	free(st->dir);
	free(st);
}

const struct ckpt_info *ckpt_store__info(const struct ckpt_store *st)
{
	return &st->info;
}

uint32_t ckpt_store__count(const struct ckpt_store *st)
{
	return st->count;
}

const char *ckpt_store__dir(const struct ckpt_store *st)
{
	return st->dir;
}

/* ---- recording.meta ----------------------------------------------------------- */

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static int meta_write(struct ckpt_store *st, char *err, size_t errlen)
{
	const struct ckpt_info *in = &st->info;
	json_t *o;
	char *text;
	int rc;

	o = json_pack("{s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o}",
		      "format", (json_int_t)CKPT_FORMAT_VERSION,
		      "memory_bytes", (json_int_t)in->memory_bytes,
		      "interval_ns", (json_int_t)in->interval_ns,
		      "mode", str_or_null(in->mode),
		      "cpu_model", str_or_null(in->cpu_model),
		      "config_path", str_or_null(in->config_path),
		      "config_text", str_or_null(in->config_text),
		      "created_by", str_or_null(in->created_by));
	text = o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	if (!text)
		return ckpt__errf(err, errlen, "%s: cannot encode (invalid UTF-8 in a string?)",
				  CKPT_META_NAME);
	rc = ckpt_file__write_env(st->dirfd, CKPT_META_NAME, CKPT_KIND_META, 0, text,
				  strlen(text), err, errlen);
	free(text);
	return rc;
}

static int meta_u64(json_t *o, const char *key, uint64_t *v, char *err, size_t errlen)
{
	json_t *j = json_object_get(o, key);

	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return ckpt__errf(err, errlen, "%s: \"%s\" is missing or not a non-negative integer",
				  CKPT_META_NAME, key);
	*v = (uint64_t)json_integer_value(j);
	return 0;
}

static int meta_str(json_t *o, const char *key, const char **v, char *err, size_t errlen)
{
	json_t *j = json_object_get(o, key);

	*v = NULL;
	if (!j || json_is_null(j))
		return 0;
	if (!json_is_string(j))
		return ckpt__errf(err, errlen, "%s: \"%s\" is not a string", CKPT_META_NAME, key);
	*v = strdup(json_string_value(j));
	if (!*v)
		return ckpt__errf(err, errlen, "%s: out of memory", CKPT_META_NAME);
	return 0;
}

static int meta_read(struct ckpt_store *st, char *err, size_t errlen)
{
	struct ckpt_info *in = &st->info;
	const uint8_t *payload;
	size_t plen;
	json_error_t jerr;
	uint64_t format = 0;
	void *buf;
	json_t *o;
	int rc = -1;

	if (ckpt_file__load(st->dirfd, CKPT_META_NAME, CKPT_KIND_META, 0, &buf, &payload, &plen,
			    err, errlen) < 0)
		return -1;
	o = json_loadb((const char *)payload, plen, JSON_REJECT_DUPLICATES, &jerr);
	free(buf);
	if (!json_is_object(o)) {
		if (o)
			ckpt__errf(err, errlen, "%s: not a JSON object", CKPT_META_NAME);
		else
			ckpt__errf(err, errlen, "%s: line %d: %s", CKPT_META_NAME, jerr.line,
				   jerr.text);
		goto out;
	}
	if (meta_u64(o, "format", &format, err, errlen) < 0)
		goto out;
	if (format != CKPT_FORMAT_VERSION) {
		ckpt__errf(err, errlen, "%s: unknown format %" PRIu64 " (this build reads %u)",
			   CKPT_META_NAME, format, CKPT_FORMAT_VERSION);
		goto out;
	}
	if (meta_u64(o, "memory_bytes", &in->memory_bytes, err, errlen) < 0 ||
	    meta_u64(o, "interval_ns", &in->interval_ns, err, errlen) < 0 ||
	    meta_str(o, "mode", &in->mode, err, errlen) < 0 ||
	    meta_str(o, "cpu_model", &in->cpu_model, err, errlen) < 0 ||
	    meta_str(o, "config_path", &in->config_path, err, errlen) < 0 ||
	    meta_str(o, "config_text", &in->config_text, err, errlen) < 0 ||
	    meta_str(o, "created_by", &in->created_by, err, errlen) < 0)
		goto out;
	if (!in->memory_bytes || in->memory_bytes % CKPT_PAGE_SIZE) {
		ckpt__errf(err, errlen,
			   "%s: memory_bytes %" PRIu64 " is not a positive multiple of %u",
			   CKPT_META_NAME, in->memory_bytes, CKPT_PAGE_SIZE);
		goto out;
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
}

/* ---- create and open ---------------------------------------------------------------- */

static int dir_is_empty(const char *dir, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int rc = 0;

	if (!d)
		return ckpt__errf(err, errlen, "%s: %s", dir, strerror(errno));
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			rc = ckpt__errf(err, errlen, "%s: exists and is not empty", dir);
			break;
		}
	}
	closedir(d);
	return rc;
}

static int open_dir(const char *dir, char *err, size_t errlen)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return ckpt__errf(err, errlen, "%s: %s", dir, strerror(errno));
	return fd;
}

struct ckpt_store *ckpt_store__create(const char *dir, const struct ckpt_info *info, char *err,
				      size_t errlen)
{
	struct ckpt_store *st;
	bool made = true;
	int dirfd;

	if (!info->memory_bytes || info->memory_bytes % CKPT_PAGE_SIZE) {
		ckpt__errf(err, errlen, "%s: memory size %" PRIu64 " is not a positive multiple of %u",
			   dir, info->memory_bytes, CKPT_PAGE_SIZE);
		return NULL;
	}
	if (mkdir(dir, 0755) < 0) {
		if (errno != EEXIST) {
			ckpt__errf(err, errlen, "%s: mkdir: %s", dir, strerror(errno));
			return NULL;
		}
		if (dir_is_empty(dir, err, errlen) < 0)
			return NULL;
		made = false;
	}
	dirfd = open_dir(dir, err, errlen);
	if (dirfd < 0)
		goto fail;
	st = store_new(dir, dirfd);
	if (!st || info_copy(&st->info, info) < 0) {
		ckpt__errf(err, errlen, "%s: out of memory", dir);
		if (st)
			ckpt_store__close(st);
		else
			close(dirfd);
		goto fail;
	}
	st->npages = info->memory_bytes / CKPT_PAGE_SIZE;
	st->index_ready = true;
	if (meta_write(st, err, errlen) < 0) {
		ckpt__errprefix(err, errlen, "%s: ", dir);
		ckpt_store__close(st);
		goto fail;
	}
	return st;
fail:
	/* A failed create leaves no half recording behind. */
	if (made)
		rmdir(dir);
	return NULL;
}

/* Only existence: a damaged manifest is verify's to report, and load's. */
static bool manifest_present(int dirfd, uint32_t index)
{
	char name[CKPT_NAME_MAX];
	struct stat sb;

	ckpt_file__name(name, index, "manifest");
	return fstatat(dirfd, name, &sb, 0) == 0 && S_ISREG(sb.st_mode);
}

struct ckpt_store *ckpt_store__open(const char *dir, char *err, size_t errlen)
{
	struct ckpt_store *st;
	int dirfd = open_dir(dir, err, errlen);

	if (dirfd < 0)
		return NULL;
	st = store_new(dir, dirfd);
	if (!st) {
		close(dirfd);
		ckpt__errf(err, errlen, "%s: out of memory", dir);
		return NULL;
	}
	if (meta_read(st, err, errlen) < 0) {
		ckpt__errprefix(err, errlen, "%s: ", dir);
		ckpt_store__close(st);
		return NULL;
	}
	st->npages = st->info.memory_bytes / CKPT_PAGE_SIZE;
	while (st->count < UINT32_MAX && manifest_present(dirfd, st->count))
		st->count++;
	return st;
}

int ckpt_store__read_file(struct ckpt_store *st, const char *name, void **buf, size_t *len,
			  char *err, size_t errlen)
{
	int fd = ckpt_store__openat(st, name, err, errlen);

	if (fd < 0)
		return -1;
	return ckpt_file__read_fd(fd, name, buf, len, err, errlen);
}

int ckpt_store__build_index(struct ckpt_store *st, char *err, size_t errlen)
{
	for (uint32_t k = 0; k < st->count; k++) {
		struct ckpt_manifest *m;

		if (ckpt_manifest__load(st, k, &m, err, errlen) < 0)
			return -1;
		for (uint64_t i = 0; i < m->page_count; i++) {
			const struct ckpt_page_ref *r = &m->pages[i];

			if (r->flags & CKPT_PAGE_ZERO || ckpt_index__find(&st->index, &r->hash))
				continue;
			if (ckpt_index__insert(&st->index, &r->hash, r->pack, r->offset,
					       r->stored_len) < 0) {
				ckpt_manifest__free(m);
				return ckpt__errf(err, errlen, "out of memory for the page index");
			}
		}
		ckpt_manifest__free(m);
	}
	st->index_ready = true;
	return 0;
}
