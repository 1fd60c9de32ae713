/* Demand paging, QEMU's side (the driver's is dsm.c): guest RAM is a
 * shared mapping of an empty memfd, and every page the guest, QEMU or a
 * plugin touches first is a userfaultfd fault that the driver serves.
 * Registered at plugin install, before any CPU exists and before anything
 * reads RAM. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "replay-dsm-msg.h"
#include "replay-priv.h"

/* The driver names the memfd so (replay.c); /proc/self/maps shows it. */
#define RAM_NAME "/memfd:simuboost-ram"

static int find_ram(uint64_t ram_bytes, uint64_t *base, char *err, size_t errlen)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4400];
	if (!f) {
		snprintf(err, errlen, "/proc/self/maps: %s", strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi;
		if (!strstr(line, RAM_NAME) || sscanf(line, "%llx-%llx", &lo, &hi) != 2 ||
		    hi - lo != ram_bytes)
			continue;
		fclose(f);
		*base = lo;
		return 0;
	}
	fclose(f);
	snprintf(err, errlen, "guest RAM (%s, %llu bytes) is not mapped in QEMU", RAM_NAME,
		 (unsigned long long)ram_bytes);
	return -1;
}

int replay_dsm__attach(struct replay_dsm *d, int sock, uint64_t ram_bytes, char *err,
		       size_t errlen)
{
	if (find_ram(ram_bytes, &d->base, err, errlen) != 0)
		return -1;
	d->ram_bytes = ram_bytes;
	int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_MISSING_SHMEM |
					      UFFD_FEATURE_MINOR_SHMEM };
	struct uffdio_register reg = {
		.range = { .start = d->base, .len = ram_bytes },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR,
	};
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) != 0 ||
	    ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) {
		snprintf(err, errlen, "userfaultfd on guest RAM: %s (demand paging needs Linux "
				      "5.14 or later)", strerror(errno));
		if (uffd >= 0)
			close(uffd);
		return -1;
	}
	ssize_t n = replay_dsm_msg__send_uffd(sock, uffd, d->base, ram_bytes);
	/* the driver's copy keeps the registration alive; ours would only
	 * keep it open past the driver */
	close(uffd);
	if (n != (ssize_t)sizeof(struct replay_dsm_hello)) {
		close(sock);
		snprintf(err, errlen, "handing userfaultfd to the driver: %s",
			 n < 0 ? strerror(errno) : "short write");
		return -1;
	}
	d->sock = sock;
	d->attached = true;
	return 0;
}

void replay_dsm__interval_end(const struct replay_dsm *d, uint32_t interval)
{
	struct replay_dsm_end e = { .magic = REPLAY_DSM_MAGIC, .interval = interval };
	/* only statistics: a driver that is gone kills this QEMU anyway */
	if (send(d->sock, &e, sizeof(e), MSG_NOSIGNAL) < 0)
		return;
}

int replay_dsm__resident(const struct replay_dsm *d, uint8_t **vec, char *err, size_t errlen)
{
	size_t n = d->ram_bytes / CKPT_PAGE_SIZE;
	*vec = malloc(n ? n : 1);
	if (!*vec) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* pages in the memfd: fetched, filled, written or prefetched; none of
	 * this faults anything in */
	if (mincore((void *)(uintptr_t)d->base, d->ram_bytes, *vec) != 0) {
		snprintf(err, errlen, "mincore on guest RAM: %s", strerror(errno));
		free(*vec);
		*vec = NULL;
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		(*vec)[i] &= 1;
	return 0;
}

int replay_dsm__page(const struct replay_dsm *d, const struct ckpt_hash *hash, void *out,
		     char *err, size_t errlen)
{
	struct replay_dsm_page_request q = { .magic = REPLAY_DSM_PAGE_MAGIC, .lo = hash->lo,
					     .hi = hash->hi };
	static __thread struct replay_dsm_page_reply a;
	if (!d->attached) {
		snprintf(err, errlen, "content %016llx%016llx: no packs here and no driver to ask",
			 (unsigned long long)hash->hi, (unsigned long long)hash->lo);
		return -1;
	}
	ssize_t n = send(d->sock, &q, sizeof(q), MSG_NOSIGNAL);
	if (n == (ssize_t)sizeof(q))
		do
			n = recv(d->sock, &a, sizeof(a), 0);
		while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(a) || a.magic != REPLAY_DSM_PAGE_MAGIC || a.status != 0) {
		snprintf(err, errlen, "content %016llx%016llx: the driver %s",
			 (unsigned long long)hash->hi, (unsigned long long)hash->lo,
			 n == (ssize_t)sizeof(a) ? "could not fetch it" : "did not answer");
		return -1;
	}
	memcpy(out, a.page, CKPT_PAGE_SIZE);
	return 0;
}
