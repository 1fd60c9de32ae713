/* Copy-on-write checkpoints of guest RAM with userfaultfd write-protection,
 * which also tracks what the guest writes.
 *
 * RAM is cut into regions of 2 MiB, the size of a transparent huge page
 * (guest RAM is mapped with MADV_HUGEPAGE and populated up front). Every
 * region is write-protected from one checkpoint on, and the guest's first
 * write to a region faults: the fault thread copies the region if the
 * current checkpoint still needs it, marks it written and lifts the
 * protection. At the next boundary exactly the written regions are
 * protected again, each with one PMD-level change, which is why a
 * checkpoint stops the guest for so short a time. The KVM dirty log is not
 * used: on the PVM-style KVM of the build machines a guest write to a page
 * the dirty log has write-protected is emulated, about 50x slower than
 * native, for every write until something else remaps the page.
 *
 * Three threads besides the vCPU's:
 *   fault   serves write-protect faults as above;
 *   copier  copies the protected regions of the current checkpoint,
 *           leaving them protected (the guest has not written them yet);
 *   writer  finds the pages whose content changed since the previous
 *           checkpoint (XXH3-128 against a table of every page's last
 *           hash) and hands them to the checkpoint store, in order.
 * A region's copy is claimed with a compare-and-swap, so the copier and the
 * fault thread never both copy it. Protection changes happen under the
 * lock, and a region is unprotected only after its copy: so a fault
 * message that arrives late (the write was interrupted by the boundary) is
 * served like a fresh one. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cow.h"

/* Linux 6.4 ABI: protect pages that were never touched, too. Debian 12's
 * headers predate it. */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PAGE CKPT_PAGE_SIZE
#define REGION_PAGES (COW_REGION_SIZE / PAGE)
#define MAX_QUEUED 2      /* checkpoints waiting for the writer */

enum region_state { REGION_PENDING, REGION_CLAIMED, REGION_COPIED };

struct cow_job {
	uint32_t index;
	uint32_t *regions;        /* ascending */
	size_t n;
	_Atomic uint8_t *state;
	uint64_t (*zero)[REGION_PAGES / 64]; /* per region: pages found zero, not copied */
	uint8_t **copy;           /* per region, from the pool; NULL while all zero */
	struct ckpt_state st;
	uint8_t *device_state;
	void *log;
	size_t log_len;
	bool copied, submitted;
	struct cow_job *next;
};

struct cow {
	uint8_t *ram;
	uint64_t ram_size, pages;
	uint32_t nregions;
	struct ckpt_store *store;
	bool stop_copy;
	int uffd, stop_fd;
	pthread_t fault_thread, copier_thread, writer_thread;
	bool threads_started;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool *written;            /* per region: opened for writes since its protection */
	struct cow_job *copying;  /* the job whose regions may be protected */
	uint32_t *entry_of;       /* region -> index in `copying` + 1; 0: not in it */
	struct cow_job *queue_head, *queue_tail; /* for the writer, in order */
	size_t queued;
	struct cow_job *pending_submit; /* begun, not yet submitted */
	bool stopping;
	bool failed;
	char error[512];

	struct ckpt_hash *content;  /* per page: its hash at the last checkpoint (writer's) */
	/* Region copies go back here once committed: fresh memory would be
	 * faulted in and zeroed by the kernel for every checkpoint. */
	pthread_mutex_t pool_lock;
	uint8_t **pool;
	size_t pooled;            /* at most nregions kept */
	struct ckpt_hash zero_hash;

	_Atomic uint64_t wp_faults, faults, regions_copied, raw_bytes, dirty_pages;
	_Atomic uint32_t committed;
};

static const uint8_t zero_page[PAGE];


static void fail_locked(struct cow *c, const char *msg)
{
	if (!c->failed) {
		c->failed = true;
		snprintf(c->error, sizeof(c->error), "%s", msg);
	}
	pthread_cond_broadcast(&c->cond);
}

static void fail(struct cow *c, const char *msg)
{
	pthread_mutex_lock(&c->lock);
	fail_locked(c, msg);
	pthread_mutex_unlock(&c->lock);
}

static uint64_t region_pages(const struct cow *c, uint32_t r)
{
	uint64_t first = (uint64_t)r * REGION_PAGES;
	return c->pages - first < REGION_PAGES ? c->pages - first : REGION_PAGES;
}

/* Regions [r, r + n) protected (wp) or opened. */
static int protect(struct cow *c, uint32_t r, uint32_t n, bool wp)
{
	uint64_t start = (uint64_t)r * COW_REGION_SIZE, len = (uint64_t)n * COW_REGION_SIZE;
	if (start + len > c->ram_size)
		len = c->ram_size - start;
	struct uffdio_writeprotect w = {
		.range = { .start = (uint64_t)(uintptr_t)(c->ram + start), .len = len },
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	while (ioctl(c->uffd, UFFDIO_WRITEPROTECT, &w) < 0) {
		if (errno != EAGAIN)
			return -1;
	}
	return 0;
}

static bool is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;
	for (size_t i = 0; i < PAGE / 8; i++)
		if (w[i])
			return false;
	return true;
}

static uint8_t *pool_get(struct cow *c)
{
	pthread_mutex_lock(&c->pool_lock);
	uint8_t *b = c->pooled ? c->pool[--c->pooled] : NULL;
	pthread_mutex_unlock(&c->pool_lock);
	if (b)
		return b;
	b = mmap(NULL, COW_REGION_SIZE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return b == MAP_FAILED ? NULL : b;
}

static void pool_put(struct cow *c, uint8_t *b)
{
	pthread_mutex_lock(&c->pool_lock);
	if (c->pooled < c->nregions) {
		c->pool[c->pooled++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (b)
		munmap(b, COW_REGION_SIZE);
}

/* Copies region entry i of job (claimed by the caller), noting zero pages
 * instead of copying them. False when out of memory. */
static bool copy_region(struct cow *c, struct cow_job *job, size_t i)
{
	uint64_t first = (uint64_t)job->regions[i] * REGION_PAGES;
	uint64_t n = region_pages(c, job->regions[i]);
	for (uint64_t p = 0; p < n; p++) {
		const uint8_t *src = c->ram + (first + p) * PAGE;
		if (is_zero(src)) {
			job->zero[i][p / 64] |= 1ULL << (p % 64);
			continue;
		}
		if (!job->copy[i] && !(job->copy[i] = pool_get(c)))
			return false;
		memcpy(job->copy[i] + p * PAGE, src, PAGE);
	}
	atomic_fetch_add(&c->regions_copied, 1);
	return true;
}

static void free_job(struct cow *c, struct cow_job *job)
{
	if (!job)
		return;
	for (size_t i = 0; job->copy && i < job->n; i++)
		if (job->copy[i])
			pool_put(c, job->copy[i]);
	free(job->copy);
	free(job->regions);
	free((void *)job->state);
	free(job->zero);
	free(job->device_state);
	free(job->log);
	free(job);
}

/* ---- fault thread ------------------------------------------------------ */

static void serve_fault(struct cow *c, uint64_t addr)
{
	uint64_t off = addr - (uint64_t)(uintptr_t)c->ram;
	if (off >= c->ram_size)
		return;
	uint32_t r = (uint32_t)(off / COW_REGION_SIZE);
	pthread_mutex_lock(&c->lock);
	struct cow_job *job = c->copying;
	uint32_t e = job ? c->entry_of[r] : 0;
	if (e) {
		size_t i = e - 1;
		uint8_t expect = REGION_PENDING;
		if (atomic_compare_exchange_strong(&job->state[i], &expect, REGION_CLAIMED)) {
			if (!copy_region(c, job, i))
				fail_locked(c, "out of memory for the copies of a checkpoint");
			atomic_store(&job->state[i], REGION_COPIED);
			atomic_fetch_add(&c->wp_faults, 1);
		}
		/* The copier has it: a region's copy takes microseconds. */
		while (atomic_load(&job->state[i]) != REGION_COPIED)
			sched_yield();
	}
	c->written[r] = true;
	atomic_fetch_add(&c->faults, 1);
	if (protect(c, r, 1, false) != 0) {
		char msg[128];
		snprintf(msg, sizeof(msg), "region at 0x%llx: lifting write protection: %s",
			 (unsigned long long)off, strerror(errno));
		fail_locked(c, msg);
	}
	pthread_mutex_unlock(&c->lock);
}

static void *fault_main(void *arg)
{
	struct cow *c = arg;
	struct pollfd pfd[2] = { { .fd = c->uffd, .events = POLLIN },
				 { .fd = c->stop_fd, .events = POLLIN } };
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fail(c, "userfaultfd poll failed");
			return NULL;
		}
		if (pfd[1].revents)
			return NULL;
		struct uffd_msg msgs[64];
		ssize_t n = read(c->uffd, msgs, sizeof(msgs));
		if (n < 0)
			continue; /* EAGAIN: another wakeup raced us */
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++)
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
				serve_fault(c, msgs[i].arg.pagefault.address);
	}
}

/* ---- copier thread ------------------------------------------------------ */

static void enqueue_locked(struct cow *c, struct cow_job *job)
{
	job->copied = true;
	if (c->queue_tail)
		c->queue_tail->next = job;
	else
		c->queue_head = job;
	c->queue_tail = job;
	c->queued++;
	pthread_cond_broadcast(&c->cond);
}

static void *copier_main(void *arg)
{
	struct cow *c = arg;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->stopping && !(c->copying && !c->copying->copied))
			pthread_cond_wait(&c->cond, &c->lock);
		if (c->stopping)
			break;
		struct cow_job *job = c->copying;
		pthread_mutex_unlock(&c->lock);
		for (size_t i = 0; i < job->n; i++) {
			uint8_t expect = REGION_PENDING;
			if (atomic_compare_exchange_strong(&job->state[i], &expect, REGION_CLAIMED)) {
				if (!copy_region(c, job, i))
					fail(c, "out of memory for the copies of a checkpoint");
				atomic_store(&job->state[i], REGION_COPIED);
			}
		}
		/* Regions the fault thread claimed finish in microseconds. */
		for (size_t i = 0; i < job->n; i++)
			while (atomic_load(&job->state[i]) != REGION_COPIED)
				sched_yield();
		pthread_mutex_lock(&c->lock);
		for (size_t i = 0; i < job->n; i++)
			c->entry_of[job->regions[i]] = 0;
		c->copying = NULL;
		enqueue_locked(c, job);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- writer thread ------------------------------------------------------ */

/* Adds the pages of job's regions whose content differs from the previous
 * checkpoint's (for checkpoint 0: every non-zero page). */
static int add_changed_pages(struct cow *c, struct cow_job *job, struct ckpt_txn *tx,
			     uint64_t *changed, char *err, size_t errlen)
{
	for (size_t i = 0; i < job->n; i++) {
		uint64_t first = (uint64_t)job->regions[i] * REGION_PAGES;
		uint64_t n = region_pages(c, job->regions[i]);
		for (uint64_t p = 0; p < n; p++) {
			bool zero = job->zero[i][p / 64] & (1ULL << (p % 64));
			const uint8_t *data = zero ? zero_page :
					      job->copy[i] + p * PAGE;
			struct ckpt_hash h = zero ? c->zero_hash : ckpt_hash__page(data);
			if (ckpt_hash__eq(&h, &c->content[first + p]))
				continue;
			if (ckpt_txn__add_page_hashed(tx, first + p, data, &h, err, errlen) != 0)
				return -1;
			c->content[first + p] = h;
			(*changed)++;
		}
	}
	return 0;
}

static int write_job(struct cow *c, struct cow_job *job, uint64_t *changed, char *err,
		     size_t errlen)
{
	struct ckpt_txn *tx = ckpt_txn__begin(c->store, job->index, err, errlen);
	if (!tx)
		return -1;
	if (add_changed_pages(c, job, tx, changed, err, errlen) != 0 ||
	    ckpt_txn__set_state(tx, &job->st, err, errlen) != 0)
		goto abort;
	if (job->log) {
		void *log = job->log;
		job->log = NULL; /* the transaction owns it now */
		if (ckpt_txn__set_log(tx, log, job->log_len, err, errlen) != 0)
			goto abort;
	}
	return ckpt_txn__commit(tx, err, errlen);
abort:
	ckpt_txn__abort(tx);
	return -1;
}

static void *writer_main(void *arg)
{
	struct cow *c = arg;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!(c->queue_head && c->queue_head->submitted) && !c->stopping)
			pthread_cond_wait(&c->cond, &c->lock);
		struct cow_job *job = c->queue_head;
		if (!job || !job->submitted)
			break; /* stopping; an unsubmitted job belongs to a failed boundary */
		bool failed = c->failed;
		pthread_mutex_unlock(&c->lock);

		char err[512];
		uint64_t changed = 0;
		if (!failed) {
			if (write_job(c, job, &changed, err, sizeof(err)) != 0) {
				/* the table now holds hashes the store does not: no
				 * later checkpoint can be right */
				fail(c, err);
			} else {
				atomic_fetch_add(&c->raw_bytes, changed * PAGE);
				if (job->index > 0)
					atomic_fetch_add(&c->dirty_pages, changed);
				atomic_fetch_add(&c->committed, 1);
			}
		}
		pthread_mutex_lock(&c->lock);
		c->queue_head = job->next;
		if (!c->queue_head)
			c->queue_tail = NULL;
		c->queued--;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		free_job(c, job);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- setup ---------------------------------------------------------------- */

/* Every page of RAM present, so that a write anywhere meets the write
 * protection (a page never touched has none to meet) and the huge pages
 * are there before any protection splits them. */
static void populate(struct cow *c)
{
	if (madvise(c->ram, c->ram_size, MADV_POPULATE_WRITE) == 0)
		return;
	for (uint64_t off = 0; off < c->ram_size; off += PAGE) {
		volatile uint8_t *b = c->ram + off;
		*b = *b;
	}
}

static int open_uffd(struct cow *c, char *err, size_t errlen)
{
	c->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (c->uffd < 0) {
		snprintf(err, errlen, "userfaultfd: %s (checkpoints need it to see what the "
				      "guest writes)", strerror(errno));
		return -1;
	}
	/* RAM is populated, so protecting untouched pages is welcome but not
	 * needed. */
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_UNPOPULATED };
	if (ioctl(c->uffd, UFFDIO_API, &api) < 0) {
		close(c->uffd);
		c->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
		api = (struct uffdio_api){ .api = UFFD_API };
		if (c->uffd < 0 || ioctl(c->uffd, UFFDIO_API, &api) < 0) {
			snprintf(err, errlen, "userfaultfd API handshake: %s", strerror(errno));
			return -1;
		}
	}
	struct uffdio_register reg = {
		.range = { .start = (uint64_t)(uintptr_t)c->ram, .len = c->ram_size },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	if (ioctl(c->uffd, UFFDIO_REGISTER, &reg) < 0) {
		snprintf(err, errlen, "userfaultfd: registering guest RAM for write-protection: %s",
			 strerror(errno));
		return -1;
	}
	return 0;
}

struct cow *cow__new(const struct guest_mem *mem, struct ckpt_store *store, bool stop_copy,
		     char *err, size_t errlen)
{
	struct cow *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->ram = mem->host;
	c->ram_size = mem->size;
	c->pages = mem->size / PAGE;
	c->nregions = (uint32_t)((mem->size + COW_REGION_SIZE - 1) / COW_REGION_SIZE);
	c->store = store;
	c->stop_copy = stop_copy;
	c->uffd = c->stop_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	pthread_mutex_init(&c->pool_lock, NULL);
	c->pool = calloc(c->nregions, sizeof(*c->pool));
	c->entry_of = calloc(c->nregions, sizeof(*c->entry_of));
	c->written = calloc(c->nregions, sizeof(*c->written));
	c->content = malloc(c->pages * sizeof(*c->content));
	c->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (!c->pool || !c->entry_of || !c->written || !c->content || c->stop_fd < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* Before checkpoint 0 every page counts as zero: it stores the rest. */
	c->zero_hash = ckpt_hash__page(zero_page);
	for (uint64_t p = 0; p < c->pages; p++)
		c->content[p] = c->zero_hash;
	for (uint32_t r = 0; r < c->nregions; r++)
		c->written[r] = true;
	populate(c);
	if (open_uffd(c, err, errlen) != 0)
		goto fail;
	if (pthread_create(&c->fault_thread, NULL, fault_main, c) != 0 ||
	    pthread_create(&c->copier_thread, NULL, copier_main, c) != 0 ||
	    pthread_create(&c->writer_thread, NULL, writer_main, c) != 0) {
		snprintf(err, errlen, "starting the checkpoint threads failed");
		goto fail; /* cannot happen short of resource exhaustion */
	}
	c->threads_started = true;
	return c;
fail:
	cow__free(c);
	return NULL;
}

int cow__finish(struct cow *c, char *err, size_t errlen)
{
	if (c->threads_started) {
		pthread_mutex_lock(&c->lock);
		/* The last checkpoint's regions may still be being copied. */
		while (c->copying && !c->failed)
			pthread_cond_wait(&c->cond, &c->lock);
		c->stopping = true;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		pthread_join(c->writer_thread, NULL);
		pthread_join(c->copier_thread, NULL);
		uint64_t one = 1;
		if (write(c->stop_fd, &one, sizeof(one)) < 0)
			abort(); /* eventfd writes of 1 cannot fail */
		pthread_join(c->fault_thread, NULL);
		c->threads_started = false;
	}
	if (c->failed) {
		snprintf(err, errlen, "%s", c->error);
		return -1;
	}
	return 0;
}

void cow__free(struct cow *c)
{
	if (!c)
		return;
	if (c->threads_started) {
		char err[8];
		cow__finish(c, err, sizeof(err));
	}
	/* pending_submit, if set, is also `copying` or queued: not freed twice. */
	free_job(c, c->copying);
	while (c->queue_head) {
		struct cow_job *next = c->queue_head->next;
		free_job(c, c->queue_head);
		c->queue_head = next;
	}
	if (c->uffd >= 0) {
		/* A guest that goes on running must not stall on a protection
		 * nobody serves any more. */
		protect(c, 0, c->nregions, false);
		close(c->uffd);
	}
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	for (size_t i = 0; i < c->pooled; i++)
		munmap(c->pool[i], COW_REGION_SIZE);
	free(c->pool);
	free(c->entry_of);
	free(c->written);
	free(c->content);
	pthread_mutex_destroy(&c->pool_lock);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* ---- the vCPU thread's side -------------------------------------------- */

static struct cow_job *new_job(struct cow *c, uint32_t index, size_t n)
{
	struct cow_job *job = calloc(1, sizeof(*job));
	if (!job)
		return NULL;
	job->index = index;
	job->regions = malloc((n ? n : 1) * sizeof(*job->regions));
	job->state = calloc(n ? n : 1, 1);
	job->zero = calloc(n ? n : 1, sizeof(*job->zero));
	job->copy = calloc(n ? n : 1, sizeof(*job->copy));
	if (!job->regions || !job->state || !job->zero || !job->copy) {
		free_job(c, job);
		return NULL;
	}
	return job;
}

int cow__begin(struct cow *c, uint32_t index, uint64_t *pages, char *err, size_t errlen)
{
	pthread_mutex_lock(&c->lock);
	/* The previous checkpoint's regions must all be copied before any can
	 * be protected again, and the writer may only fall so far behind. */
	while (!c->failed && (c->copying || c->queued >= MAX_QUEUED))
		pthread_cond_wait(&c->cond, &c->lock);
	if (c->failed) {
		snprintf(err, errlen, "%s", c->error);
		pthread_mutex_unlock(&c->lock);
		return -1;
	}
	size_t n = 0;
	for (uint32_t r = 0; r < c->nregions; r++)
		n += c->written[r];
	struct cow_job *job = new_job(c, index, n);
	if (!job) {
		pthread_mutex_unlock(&c->lock);
		snprintf(err, errlen, "checkpoint %u: out of memory for %zu region copies", index, n);
		return -1;
	}
	job->n = n;
	*pages = 0;
	/* Protect the written regions in runs; the fault thread waits for the
	 * lock, so none of them is opened again before the job knows it. */
	for (uint32_t r = 0, k = 0; r < c->nregions;) {
		if (!c->written[r]) {
			r++;
			continue;
		}
		uint32_t run = 1;
		while (r + run < c->nregions && c->written[r + run])
			run++;
		if (protect(c, r, run, true) != 0) {
			snprintf(err, errlen, "checkpoint %u: write-protecting guest RAM at 0x%llx: %s",
				 index, (unsigned long long)r * COW_REGION_SIZE, strerror(errno));
			fail_locked(c, err);
			pthread_mutex_unlock(&c->lock);
			free_job(c, job);
			return -1;
		}
		for (uint32_t i = 0; i < run; i++, k++) {
			job->regions[k] = r + i;
			c->written[r + i] = false;
			*pages += region_pages(c, r + i);
		}
		r += run;
	}
	if (c->stop_copy) {
		for (size_t i = 0; i < n; i++) {
			if (!copy_region(c, job, i)) {
				snprintf(err, errlen, "checkpoint %u: out of memory for its copies",
					 index);
				fail_locked(c, err);
				pthread_mutex_unlock(&c->lock);
				free_job(c, job);
				return -1;
			}
			job->state[i] = REGION_COPIED;
		}
		enqueue_locked(c, job);
	} else {
		for (size_t i = 0; i < n; i++)
			c->entry_of[job->regions[i]] = (uint32_t)(i + 1);
		c->copying = job;
		pthread_cond_broadcast(&c->cond);
	}
	c->pending_submit = job;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int cow__submit(struct cow *c, const struct ckpt_state *state, void *log, size_t log_len,
		char *err, size_t errlen)
{
	pthread_mutex_lock(&c->lock);
	struct cow_job *job = c->pending_submit;
	c->pending_submit = NULL;
	if (!job) {
		pthread_mutex_unlock(&c->lock);
		free(log);
		snprintf(err, errlen, "checkpoint submitted without its pages");
		return -1;
	}
	job->st = *state;
	job->log = log;
	job->log_len = log_len;
	if (state->device_state_len) {
		job->device_state = malloc(state->device_state_len);
		if (!job->device_state) {
			fail_locked(c, "out of memory");
			snprintf(err, errlen, "checkpoint %u: out of memory", job->index);
		} else {
			memcpy(job->device_state, state->device_state, state->device_state_len);
		}
	}
	job->st.device_state = job->device_state;
	job->submitted = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

bool cow__failed(struct cow *c, char *err, size_t errlen)
{
	pthread_mutex_lock(&c->lock);
	bool failed = c->failed;
	if (failed)
		snprintf(err, errlen, "%s", c->error);
	pthread_mutex_unlock(&c->lock);
	return failed;
}

void cow__stats(struct cow *c, struct cow_stats *out)
{
	*out = (struct cow_stats){
		.wp_faults = atomic_load(&c->wp_faults),
		.faults = atomic_load(&c->faults),
		.regions_copied = atomic_load(&c->regions_copied),
		.committed = atomic_load(&c->committed),
		.raw_bytes = atomic_load(&c->raw_bytes),
		.dirty_pages = atomic_load(&c->dirty_pages),
	};
}
