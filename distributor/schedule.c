/* The schedule of a run's intervals: see distributor.h.
 *
 * On disk (little-endian): "SBSCHED\0", u32 version, u32 first, u32 last,
 * u32 0, then per interval u8 state, u8 attempts, then u64 XXH3-64 of all
 * before it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "checkpoint.h"
#include "distributor.h"

#define MAGIC "SBSCHED"
#define VERSION 1u
#define HDR 24u

struct slot {
	uint8_t state;          /* enum sched_state */
	uint8_t attempts;       /* runs started */
	uint32_t node;          /* while running */
};

struct sched {
	uint32_t first, last;
	struct slot *slots;
	/* Intervals a lost node was running go first, in this order. */
	uint32_t *retry;
	uint32_t nretry;
};

struct sched *sched__new(uint32_t first, uint32_t last)
{
	struct sched *s = calloc(1, sizeof(*s));
	uint32_t n = last > first ? last - first : 0;
	if (!s)
		return NULL;
	s->first = first;
	s->last = first + n;
	s->slots = calloc(n ? n : 1, sizeof(*s->slots));
	s->retry = calloc(n ? n : 1, sizeof(*s->retry));
	if (!s->slots || !s->retry) {
		sched__free(s);
		return NULL;
	}
	return s;
}

void sched__free(struct sched *s)
{
	if (!s)
		return;
	free(s->slots);
	free(s->retry);
	free(s);
}

int sched__extend(struct sched *s, uint32_t last)
{
	if (last <= s->last)
		return 0;
	uint32_t n = last - s->first, old = s->last - s->first;
	struct slot *slots = realloc(s->slots, n * sizeof(*slots));
	if (!slots)
		return -1;
	s->slots = slots;
	uint32_t *retry = realloc(s->retry, n * sizeof(*retry));
	if (!retry)
		return -1;
	s->retry = retry;
	memset(s->slots + old, 0, (n - old) * sizeof(*slots));
	s->last = last;
	return 0;
}

static struct slot *slot_of(const struct sched *s, uint32_t interval)
{
	return interval >= s->first && interval < s->last ? &s->slots[interval - s->first] : NULL;
}

static void start(struct sched *s, uint32_t interval, uint32_t node)
{
	struct slot *sl = slot_of(s, interval);
	sl->state = SCHED_RUNNING;
	sl->node = node;
	sl->attempts++;
}

int sched__next(struct sched *s, uint32_t node, sched_affinity_fn affinity, void *ctx,
		uint32_t *interval)
{
	/* first what lost nodes left */
	while (s->nretry) {
		uint32_t k = s->retry[0];
		memmove(s->retry, s->retry + 1, --s->nretry * sizeof(*s->retry));
		if (slot_of(s, k)->state == SCHED_PENDING) {
			start(s, k, node);
			*interval = k;
			return 1;
		}
	}
	bool found = false;
	double best = 0;
	for (uint32_t k = s->first; k < s->last; k++) {
		if (slot_of(s, k)->state != SCHED_PENDING)
			continue;
		double score = affinity ? affinity(ctx, node, k) : 0;
		if (!found || score > best) {
			found = true;
			best = score;
			*interval = k;
		}
		if (!affinity)
			break;
	}
	if (found)
		start(s, *interval, node);
	return found;
}

int sched__done(struct sched *s, uint32_t node, uint32_t interval, bool ok)
{
	struct slot *sl = slot_of(s, interval);
	if (!sl || sl->state != SCHED_RUNNING || sl->node != node)
		return 0;
	sl->state = ok ? SCHED_DONE : sl->attempts >= SCHED_ATTEMPTS ? SCHED_FAILED : SCHED_PENDING;
	if (sl->state == SCHED_PENDING)
		s->retry[s->nretry++] = interval;
	return 1;
}

int sched__redo(struct sched *s, uint32_t interval)
{
	struct slot *sl = slot_of(s, interval);
	if (!sl || (sl->state != SCHED_DONE && sl->state != SCHED_FAILED))
		return 0;
	sl->state = SCHED_PENDING;
	sl->attempts = 0;
	s->retry[s->nretry++] = interval;
	return 1;
}

unsigned sched__node_lost(struct sched *s, uint32_t node)
{
	unsigned n = 0;
	for (uint32_t k = s->first; k < s->last; k++) {
		struct slot *sl = slot_of(s, k);
		if (sl->state == SCHED_RUNNING && sl->node == node) {
			sl->state = SCHED_PENDING;
			s->retry[s->nretry++] = k;
			n++;
		}
	}
	return n;
}

enum sched_state sched__state(const struct sched *s, uint32_t interval, uint32_t *node,
			      unsigned *attempts)
{
	const struct slot *sl = slot_of(s, interval);
	if (!sl)
		return SCHED_FAILED;
	if (node)
		*node = sl->node;
	if (attempts)
		*attempts = sl->attempts;
	return (enum sched_state)sl->state;
}

void sched__counts(const struct sched *s, unsigned counts[4])
{
	memset(counts, 0, 4 * sizeof(*counts));
	for (uint32_t k = s->first; k < s->last; k++)
		counts[slot_of(s, k)->state]++;
}

bool sched__finished(const struct sched *s)
{
	unsigned c[4];
	sched__counts(s, c);
	return !c[SCHED_PENDING] && !c[SCHED_RUNNING];
}

int sched__save(const struct sched *s, const char *path, char *err, size_t errlen)
{
	uint32_t n = s->last - s->first;
	size_t len = HDR + 2 * (size_t)n + 8;
	uint8_t *buf = calloc(1, len);

	if (!buf) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	memcpy(buf, MAGIC, 8);
	uint32_t head[4] = { VERSION, s->first, s->last, 0 };
	memcpy(buf + 8, head, 16);
	for (uint32_t i = 0; i < n; i++) {
		buf[HDR + 2 * i] = s->slots[i].state;
		buf[HDR + 2 * i + 1] = s->slots[i].attempts;
	}
	uint64_t sum = XXH3_64bits(buf, len - 8);
	memcpy(buf + len - 8, &sum, 8);
	int rc = ckpt_file__publish(path, buf, len, err, errlen);
	free(buf);
	return rc;
}

struct sched *sched__load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	uint8_t head[HDR];
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fread(head, 1, HDR, f) != HDR || memcmp(head, MAGIC, 8)) {
		snprintf(err, errlen, "%s: not a simuboost schedule", path);
		fclose(f);
		return NULL;
	}
	uint32_t h[4];
	memcpy(h, head + 8, 16);
	if (h[0] != VERSION || h[2] < h[1] || h[3] != 0) {
		snprintf(err, errlen, "%s: schedule version %u (this simuboost reads %u) or bad range",
			 path, h[0], VERSION);
		fclose(f);
		return NULL;
	}
	size_t len = HDR + 2 * (size_t)(h[2] - h[1]) + 8;
	uint8_t *buf = malloc(len);
	if (!buf) {
		snprintf(err, errlen, "%s: out of memory", path);
		fclose(f);
		return NULL;
	}
	memcpy(buf, head, HDR);
	size_t got = fread(buf + HDR, 1, len - HDR, f);
	int extra = fgetc(f);
	fclose(f);
	uint64_t sum;
	if (got != len - HDR || extra != EOF) {
		snprintf(err, errlen, "%s: %s", path, got != len - HDR ? "truncated" : "trailing bytes");
		free(buf);
		return NULL;
	}
	memcpy(&sum, buf + len - 8, 8);
	if (sum != XXH3_64bits(buf, len - 8)) {
		snprintf(err, errlen, "%s: checksum mismatch: the schedule is corrupt", path);
		free(buf);
		return NULL;
	}
	struct sched *s = sched__new(h[1], h[2]);
	for (uint32_t i = 0; s && i < h[2] - h[1]; i++) {
		uint8_t st = buf[HDR + 2 * i];
		if (st > SCHED_FAILED) {
			snprintf(err, errlen, "%s: interval %u: state %u", path, h[1] + i, st);
			sched__free(s);
			s = NULL;
			break;
		}
		s->slots[i].state = st == SCHED_RUNNING ? SCHED_PENDING : st;
		s->slots[i].attempts = buf[HDR + 2 * i + 1];
	}
	free(buf);
	return s;
}
