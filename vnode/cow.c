/* Copy-on-write checkpoints of guest RAM with userfaultfd write-protection.
 *
 * Three threads besides the vCPU's:
 *   fault   serves write-protect faults: copies the page, then lifts the
 *           protection, so the guest's write lands after the copy;
 *   copier  copies the protected pages of the current checkpoint in runs
 *           and lifts their protection;
 *   writer  hands the copies to the checkpoint store in checkpoint order.
 * A page's copy is claimed with a compare-and-swap, so the copier and the
 * fault thread never both copy it. A page is marked copied only after its
 * protection is lifted: once the copier sees every page copied, no ioctl
 * of this checkpoint can still be in flight to undo the next checkpoint's
 * protection. */
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

#define PAGE CKPT_PAGE_SIZE
#define COPY_RUN 256      /* pages the copier claims and unprotects at once */
#define MAX_QUEUED 2      /* checkpoints waiting for the writer */

enum page_state { PAGE_PENDING, PAGE_CLAIMED, PAGE_COPIED, PAGE_ZERO };

struct cow_job {
	uint32_t index;
	uint64_t *gpns;
	size_t n;
	_Atomic uint8_t *state;
	uint8_t *copies;          /* n pages, mapped lazily: zero pages cost nothing */
	size_t copies_len;
	struct ckpt_state st;
	uint8_t *device_state;
	void *log;
	size_t log_len;
	bool copied, submitted;
	struct cow_job *next;
};

struct cow {
	uint8_t *ram;
	uint64_t ram_size;
	struct ckpt_store *store;
	bool stop_copy;
	int uffd, stop_fd;
	pthread_t fault_thread, copier_thread, writer_thread;
	bool threads_started;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct cow_job *copying;  /* the job whose pages may be protected */
	uint32_t *entry_of;       /* gpn -> index in `copying` + 1; 0: not in it */
	struct cow_job *queue_head, *queue_tail; /* for the writer, in order */
	size_t queued;
	struct cow_job *pending_submit; /* begun, not yet submitted */
	bool stopping;
	bool failed;
	char error[512];

	_Atomic uint64_t wp_faults, pages_copied, raw_bytes;
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

static int protect(struct cow *c, uint64_t gpn, uint64_t pages, bool wp)
{
	struct uffdio_writeprotect w = {
		.range = { .start = (uint64_t)(uintptr_t)(c->ram + gpn * PAGE), .len = pages * PAGE },
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

/* Copies entry i of job (claimed by the caller) and returns its final state. */
static uint8_t copy_entry(struct cow *c, struct cow_job *job, size_t i)
{
	const uint8_t *src = c->ram + job->gpns[i] * PAGE;
	if (is_zero(src))
		return PAGE_ZERO;
	memcpy(job->copies + i * PAGE, src, PAGE);
	return PAGE_COPIED;
}

static void free_job(struct cow_job *job)
{
	if (!job)
		return;
	free(job->gpns);
	free((void *)job->state);
	if (job->copies)
		munmap(job->copies, job->copies_len);
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
	uint64_t gpn = off / PAGE;
	pthread_mutex_lock(&c->lock);
	struct cow_job *job = c->copying;
	uint32_t e = job ? c->entry_of[gpn] : 0;
	if (e) {
		size_t i = e - 1;
		uint8_t expect = PAGE_PENDING;
		if (atomic_compare_exchange_strong(&job->state[i], &expect, PAGE_CLAIMED)) {
			uint8_t done = copy_entry(c, job, i);
			if (protect(c, gpn, 1, false) != 0) {
				char msg[128];
				snprintf(msg, sizeof(msg), "page 0x%llx: lifting write protection: %s",
					 (unsigned long long)gpn, strerror(errno));
				fail_locked(c, msg);
			}
			atomic_store(&job->state[i], done);
			atomic_fetch_add(&c->wp_faults, 1);
		}
		/* Otherwise the copier holds it and wakes the writer when done. */
		pthread_mutex_unlock(&c->lock);
		return;
	}
	pthread_mutex_unlock(&c->lock);
	/* A late message for a page already released: the writer only needs
	 * waking, and lifting a protection here could undo a newer one. */
	struct uffdio_range r = { .start = addr & ~(uint64_t)(PAGE - 1), .len = PAGE };
	ioctl(c->uffd, UFFDIO_WAKE, &r);
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

/* Claims a run of consecutive pending pages starting at entry i, copies
 * them, lifts their protection with one ioctl and marks them copied.
 * Returns the number of entries consumed (claimed or already taken). */
static size_t copy_run(struct cow *c, struct cow_job *job, size_t i)
{
	size_t n = 0;
	uint8_t done[COPY_RUN];
	while (i + n < job->n && n < COPY_RUN) {
		if (n && job->gpns[i + n] != job->gpns[i] + n)
			break;
		uint8_t expect = PAGE_PENDING;
		if (!atomic_compare_exchange_strong(&job->state[i + n], &expect, PAGE_CLAIMED))
			break;
		done[n] = copy_entry(c, job, i + n);
		n++;
	}
	if (n == 0)
		return 1; /* the fault thread has it */
	if (!c->stop_copy && protect(c, job->gpns[i], n, false) != 0) {
		char msg[128];
		snprintf(msg, sizeof(msg), "page 0x%llx: lifting write protection: %s",
			 (unsigned long long)job->gpns[i], strerror(errno));
		fail(c, msg);
	}
	for (size_t k = 0; k < n; k++)
		atomic_store(&job->state[i + k], done[k]);
	atomic_fetch_add(&c->pages_copied, n);
	return n;
}

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
		for (size_t i = 0; i < job->n;)
			i += copy_run(c, job, i);
		/* Pages the fault thread claimed finish in microseconds. */
		for (size_t i = 0; i < job->n; i++)
			while (atomic_load(&job->state[i]) < PAGE_COPIED)
				sched_yield();
		pthread_mutex_lock(&c->lock);
		for (size_t i = 0; i < job->n; i++)
			c->entry_of[job->gpns[i]] = 0;
		c->copying = NULL;
		enqueue_locked(c, job);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- writer thread ------------------------------------------------------ */

static int write_job(struct cow *c, struct cow_job *job, char *err, size_t errlen)
{
	struct ckpt_txn *tx = ckpt_txn__begin(c->store, job->index, err, errlen);
	if (!tx)
		return -1;
	for (size_t i = 0; i < job->n; i++) {
		const uint8_t *data = job->state[i] == PAGE_ZERO ? zero_page : job->copies + i * PAGE;
		if (ckpt_txn__add_page(tx, job->gpns[i], data, err, errlen) != 0)
			goto abort;
	}
	if (ckpt_txn__set_state(tx, &job->st, err, errlen) != 0)
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
		if (!failed) {
			if (write_job(c, job, err, sizeof(err)) != 0) {
				fail(c, err);
			} else {
				atomic_fetch_add(&c->raw_bytes, (uint64_t)job->n * PAGE);
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
		free_job(job);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- setup ---------------------------------------------------------------- */

static int open_uffd(struct cow *c, char *err, size_t errlen)
{
	c->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (c->uffd < 0) {
		snprintf(err, errlen, "userfaultfd: %s (copy-on-write checkpoints need it; "
				      "try --checkpoint-mode=stop-copy)", strerror(errno));
		return -1;
	}
	/* Only pages that exist get protected (see record.c), so the kernel's
	 * protection of untouched pages is welcome but not needed. */
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
	c->store = store;
	c->stop_copy = stop_copy;
	c->uffd = c->stop_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->entry_of = calloc(mem->size / PAGE, sizeof(*c->entry_of));
	c->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (!c->entry_of || c->stop_fd < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (!stop_copy && open_uffd(c, err, errlen) != 0)
		goto fail;
	if ((!stop_copy && pthread_create(&c->fault_thread, NULL, fault_main, c) != 0) ||
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
		/* The last checkpoint's pages may still be being copied. */
		while (c->copying && !c->failed)
			pthread_cond_wait(&c->cond, &c->lock);
		c->stopping = true;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		pthread_join(c->writer_thread, NULL);
		pthread_join(c->copier_thread, NULL);
		if (!c->stop_copy) {
			uint64_t one = 1;
			if (write(c->stop_fd, &one, sizeof(one)) < 0)
				abort(); /* eventfd writes of 1 cannot fail */
			pthread_join(c->fault_thread, NULL);
		}
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
	free_job(c->copying);
	while (c->queue_head) {
		struct cow_job *next = c->queue_head->next;
		free_job(c->queue_head);
		c->queue_head = next;
	}
	if (c->uffd >= 0)
		close(c->uffd);
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	free(c->entry_of);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* ---- the vCPU thread's side -------------------------------------------- */

int cow__begin(struct cow *c, uint32_t index, uint64_t *gpns, size_t n, char *err,
	       size_t errlen)
{
	struct cow_job *job = calloc(1, sizeof(*job));
	if (!job) {
		free(gpns);
		snprintf(err, errlen, "checkpoint %u: out of memory", index);
		return -1;
	}
	job->index = index;
	job->gpns = gpns;
	job->n = n;
	job->state = calloc(n ? n : 1, 1);
	job->copies_len = (n ? n : 1) * PAGE;
	job->copies = mmap(NULL, job->copies_len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!job->state || job->copies == MAP_FAILED) {
		job->copies = NULL;
		free_job(job);
		snprintf(err, errlen, "checkpoint %u: out of memory for %zu page copies", index, n);
		return -1;
	}

	pthread_mutex_lock(&c->lock);
	/* The previous checkpoint's pages must all be copied before any can be
	 * protected again, and the writer may only fall so far behind. */
	while (!c->failed && (c->copying || c->queued >= MAX_QUEUED))
		pthread_cond_wait(&c->cond, &c->lock);
	if (c->failed) {
		snprintf(err, errlen, "%s", c->error);
		pthread_mutex_unlock(&c->lock);
		free_job(job);
		return -1;
	}
	if (c->stop_copy) {
		pthread_mutex_unlock(&c->lock);
		for (size_t i = 0; i < n; i++)
			job->state[i] = copy_entry(c, job, i);
		atomic_fetch_add(&c->pages_copied, n);
		pthread_mutex_lock(&c->lock);
		enqueue_locked(c, job);
	} else {
		for (size_t i = 0; i < n; i++)
			c->entry_of[gpns[i]] = (uint32_t)(i + 1);
		pthread_mutex_unlock(&c->lock);
		for (size_t i = 0; i < n;) {
			size_t run = 1;
			while (i + run < n && gpns[i + run] == gpns[i] + run)
				run++;
			if (protect(c, gpns[i], run, true) != 0) {
				snprintf(err, errlen, "checkpoint %u: write-protecting page 0x%llx: %s",
					 index, (unsigned long long)gpns[i], strerror(errno));
				pthread_mutex_lock(&c->lock);
				for (size_t k = 0; k < n; k++)
					c->entry_of[gpns[k]] = 0;
				pthread_mutex_unlock(&c->lock);
				protect(c, 0, c->ram_size / PAGE, false);
				free_job(job);
				return -1;
			}
			i += run;
		}
		pthread_mutex_lock(&c->lock);
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
		.pages_copied = atomic_load(&c->pages_copied),
		.committed = atomic_load(&c->committed),
		.raw_bytes = atomic_load(&c->raw_bytes),
	};
}
