/* Internal: incremental copy-on-write checkpoints of guest RAM.
 *
 * userfaultfd write-protection both tracks what the guest writes, in
 * regions of COW_REGION_SIZE, and keeps the written regions unchanged
 * until they are copied. At a boundary the vCPU thread calls cow__begin:
 * the regions written since the last boundary are protected again, and in
 * copy-on-write mode the guest resumes at once; a copier thread then
 * copies them, and a guest write to a region not yet copied is caught by
 * the fault thread, which copies that region first. In stop-and-copy mode
 * (the baseline) cow__begin copies every region before returning. A writer
 * thread then finds the pages whose content changed, and hashes,
 * compresses and commits each checkpoint in order, so the guest never
 * waits for the disk. */
#ifndef SIMUBOOST_VNODE_COW_H
#define SIMUBOOST_VNODE_COW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "guest-mem.h"

/* A transparent huge page: guest RAM is mapped to get them, and protecting
 * one is a single page-table change. */
#define COW_REGION_SIZE (2ULL << 20)

struct cow;

struct cow_stats {
	uint64_t wp_faults;       /* guest writes that waited for a region's copy */
	uint64_t faults;          /* write-protect faults: first writes to a region */
	uint64_t regions_copied;
	uint32_t committed;       /* checkpoints committed so far */
	uint64_t raw_bytes;       /* 4096 x pages in all committed checkpoints */
	uint64_t dirty_pages;     /* pages changed, in committed checkpoints after the first */
};

/* Populates guest RAM (every page present); every page counts as written
 * before checkpoint 0, which so saves all non-zero pages. */
struct cow *cow__new(const struct guest_mem *mem, struct ckpt_store *store, bool stop_copy,
		     char *err, size_t errlen);
/* Stops the threads after the queued checkpoints are committed; returns the
 * writer's first error, if any, in err. */
int cow__finish(struct cow *c, char *err, size_t errlen);
void cow__free(struct cow *c);

/* Protects (or copies) the regions written since the previous checkpoint,
 * `index` being the next; *pages: the pages in them. Waits first until the
 * previous checkpoint's regions are all copied. Called while the vCPU is
 * stopped. */
int cow__begin(struct cow *c, uint32_t index, uint64_t *pages, char *err, size_t errlen);
/* Queues the rest of the checkpoint for the writer; state and its device
 * bytes are copied, log is taken over. */
int cow__submit(struct cow *c, const struct ckpt_state *state, void *log, size_t log_len,
		char *err, size_t errlen);
/* A writer or copier failure, sticky: the recording must end. */
bool cow__failed(struct cow *c, char *err, size_t errlen);
void cow__stats(struct cow *c, struct cow_stats *out);

#endif
