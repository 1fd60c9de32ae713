/* The page half of validation: does the replay's RAM equal the next
 * checkpoint's? */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay-priv.h"

#define CHUNK_PAGES 256u /* RAM is read 1 MiB at a time */

/* True if a and b differ only in bits 5 and 6 (accessed, dirty) of the low
 * byte of 8-byte entries: what a page-table walk changes. */
static bool only_pt_ad_bits(const uint8_t *a, const uint8_t *b)
{
	for (size_t i = 0; i < CKPT_PAGE_SIZE; i++) {
		uint8_t x = a[i] ^ b[i];
		if (x && (i % 8 != 0 || (x & ~0x60) != 0))
			return false;
	}
	return true;
}

/* Which pages to read: all, or those in RAM and those the recording
 * changed (a page never touched still holds what it held at the start, and
 * is read, faulting in that content, only if the recording says it
 * changed). */
static uint8_t *pages_to_read(const struct ckpt_pages *p, const struct ckpt_manifest *end,
			      const uint8_t *resident)
{
	uint8_t *want = malloc(p->npages ? p->npages : 1);
	if (!want)
		return NULL;
	if (!resident) {
		memset(want, 1, p->npages);
		return want;
	}
	memcpy(want, resident, p->npages);
	for (uint64_t i = 0; i < end->page_count; i++)
		if (end->pages[i].gpn < p->npages)
			want[end->pages[i].gpn] = 1;
	return want;
}

int replay_page_reader__read(const struct replay_page_reader *pr, const struct ckpt_pages *p,
			     uint64_t gpn, void *out, char *err, size_t errlen)
{
	if (gpn >= p->npages) {
		snprintf(err, errlen, "page 0x%llx is beyond guest RAM", (unsigned long long)gpn);
		return -1;
	}
	const struct ckpt_page_ref *ref = &p->refs[gpn];
	if (ref->flags & CKPT_PAGE_ZERO) {
		memset(out, 0, CKPT_PAGE_SIZE);
		return 0;
	}
	return pr->read(pr->ctx, ref, out, err, errlen);
}

int replay_pages__compare(struct ckpt_pages *p, const struct ckpt_manifest *end,
			  const uint8_t *resident,
			  bool (*read_ram)(uint64_t addr, void *buf, size_t len),
			  const struct replay_page_reader *pr, struct replay_page_diff *d,
			  char *err, size_t errlen)
{
	uint8_t *chunk = malloc((size_t)CHUNK_PAGES * CKPT_PAGE_SIZE);
	uint8_t *want = pages_to_read(p, end, resident);
	uint8_t recorded[CKPT_PAGE_SIZE];
	int rc = -1;

	memset(d, 0, sizeof(*d));
	if (!chunk || !want) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/* runs of wanted pages, at most a chunk each */
	for (uint64_t base = 0; base < p->npages;) {
		if (!want[base]) {
			base++;
			continue;
		}
		uint64_t n = 1;
		while (n < CHUNK_PAGES && base + n < p->npages && want[base + n])
			n++;
		if (!read_ram(base * CKPT_PAGE_SIZE, chunk, n * CKPT_PAGE_SIZE)) {
			snprintf(err, errlen, "cannot read guest RAM at 0x%llx",
				 (unsigned long long)(base * CKPT_PAGE_SIZE));
			goto out;
		}
		for (uint64_t i = 0; i < n; i++) {
			const uint8_t *page = chunk + i * CKPT_PAGE_SIZE;
			const struct ckpt_page_ref *ref = &p->refs[base + i];
			struct ckpt_hash h = ckpt_hash__page(page);
			if (ckpt_hash__eq(&h, &ref->hash))
				continue;
			if (replay_page_reader__read(pr, p, base + i, recorded, err, errlen) != 0)
				goto out;
			bool ad = only_pt_ad_bits(page, recorded);
			d->differing++;
			if (ad)
				d->pt_ad_only++;
			else
				d->other++;
			if (d->listed < REPLAY_MAX_PAGE_DIFFS) {
				uint32_t off = 0;
				while (off < CKPT_PAGE_SIZE && !memcmp(page + off, recorded + off, 8))
					off += 8;
				d->pages[d->listed].gpn = base + i;
				d->pages[d->listed].pt_ad_only = ad;
				d->pages[d->listed].offset = off;
				memcpy(&d->pages[d->listed].replay, page + off, 8);
				memcpy(&d->pages[d->listed].recorded, recorded + off, 8);
				d->listed++;
			}
		}
		base += n;
	}
	rc = 0;
out:
	free(want);
	free(chunk);
	return rc;
}
