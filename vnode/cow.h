/* Internal: incremental copy-on-write checkpoints of guest RAM.
 *
 * At a boundary the vCPU thread hands over the dirty pages (cow__begin):
 * in copy-on-write mode they are write-protected with userfaultfd and the
 * guest resumes at once; a copier thread then copies them and lifts the
 * protection, and a guest write to a page not yet copied is caught by the
 * fault thread, which copies that page first. In stop-and-copy mode (the
 * baseline) cow__begin copies every page before returning. A writer thread
 * then hashes, compresses and commits each checkpoint in order, so the
 * guest never waits for the disk. */
#ifndef SIMUBOOST_VNODE_COW_H
#define SIMUBOOST_VNODE_COW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "guest-mem.h"

struct cow;

struct cow_stats {
	uint64_t wp_faults;       /* guest writes that waited for a copy */
	uint64_t pages_copied;
	uint32_t committed;       /* checkpoints committed so far */
	uint64_t raw_bytes;       /* 4096 x pages in all checkpoints */
};

struct cow *cow__new(const struct guest_mem *mem, struct ckpt_store *store, bool stop_copy,
		     char *err, size_t errlen);
/* Stops the threads after the queued checkpoints are committed; returns the
 * writer's first error, if any, in err. */
int cow__finish(struct cow *c, char *err, size_t errlen);
void cow__free(struct cow *c);

/* Protects (or copies) the pages of checkpoint `index`, listed as sorted
 * guest page numbers (taken over by cow), and waits first until the
 * previous checkpoint's pages are all copied. Called while the vCPU is
 * stopped. */
int cow__begin(struct cow *c, uint32_t index, uint64_t *gpns, size_t n, char *err,
	       size_t errlen);
/* Queues the rest of the checkpoint for the writer; state and its device
 * bytes are copied, log is taken over. */
int cow__submit(struct cow *c, const struct ckpt_state *state, void *log, size_t log_len,
		char *err, size_t errlen);
/* A writer or copier failure, sticky: the recording must end. */
bool cow__failed(struct cow *c, char *err, size_t errlen);
void cow__stats(struct cow *c, struct cow_stats *out);

#endif
