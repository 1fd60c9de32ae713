/* What the replay plugin sends the driver with its userfaultfd (an
 * SCM_RIGHTS message on the socket named by its dsm= argument): where
 * QEMU mapped guest RAM. Internal to simnode/. */
#ifndef SIMUBOOST_REPLAY_DSM_MSG_H
#define SIMUBOOST_REPLAY_DSM_MSG_H

#include <stdint.h>

#define REPLAY_DSM_MAGIC 0x314d5344u /* "DSM1": the layout's version */

struct replay_dsm_hello {
	uint32_t magic;
	uint32_t reserved;
	uint64_t base;      /* QEMU's host address of guest-physical 0 */
	uint64_t ram_bytes;
};

/* Then, on the same socket, one of these each time the guest reaches the
 * end of an interval, before the replay reads RAM to validate it: what the
 * driver served until then is what the guest asked for. */
struct replay_dsm_end {
	uint32_t magic;
	uint32_t interval;
};

#endif
