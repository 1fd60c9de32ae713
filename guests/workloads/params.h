/* simuboost test guest: command-line parsing, shared by the guest kernel
 * and the host tool guest-checksum so that both apply the same defaults and
 * limits.  No libc. */
#ifndef SIMUBOOST_GUEST_PARAMS_H
#define SIMUBOOST_GUEST_PARAMS_H

#include <stddef.h>

#include "workloads.h"

/* Called once per problem: `what` is a short message ("unknown key",
 * "bad value", "out of range, clamped"), tok/toklen the offending token. */
typedef void wl_warn_fn(void *ctx, const char *what, const char *tok, size_t toklen);

/* Parses "workload=compute|memwrite|syscall|devread|cpuid tasks=N hz=N
 * scale=N ws=MiB" (space or tab separated, later keys win).  Fills *p with
 * defaults first; warns and keeps the default for anything invalid. */
void wl_parse_cmdline(const char *cmdline, struct wl_params *p, wl_warn_fn *warn, void *ctx);

#endif
