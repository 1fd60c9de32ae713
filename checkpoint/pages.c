/* Every guest page's reference at one checkpoint, folded forward from the
 * manifests: what a reader that walks the checkpoints in order needs (the
 * replay's validation, analyses that read guest memory). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"

static int apply(struct ckpt_pages *p, uint32_t index, char *err, size_t errlen)
{
	struct ckpt_manifest *m;

	if (ckpt_manifest__load(p->store, index, &m, err, errlen) != 0)
		return -1;
	for (uint64_t i = 0; i < m->page_count; i++) {
		const struct ckpt_page_ref *ref = &m->pages[i];
		if (ref->gpn < p->npages)
			p->refs[ref->gpn] = *ref;
	}
	p->at = index;
	ckpt_manifest__free(m);
	return 0;
}

int ckpt_pages__init(struct ckpt_pages *p, struct ckpt_store *st, uint32_t checkpoint,
		     char *err, size_t errlen)
{
	static const uint8_t zero[CKPT_PAGE_SIZE];

	memset(p, 0, sizeof(*p));
	p->store = st;
	p->npages = ckpt_store__info(st)->memory_bytes / CKPT_PAGE_SIZE;
	p->refs = calloc(p->npages, sizeof(*p->refs));
	if (!p->refs) {
		snprintf(err, errlen, "out of memory for %" PRIu64 " page references", p->npages);
		return -1;
	}
	struct ckpt_hash zero_hash = ckpt_hash__page(zero);
	for (uint64_t gpn = 0; gpn < p->npages; gpn++)
		p->refs[gpn] = (struct ckpt_page_ref){ .gpn = gpn, .hash = zero_hash,
						       .flags = CKPT_PAGE_ZERO };
	for (uint32_t i = 0; i <= checkpoint; i++)
		if (apply(p, i, err, errlen) != 0)
			return -1;
	return 0;
}

int ckpt_pages__advance(struct ckpt_pages *p, char *err, size_t errlen)
{
	return apply(p, p->at + 1, err, errlen);
}

int ckpt_pages__read(struct ckpt_pages *p, uint64_t gpn, void *out, char *err, size_t errlen)
{
	if (gpn >= p->npages) {
		snprintf(err, errlen, "page 0x%" PRIx64 ": beyond guest memory (0x%" PRIx64 " pages)",
			 gpn, p->npages);
		return -1;
	}
	if (p->refs[gpn].flags & CKPT_PAGE_ZERO) {
		memset(out, 0, CKPT_PAGE_SIZE);
		return 0;
	}
	return ckpt_store__read_page(p->store, &p->refs[gpn], out, err, errlen);
}

void ckpt_pages__destroy(struct ckpt_pages *p)
{
	free(p->refs);
	memset(p, 0, sizeof(*p));
}
