/* simuboost test guest: the user-mode workloads.
 *
 * This code is compiled twice: into the guest's user region (CPL3, SSE2
 * allowed, no libc) and into the host tool guest-checksum.  Every workload is
 * split into per-task parts that depend only on (params, task id); the kernel
 * combines the per-task results in task-id order, so the checksum never
 * depends on scheduling, timer ticks or device timing.
 *
 * `scale` (default 100 for every workload) scales the amount of work
 * linearly; scale=100 is about 3 s of native user-mode execution per
 * workload, scale=1 is 1 % of that.  Per unit of scale:
 *   compute   COMPUTE_UNITS_PER_SCALE matrix units (32x32 matmul + hash)
 *   memwrite  MEMWRITE_PASSES_PER_SCALE passes over the whole working set
 *   syscall   SYSCALL_CALLS_PER_SCALE system calls in total
 *   devread   DEVREAD_READS_PER_SCALE device reads in total
 *   cpuid     not scaled */
#ifndef SIMUBOOST_GUEST_WORKLOADS_H
#define SIMUBOOST_GUEST_WORKLOADS_H

#include <stddef.h>
#include <stdint.h>

enum wl_kind {
	WL_COMPUTE = 0,
	WL_MEMWRITE,
	WL_SYSCALL,
	WL_DEVREAD,
	WL_CPUID,
	WL_COUNT
};

#define WL_MAX_TASKS 16
#define WL_DEFAULT_TASKS 4
#define WL_DEFAULT_HZ 1000
#define WL_MIN_HZ 100
#define WL_MAX_HZ 1000
#define WL_DEFAULT_SCALE 100
#define WL_DEFAULT_WS_MIB 64

#define COMPUTE_UNITS_PER_SCALE 2500u
#define MEMWRITE_PASSES_PER_SCALE 10u
#define SYSCALL_CALLS_PER_SCALE 200u
#define DEVREAD_READS_PER_SCALE 50u

/* Device ports a task may read through the devread system call. */
#define WL_PORT_PIT0 0x40
#define WL_PORT_UART_LSR 0x3fd

struct wl_params {
	uint32_t workload; /* enum wl_kind */
	uint32_t tasks;    /* 1..WL_MAX_TASKS */
	uint32_t hz;       /* WL_MIN_HZ..WL_MAX_HZ */
	uint32_t ws_mib;   /* memwrite working set, MiB */
	uint32_t spaces;   /* 1: an address space per task (the kernel's; no effect on results) */
	uint64_t scale;    /* >= 1 */
};

/* Provided by the environment: the guest user runtime (int 0x80) or the
 * host tool (deterministic stand-ins). */
int64_t wl_sys_write(const char *buf, uint64_t len);
int64_t wl_sys_yield(void);
uint64_t wl_sys_getticks(void);
uint64_t wl_sys_devread(uint64_t port);

/* "compute", "memwrite", ...; NULL if out of range (defined in params.c). */
const char *wl_name(uint32_t kind);

/* Runs task `id`'s part of workload p->workload and returns its result.
 * `ws` is the working set (p->ws_mib MiB, 4 KiB aligned; only memwrite
 * uses it).  Not for WL_CPUID. */
uint64_t wl_run(const struct wl_params *p, uint32_t id, void *ws);

/* Task id's contiguous share [*b, *e) of `total` items (of n tasks): its
 * compute units, its memwrite pages (which the kernel maps, spaces=1). */
static inline void wl_share(uint64_t total, uint32_t n, uint32_t id, uint64_t *b, uint64_t *e)
{
	*b = total / n * id + (total % n) * id / n;
	*e = total / n * (id + 1) + (total % n) * (id + 1) / n;
}

/* Small formatting helpers usable without libc.  Each writes at dst and
 * returns the number of characters written (no terminator). */
size_t wl_fmt_u64(char *dst, uint64_t v);
size_t wl_fmt_hex(char *dst, uint64_t v, unsigned digits);
size_t wl_fmt_str(char *dst, const char *s);

/* 64-bit mixing function (splitmix64 finalizer). */
static inline uint64_t wl_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* Combination of the per-task results, applied in task-id order. */
static inline uint64_t wl_combine_init(uint32_t kind)
{
	return wl_mix64(0x73696d75626f6f73ULL ^ kind);
}

static inline uint64_t wl_combine(uint64_t acc, uint64_t result, uint32_t id)
{
	return wl_mix64(acc ^ wl_mix64(result + id));
}

#endif
