/* Recording: checkpoints at interval boundaries and the nondeterminism log
 * in between. See DESIGN.md, "Checkpoints" and "The hard part". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "record.h"

#define DEVICE_STATE_MAX 8192

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int recorder__init(struct recorder *r, struct vnode *vn, struct ckpt_store *store,
		   const struct vnode_record_options *opts, struct vnode_record_stats *stats,
		   char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	r->vn = vn;
	r->store = store;
	r->opts = opts;
	r->stats = stats;
	r->log = ckpt_log_writer__new(0);
	if (!r->log) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->cow = cow__new(&vn->mem, store, opts->mode == VNODE_CHECKPOINT_STOP_COPY, err, errlen);
	return r->cow ? 0 : -1;
}

void recorder__destroy(struct recorder *r)
{
	cow__free(r->cow);
	ckpt_log_writer__free(r->log);
	memset(r, 0, sizeof(*r));
}

static void append(struct recorder *r, const struct ckpt_event *ev)
{
	if (ckpt_log_writer__append(r->log, ev) != 0)
		r->failed = true;
	r->stats->events_logged++;
}

uint64_t recorder__log_access(struct recorder *r, enum ckpt_event_kind kind, uint64_t addr,
			      uint32_t size, uint64_t value, uint64_t rip, uint64_t now)
{
	struct ckpt_event ev = {
		.kind = kind, .guest_time_ns = now, .addr = addr, .size = size, .value = value,
		.at = { .sync_count = r->sync_count, .rip = rip },
	};
	append(r, &ev);
	return r->sync_count++;
}

void recorder__log_irq(struct recorder *r, uint8_t vector, const struct ckpt_landmark *at,
		       uint64_t now)
{
	struct ckpt_event ev = { .kind = CKPT_EV_IRQ, .guest_time_ns = now, .at = *at,
				 .value = vector };
	append(r, &ev);
	r->stats->interrupts_logged++;
}

static int note_downtime(struct recorder *r, uint64_t downtime)
{
	struct vnode_record_stats *st = r->stats;
	if (st->checkpoints == r->downtime_cap) {
		size_t cap = r->downtime_cap ? r->downtime_cap * 2 : 64;
		uint64_t *d = realloc(st->downtime_ns, cap * sizeof(*d));
		if (!d)
			return -1;
		st->downtime_ns = d;
		r->downtime_cap = cap;
	}
	st->downtime_ns[st->checkpoints++] = downtime;
	return 0;
}

int recorder__checkpoint(struct recorder *r, const struct ckpt_landmark *stop, uint64_t now,
			 uint64_t t_stop, uint32_t flags, int exit_status, uint64_t *downtime_ns,
			 char *err, size_t errlen)
{
	struct vnode *vn = r->vn;
	uint32_t index = r->next_index;
	void *log = NULL;
	size_t log_len = 0;
	if (index > 0) {
		struct ckpt_event ev = { .kind = CKPT_EV_STOP, .guest_time_ns = now, .at = *stop };
		append(r, &ev);
		if (r->failed) {
			snprintf(err, errlen, "interval %u: out of memory for the event log", index - 1);
			return -1;
		}
		int rc = ckpt_log_writer__finish(r->log, &log, &log_len);
		r->log = ckpt_log_writer__new(index);
		if (rc != 0 || !r->log) {
			free(log);
			snprintf(err, errlen, "interval %u: out of memory for the event log", index - 1);
			return -1;
		}
	}
	uint64_t n;
	if (cow__begin(r->cow, index, &n, err, errlen) != 0) {
		free(log);
		return -1;
	}
	struct ckpt_state st = { .guest_time_ns = now, .flags = flags, .exit_status = exit_status };
	uint8_t devices[DEVICE_STATE_MAX];
	st.device_state_len = devices__save(vn->pic, vn->pit, vn->uart, devices, sizeof(devices));
	st.device_state = devices;
	if (st.device_state_len > sizeof(devices)) {
		snprintf(err, errlen, "checkpoint %u: device state of %zu bytes exceeds %d", index,
			 st.device_state_len, DEVICE_STATE_MAX);
		free(log);
		return -1;
	}
	if (cpu__save_state(vn, &st.cpu, err, errlen) != 0) {
		free(log);
		return -1;
	}
	uint64_t downtime = monotonic_ns() - t_stop;
	st.downtime_ns = downtime;
	if (cow__submit(r->cow, &st, log, log_len, err, errlen) != 0)
		return -1;
	if (note_downtime(r, downtime) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->next_index++;
	r->next_boundary += r->opts->interval_ns;
	r->sync_count = 0;
	*downtime_ns = downtime;
	if (r->opts->on_checkpoint) {
		struct cow_stats cs;
		cow__stats(r->cow, &cs);
		struct vnode_checkpoint_event ev = {
			.index = index, .guest_time_ns = now, .downtime_ns = downtime,
			.written_pages = n, .committed = cs.committed,
		};
		r->opts->on_checkpoint(r->opts->opaque, &ev);
	}
	return 0;
}

int recorder__finish(struct recorder *r, char *err, size_t errlen)
{
	int rc = cow__finish(r->cow, err, errlen);
	struct cow_stats cs;
	cow__stats(r->cow, &cs);
	r->stats->committed = cs.committed;
	r->stats->wp_faults = cs.wp_faults;
	r->stats->write_faults = cs.faults;
	r->stats->dirty_pages = cs.dirty_pages;
	return rc;
}

bool recorder__failed(struct recorder *r, char *err, size_t errlen)
{
	return cow__failed(r->cow, err, errlen);
}

void vnode_record_stats__free(struct vnode_record_stats *rstats)
{
	free(rstats->downtime_ns);
	rstats->downtime_ns = NULL;
}
