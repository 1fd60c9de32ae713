/* Demand paging of a replay's guest RAM, the driver's side (dsm.c); the
 * QEMU side is replay-dsm.c. Internal to simnode/.
 *
 * QEMU maps guest RAM shared from a memfd that starts empty. Its replay
 * plugin registers that mapping with userfaultfd, for missing pages and
 * for minor faults (a page in the memfd that QEMU has not mapped yet), and
 * passes the descriptor over a socket. A thread here serves every fault:
 * a missing page is fetched from a source and copied in (a zero page is
 * filled, never fetched); after a run of consecutive faults it prefetches
 * the pages that follow into the memfd, so that touching them costs a
 * minor fault and no fetch. */
#ifndef SIMUBOOST_SIMNODE_DSM_H
#define SIMUBOOST_SIMNODE_DSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ckpt_hash;

/* Where page contents come from: guest pages gpn[0..n) as they are at the
 * replay's starting checkpoint, into out (n pages); zero[i] is set instead
 * for a zero page. 0, or -1 with err. Called on the fault thread only. */
struct dsm_source {
	int (*fetch)(void *ctx, const uint64_t *gpn, unsigned n, uint8_t *out, bool *zero,
		     char *err, size_t errlen);
	/* A page by content hash, for a plugin whose recording has no packs
	 * (replay-dsm-msg.h); NULL: such requests fail. */
	int (*fetch_hash)(void *ctx, const struct ckpt_hash *hash, uint8_t *out, char *err,
			  size_t errlen);
	void *ctx;
};

struct dsm_stats {
	uint64_t faults;         /* missing pages: the guest waited for a fetch */
	uint64_t zero_faults;    /* of those, zero pages (filled, nothing fetched) */
	uint64_t prefetched;     /* pages put in ahead of a fault */
	uint64_t prefetch_used;  /* of those, touched later (a minor fault) */
	uint64_t fetches;        /* calls to the source */
	double p50_us, p99_us, max_us; /* time to serve a missing non-zero page,
					  from reading the fault to waking the guest */
};

struct dsm;

/* Starts serving the QEMU at the other end of sock (the plugin sends its
 * userfaultfd there) whose RAM is memfd (ram_bytes). prefetch: after
 * DSM_PREFETCH_RUN consecutive faults, fetch ahead. The thread ends when
 * QEMU closes its end, or on dsm__stop. On success sock is d's, closed by
 * dsm__stop. */
struct dsm *dsm__start(int sock, int memfd, uint64_t ram_bytes, const struct dsm_source *src,
		       bool prefetch, char *err, size_t errlen);
/* Why serving failed (a page that could not be fetched leaves the guest
 * waiting: the caller then kills QEMU), or NULL. */
const char *dsm__failed(struct dsm *d);
/* Ends the thread and frees d; stats (optional) are what it served. */
void dsm__stop(struct dsm *d, struct dsm_stats *stats);

#define DSM_PREFETCH_RUN 3u    /* consecutive faults that start a prefetch */
#define DSM_PREFETCH_MIN 16u   /* its first window, in pages; doubled per run */
#define DSM_PREFETCH_MAX 512u

#endif
