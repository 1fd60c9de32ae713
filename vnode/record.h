/* Internal: the recorder that run.c's exit loop drives while recording.
 * It owns the interval's nondeterminism log and takes the checkpoints; the
 * exit loop supplies the landmarks, because finding one means running the
 * vCPU a single instruction. */
#ifndef SIMUBOOST_VNODE_RECORD_H
#define SIMUBOOST_VNODE_RECORD_H

#include "cow.h"
#include "vm.h"

struct recorder {
	struct vnode *vn;
	struct ckpt_store *store;
	struct cow *cow;
	const struct vnode_record_options *opts;
	struct vnode_record_stats *stats;
	uint64_t next_boundary;   /* guest time of the next checkpoint */
	uint32_t next_index;
	uint64_t sync_count;      /* port/MMIO accesses so far in this interval */
	struct ckpt_log_writer *log;
	size_t downtime_cap;
	bool failed;              /* logging ran out of memory */
};

int recorder__init(struct recorder *r, struct vnode *vn, struct ckpt_store *store,
		   const struct vnode_record_options *opts, struct vnode_record_stats *stats,
		   char *err, size_t errlen);
void recorder__destroy(struct recorder *r);

/* Logs a port or MMIO access; returns its synchronous-event index. */
uint64_t recorder__log_access(struct recorder *r, enum ckpt_event_kind kind, uint64_t addr,
			      uint32_t size, uint64_t value, uint64_t rip, uint64_t now);
void recorder__log_irq(struct recorder *r, uint8_t vector, const struct ckpt_landmark *at,
		       uint64_t now);
/* Takes the next checkpoint with the vCPU stopped: logs the stop landmark
 * (NULL for checkpoint 0), saves CPU and device state and hands the written
 * regions to the copy-on-write machinery. Sets *downtime_ns from t_stop (a
 * monotonic time taken before the landmark was found) to now. */
int recorder__checkpoint(struct recorder *r, const struct ckpt_landmark *stop, uint64_t now,
			 uint64_t t_stop, uint32_t flags, int exit_status, uint64_t *downtime_ns,
			 char *err, size_t errlen);
/* Waits for every taken checkpoint to be committed. */
int recorder__finish(struct recorder *r, char *err, size_t errlen);
bool recorder__failed(struct recorder *r, char *err, size_t errlen);

#endif
