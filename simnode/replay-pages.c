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

int replay_pages__compare(struct ckpt_pages *p,
			  bool (*read_ram)(uint64_t addr, void *buf, size_t len),
			  struct replay_page_diff *d, char *err, size_t errlen)
{
	uint8_t *chunk = malloc((size_t)CHUNK_PAGES * CKPT_PAGE_SIZE);
	uint8_t recorded[CKPT_PAGE_SIZE];
	int rc = -1;

	memset(d, 0, sizeof(*d));
	if (!chunk) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (uint64_t base = 0; base < p->npages; base += CHUNK_PAGES) {
		uint64_t n = p->npages - base < CHUNK_PAGES ? p->npages - base : CHUNK_PAGES;
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
			bool ad;
			if (ref->flags & CKPT_PAGE_ZERO) {
				memset(recorded, 0, sizeof(recorded));
			} else if (ckpt_store__read_page(p->store, ref, recorded, err, errlen) != 0) {
				goto out;
			}
			ad = only_pt_ad_bits(page, recorded);
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
	}
	rc = 0;
out:
	free(chunk);
	return rc;
}
