/* What the replay plugin sends the driver with its userfaultfd (an
 * SCM_RIGHTS message on the socket named by its dsm= argument): where
 * QEMU mapped guest RAM. Internal to simnode/. */
#ifndef SIMUBOOST_REPLAY_DSM_MSG_H
#define SIMUBOOST_REPLAY_DSM_MSG_H

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define REPLAY_DSM_MAGIC 0x314d5344u /* "DSM1": the layout's version */

struct replay_dsm_hello {
	uint32_t magic;
	uint32_t reserved;
	uint64_t base;      /* QEMU's host address of guest-physical 0 */
	uint64_t ram_bytes;
};

/* Sends the hello with uffd attached: the number of bytes sent, or -1. */
static inline ssize_t replay_dsm_msg__send_uffd(int sock, int uffd, uint64_t base,
						 uint64_t ram_bytes)
{
	struct replay_dsm_hello h = { .magic = REPLAY_DSM_MAGIC, .base = base,
				      .ram_bytes = ram_bytes };
	char control[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = &h, .iov_len = sizeof(h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
			     .msg_controllen = sizeof(control) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &uffd, sizeof(int));
	return sendmsg(sock, &mh, MSG_NOSIGNAL);
}

/* Then, on the same socket, one of these each time the guest reaches the
 * end of an interval, before the replay reads RAM to validate it: what the
 * driver served until then is what the guest asked for. */
struct replay_dsm_end {
	uint32_t magic;
	uint32_t interval;
};

/* And, where the recording QEMU reads has no page packs (a node's copy of
 * it), a request for a page's content by hash, which the driver answers
 * with the page or status -1. */
#define REPLAY_DSM_PAGE_MAGIC 0x31504744u /* "DGP1" */
struct replay_dsm_page_request {
	uint32_t magic;
	uint32_t reserved;
	uint64_t lo, hi;    /* the content hash */
};
struct replay_dsm_page_reply {
	uint32_t magic;
	int32_t status;     /* 0: page holds it */
	uint8_t page[4096];
};

#endif
