/* Demand paging of a replay's guest RAM: the fault server (see dsm.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "dsm.h"
#include "replay-dsm-msg.h"

#define PAGE 4096u
#define MSGS 64

struct dsm {
	int sock, memfd, stop_fd, uffd;
	uint64_t ram_bytes, npages, base;
	struct dsm_source src;
	bool prefetch;
	pthread_t thread;
	uint8_t *installed;        /* by gpn: 1 put in by us, 2 also prefetched and untouched */
	uint8_t *buf;              /* DSM_PREFETCH_MAX pages */
	bool *zero;
	uint64_t *gpns;
	struct replay_dsm_page_reply *reply;
	uint64_t last_gpn;
	unsigned run, window;
	uint64_t refill_at;        /* touching this prefetched page prefetches more */
	struct dsm_stats stats;
	struct dsm_stats at_end;   /* when the guest last reached an interval's end */
	size_t nlat_at_end;
	bool ended;
	float *lat_us;
	size_t nlat, cap_lat;
	_Atomic bool failed;
	char err[512];
};

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void fail(struct dsm *d, const char *fmt, const char *detail)
{
	if (atomic_load(&d->failed))
		return;
	snprintf(d->err, sizeof(d->err), fmt, detail);
	atomic_store(&d->failed, true);
}

/* Waits for the plugin's descriptor; false if QEMU went away first. */
static bool receive_uffd(struct dsm *d)
{
	struct pollfd pfd[2] = { { .fd = d->sock, .events = POLLIN },
				 { .fd = d->stop_fd, .events = POLLIN } };
	while (poll(pfd, 2, -1) < 0)
		if (errno != EINTR)
			return false;
	if (pfd[1].revents)
		return false;
	struct replay_dsm_hello h;
	char control[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = &h, .iov_len = sizeof(h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
			     .msg_controllen = sizeof(control) };
	ssize_t n = recvmsg(d->sock, &mh, MSG_CMSG_CLOEXEC);
	struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
	if (n == 0)
		return false; /* QEMU ended before its plugin attached */
	if (n != (ssize_t)sizeof(h) || !c || c->cmsg_type != SCM_RIGHTS ||
	    h.magic != REPLAY_DSM_MAGIC) {
		fail(d, "the replay plugin's userfaultfd hand-over is malformed%s", "");
		return false;
	}
	memcpy(&d->uffd, CMSG_DATA(c), sizeof(int));
	if (h.ram_bytes != d->ram_bytes) {
		fail(d, "the replay plugin registered RAM of another size%s", "");
		return false;
	}
	d->base = h.base;
	return true;
}

static void note_latency(struct dsm *d, double us)
{
	if (d->nlat == d->cap_lat) {
		size_t cap = d->cap_lat ? 2 * d->cap_lat : 4096;
		float *l = realloc(d->lat_us, cap * sizeof(*l));
		if (!l)
			return;
		d->lat_us = l;
		d->cap_lat = cap;
	}
	d->lat_us[d->nlat++] = (float)us;
}

/* Maps a page already in the memfd into QEMU (a minor fault), and wakes
 * whoever waits for it (mapped meanwhile, the ioctl wakes no one). */
static int map_cached(struct dsm *d, uint64_t addr)
{
	struct uffdio_continue c = { .range = { .start = addr, .len = PAGE } };
	if (ioctl(d->uffd, UFFDIO_CONTINUE, &c) == 0)
		return 0;
	if (errno != EEXIST)
		return -1;
	struct uffdio_range r = { .start = addr, .len = PAGE };
	return ioctl(d->uffd, UFFDIO_WAKE, &r);
}

static int install(struct dsm *d, uint64_t addr, const uint8_t *page, bool zero)
{
	int rc;
	if (zero) {
		struct uffdio_zeropage z = { .range = { .start = addr, .len = PAGE } };
		rc = ioctl(d->uffd, UFFDIO_ZEROPAGE, &z);
	} else {
		struct uffdio_copy c = { .dst = addr, .src = (uint64_t)(uintptr_t)page, .len = PAGE };
		rc = ioctl(d->uffd, UFFDIO_COPY, &c);
	}
	if (rc != 0 && errno == EEXIST)
		return map_cached(d, addr);
	return rc;
}

/* Fetches pages ahead of a sequential run into the memfd: QEMU maps them
 * on its first touch (a minor fault), with no fetch. */
static void prefetch_after(struct dsm *d, uint64_t gpn)
{
	unsigned n = 0;
	for (uint64_t g = gpn + 1; g < d->npages && n < d->window; g++)
		if (!d->installed[g])
			d->gpns[n++] = g;
	if (!n)
		return;
	char err[256];
	d->stats.fetches++;
	if (d->src.fetch(d->src.ctx, d->gpns, n, d->buf, d->zero, err, sizeof(err)) != 0)
		return; /* only a guess: the faults will fetch and report */
	static const uint8_t zeros[PAGE];
	for (unsigned i = 0; i < n; i++) {
		const void *p = d->zero[i] ? zeros : d->buf + (size_t)i * PAGE;
		if (pwrite(d->memfd, p, PAGE, (off_t)(d->gpns[i] * PAGE)) != (ssize_t)PAGE)
			return;
		d->installed[d->gpns[i]] = 2;
		d->stats.prefetched++;
	}
	/* halfway through what was fetched ahead, fetch further: a scan keeps
	 * running on minor faults */
	d->refill_at = d->gpns[n / 2];
	if (d->window < DSM_PREFETCH_MAX)
		d->window *= 2;
}

static void on_fault(struct dsm *d, const struct uffd_msg *m)
{
	uint64_t addr = m->arg.pagefault.address & ~(uint64_t)(PAGE - 1);
	uint64_t gpn = (addr - d->base) / PAGE;
	if (addr < d->base || gpn >= d->npages) {
		fail(d, "a fault outside guest RAM%s", "");
		return;
	}
	/* in the memfd already: prefetched (maybe after this fault was
	 * queued), or put in for an earlier fault on the same page */
	if ((m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR) || d->installed[gpn]) {
		bool was_ahead = d->installed[gpn] == 2;
		if (was_ahead) {
			d->stats.prefetch_used++;
			d->installed[gpn] = 1;
		}
		if (map_cached(d, addr) != 0)
			fail(d, "UFFDIO_CONTINUE: %s", strerror(errno));
		d->run = gpn == d->last_gpn + 1 ? d->run + 1 : 1;
		d->last_gpn = gpn;
		if (was_ahead && d->prefetch && gpn == d->refill_at)
			prefetch_after(d, gpn);
		return;
	}
	double t0 = now_us();
	char err[400];
	d->stats.faults++;
	d->stats.fetches++;
	if (d->src.fetch(d->src.ctx, &gpn, 1, d->buf, d->zero, err, sizeof(err)) != 0) {
		char msg[480];
		snprintf(msg, sizeof(msg), "page 0x%llx: %s", (unsigned long long)gpn, err);
		fail(d, "%s", msg);
		return;
	}
	if (d->zero[0])
		d->stats.zero_faults++;
	if (install(d, addr, d->buf, d->zero[0]) != 0) {
		char msg[480];
		snprintf(msg, sizeof(msg), "page 0x%llx: cannot install it: %s",
			 (unsigned long long)gpn, strerror(errno));
		fail(d, "%s", msg);
		return;
	}
	d->installed[gpn] = 1;
	if (!d->zero[0]) /* a zero page costs no fetch: not what latency is about */
		note_latency(d, now_us() - t0);
	if (!d->prefetch)
		return;
	d->run = gpn == d->last_gpn + 1 ? d->run + 1 : 1;
	d->last_gpn = gpn;
	if (d->run < DSM_PREFETCH_RUN)
		d->window = DSM_PREFETCH_MIN;
	else
		prefetch_after(d, gpn);
}

/* A page by hash for the plugin (a recording without packs). */
static void answer_page(struct dsm *d, const struct replay_dsm_page_request *q)
{
	struct ckpt_hash h = { .lo = q->lo, .hi = q->hi };
	char err[256];
	d->reply->magic = REPLAY_DSM_PAGE_MAGIC;
	d->reply->status = d->src.fetch_hash && d->src.fetch_hash(d->src.ctx, &h, d->reply->page,
								  err, sizeof(err)) == 0 ? 0 : -1;
	/* a plugin that is gone finds out by itself */
	if (send(d->sock, d->reply, sizeof(*d->reply), MSG_NOSIGNAL) < 0)
		return;
}

/* The guest reached an interval's end (what follows is validation), or
 * the plugin wants a page by hash. */
static void on_plugin_message(struct dsm *d)
{
	union {
		struct replay_dsm_end end;
		struct replay_dsm_page_request page;
	} u;
	ssize_t n = recv(d->sock, &u, sizeof(u), MSG_DONTWAIT);
	if (n == (ssize_t)sizeof(u.end) && u.end.magic == REPLAY_DSM_MAGIC) {
		d->at_end = d->stats;
		d->nlat_at_end = d->nlat;
		d->ended = true;
	} else if (n == (ssize_t)sizeof(u.page) && u.page.magic == REPLAY_DSM_PAGE_MAGIC) {
		answer_page(d, &u.page);
	}
}

static void *serve(void *arg)
{
	struct dsm *d = arg;
	if (!receive_uffd(d))
		return NULL;
	struct pollfd pfd[3] = { { .fd = d->uffd, .events = POLLIN },
				 { .fd = d->stop_fd, .events = POLLIN },
				 { .fd = d->sock, .events = POLLIN } };
	while (!atomic_load(&d->failed)) {
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			fail(d, "poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & (POLLERR | POLLHUP))
			break; /* QEMU is gone */
		if (pfd[2].revents & POLLIN)
			on_plugin_message(d);
		if (pfd[2].revents & (POLLERR | POLLHUP))
			pfd[2].fd = -1;
		if (!(pfd[0].revents & POLLIN))
			continue;
		struct uffd_msg msgs[MSGS];
		ssize_t n = read(d->uffd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			fail(d, "reading userfaultfd: %s", strerror(errno));
			break;
		}
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++)
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
				on_fault(d, &msgs[i]);
	}
	return NULL;
}

struct dsm *dsm__start(int sock, int memfd, uint64_t ram_bytes, const struct dsm_source *src,
		       bool prefetch, char *err, size_t errlen)
{
	struct dsm *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->sock = sock;
	d->memfd = memfd;
	d->uffd = -1;
	d->ram_bytes = ram_bytes;
	d->npages = ram_bytes / PAGE;
	d->src = *src;
	d->prefetch = prefetch;
	d->window = DSM_PREFETCH_MIN;
	d->last_gpn = UINT64_MAX - 1;
	d->stop_fd = eventfd(0, EFD_CLOEXEC);
	d->installed = calloc(d->npages, 1);
	d->buf = malloc((size_t)DSM_PREFETCH_MAX * PAGE);
	d->zero = calloc(DSM_PREFETCH_MAX, sizeof(*d->zero));
	d->gpns = calloc(DSM_PREFETCH_MAX, sizeof(*d->gpns));
	d->reply = malloc(sizeof(*d->reply));
	if (d->stop_fd < 0 || !d->installed || !d->buf || !d->zero || !d->gpns || !d->reply) {
		snprintf(err, errlen, "out of memory");
		goto bad;
	}
	int rc = pthread_create(&d->thread, NULL, serve, d);
	if (rc != 0) {
		snprintf(err, errlen, "fault thread: %s", strerror(rc));
		goto bad;
	}
	return d;
bad:
	if (d->stop_fd >= 0)
		close(d->stop_fd);
	free(d->installed);
	free(d->buf);
	free(d->zero);
	free(d->gpns);
	free(d->reply);
	free(d);
	return NULL;
}

const char *dsm__failed(struct dsm *d)
{
	return atomic_load(&d->failed) ? d->err : NULL;
}

static int by_value(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

void dsm__stop(struct dsm *d, struct dsm_stats *stats)
{
	if (!d)
		return;
	uint64_t one = 1;
	if (write(d->stop_fd, &one, sizeof(one)) < 0) {
		/* an eventfd write fails only on overflow */
	}
	pthread_join(d->thread, NULL);
	if (stats) {
		/* what the guest asked for, without the validation's reads */
		if (d->ended) {
			*stats = d->at_end;
			d->nlat = d->nlat_at_end;
		} else {
			*stats = d->stats;
		}
		if (d->nlat) {
			qsort(d->lat_us, d->nlat, sizeof(*d->lat_us), by_value);
			stats->p50_us = d->lat_us[d->nlat / 2];
			stats->p99_us = d->lat_us[(d->nlat * 99) / 100];
			stats->max_us = d->lat_us[d->nlat - 1];
		}
	}
	if (d->uffd >= 0)
		close(d->uffd);
	close(d->sock);
	close(d->stop_fd);
	free(d->lat_us);
	free(d->installed);
	free(d->buf);
	free(d->zero);
	free(d->gpns);
	free(d->reply);
	free(d);
}
