/* Reading a recording as a whole: guest RAM at a checkpoint, and the full
 * integrity check. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store-priv.h"

static int check_gpn(const struct ckpt_store *st, uint32_t k, uint64_t gpn, char *err,
		     size_t errlen)
{
	if (gpn < st->npages)
		return 0;
	return ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": page 0x%" PRIx64
			  ": beyond guest memory (0x%" PRIx64 " pages)", k, gpn, st->npages);
}

/* Newest first: the first manifest (counting down from index) that lists a
 * page holds its content at index, so every page is read at most once and
 * the walk stops as soon as all pages are known. */
int ckpt_store__materialize(struct ckpt_store *st, uint32_t index, void *ram, char *err,
			    size_t errlen)
{
	uint8_t *mem = ram;
	uint64_t *done, left = st->npages;
	int rc = 0;

	if (index >= st->count)
		return ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": not in the recording (%"
				  PRIu32 " checkpoints)", index, st->count);
	done = calloc((size_t)(st->npages + 63) / 64, sizeof(*done));
	if (!done)
		return ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": out of memory", index);
	for (uint32_t k = index + 1; k-- > 0 && left && !rc;) {
		struct ckpt_manifest *m;

		if (ckpt_manifest__load(st, k, &m, err, errlen) < 0) {
			rc = -1;
			break;
		}
		for (uint64_t i = 0; i < m->page_count && !rc; i++) {
			const struct ckpt_page_ref *r = &m->pages[i];

			if (check_gpn(st, k, r->gpn, err, errlen) < 0) {
				rc = -1;
			} else if (!(done[r->gpn / 64] & (1ull << (r->gpn % 64)))) {
				done[r->gpn / 64] |= 1ull << (r->gpn % 64);
				left--;
				rc = ckpt_pack__read(st, r, k, mem + r->gpn * CKPT_PAGE_SIZE, err,
						     errlen);
			}
		}
		ckpt_manifest__free(m);
	}
	/* Pages no manifest up to index lists were zero all along. */
	for (uint64_t g = 0; !rc && left && g < st->npages; g++)
		if (!(done[g / 64] & (1ull << (g % 64))))
			memset(mem + g * CKPT_PAGE_SIZE, 0, CKPT_PAGE_SIZE);
	free(done);
	return rc;
}

void ckpt_verify__problem(struct ckpt_verify *v, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	v->problems++;
	if (v->report)
		v->report(v->opaque, line);
}

static void verify_meta(struct ckpt_store *st, struct ckpt_verify *v)
{
	const uint8_t *payload;
	char why[512];
	size_t plen;
	void *buf;

	if (ckpt_file__load(st->dirfd, CKPT_META_NAME, CKPT_KIND_META, 0, &buf, &payload, &plen,
			    why, sizeof(why)) < 0)
		ckpt_verify__problem(v, "%s", why);
	else
		free(buf);
}

static int verify_checkpoint(struct ckpt_store *st, uint32_t k, uint8_t *page,
			     struct ckpt_verify *v, char *err, size_t errlen)
{
	struct ckpt_manifest *m;
	char why[512];
	int rc = 0;

	if (ckpt_manifest__load(st, k, &m, why, sizeof(why)) < 0) {
		char name[CKPT_NAME_MAX];
		struct stat sb;

		ckpt_verify__problem(v, "checkpoint %" PRIu32 ": %s", k, why);
		/* Its pack, if any, can still be checked on its own. */
		ckpt_file__name(name, k, "pack");
		if (fstatat(st->dirfd, name, &sb, 0) == 0)
			return ckpt_pack__verify_file(st, k, UINT64_MAX, v, err, errlen);
		return 0;
	}
	for (uint64_t i = 0; i < m->page_count; i++) {
		const struct ckpt_page_ref *r = &m->pages[i];

		if (check_gpn(st, k, r->gpn, why, sizeof(why)) < 0 ||
		    ckpt_pack__read(st, r, k, page, why, sizeof(why)) < 0)
			ckpt_verify__problem(v, "%s", why);
	}
	if (m->stored_pages)
		rc = ckpt_pack__verify_file(st, k, m->stored_pages, v, err, errlen);
	ckpt_manifest__free(m);
	return rc;
}

static void verify_log(struct ckpt_store *st, uint32_t n, struct ckpt_verify *v)
{
	char name[CKPT_NAME_MAX], why[512];
	struct ckpt_log *log;
	struct stat sb;

	ckpt_file__name(name, n, "log");
	if (fstatat(st->dirfd, name, &sb, 0) < 0) {
		ckpt_verify__problem(v, "interval %" PRIu32 ": %s: %s", n, name, strerror(errno));
		return;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size == 0) {
		ckpt_verify__problem(v, "interval %" PRIu32 ": %s: %s", n, name,
				     S_ISREG(sb.st_mode) ? "empty" : "not a regular file");
		return;
	}
	if (ckpt_log__load(st, n, &log, why, sizeof(why)) < 0) {
		ckpt_verify__problem(v, "interval %" PRIu32 ": %s", n, why);
		return;
	}
	ckpt_log__free(log);
}

long ckpt_store__verify(struct ckpt_store *st, void (*report)(void *opaque, const char *problem),
			void *opaque, char *err, size_t errlen)
{
	struct ckpt_verify v = { .report = report, .opaque = opaque };
	uint8_t *page = malloc(CKPT_PAGE_SIZE);

	if (!page)
		return ckpt__errf(err, errlen, "out of memory");
	verify_meta(st, &v);
	for (uint32_t k = 0; k < st->count; k++) {
		if (verify_checkpoint(st, k, page, &v, err, errlen) < 0) {
			free(page);
			return -1;
		}
	}
	for (uint32_t n = 0; n + 1 < st->count; n++)
		verify_log(st, n, &v);
	free(page);
	return v.problems;
}
