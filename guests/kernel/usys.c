/* simuboost test guest: the user-mode (CPL3) runtime.  Linked into the user
 * region: task entry, system call wrappers and the user-mode CPUID dump. */
#include <stdint.h>

#include "abi.h"
#include "workloads.h"

/* Written by the kernel before the tasks start; read-only afterwards. */
struct wl_params user_params;
uint8_t user_stacks[MAX_TASKS][USER_STACK_SIZE] __attribute__((aligned(16)));

static inline uint64_t sys2(uint64_t nr, uint64_t a0, uint64_t a1)
{
	/* ud2 is the system call instruction: see SYSCALL_VECTOR in abi.h.
	 * The cmp defines every arithmetic flag first: the kernel saves
	 * RFLAGS, and flags an earlier instruction left undefined differ
	 * between hardware and TCG, which a replay would see in RAM. */
	__asm__ volatile("cmp %%eax, %%eax\n\tud2" : "+a"(nr) : "D"(a0), "S"(a1)
			 : "memory", "cc");
	return nr;
}

int64_t wl_sys_write(const char *buf, uint64_t len)
{
	return (int64_t)sys2(SYS_WRITE, (uint64_t)(uintptr_t)buf, len);
}

int64_t wl_sys_yield(void)
{
	return (int64_t)sys2(SYS_YIELD, 0, 0);
}

uint64_t wl_sys_getticks(void)
{
	return sys2(SYS_GETTICKS, 0, 0);
}

uint64_t wl_sys_devread(uint64_t port)
{
	return sys2(SYS_DEVREAD, port, 0);
}

static void put_str(const char *s)
{
	uint64_t n = 0;
	while (s[n])
		n++;
	wl_sys_write(s, n);
}

static void cpuid_range(uint32_t first, uint32_t last)
{
	for (uint32_t leaf = first; leaf <= last; leaf++) {
		uint32_t r[4];
		char line[64];
		size_t n;
		__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
				 : "a"(leaf), "c"(0));
		n = wl_fmt_str(line, "cpuid ");
		n += wl_fmt_hex(line + n, leaf, 8);
		line[n++] = ':';
		for (unsigned i = 0; i < 4; i++) {
			line[n++] = ' ';
			n += wl_fmt_hex(line + n, r[i], 8);
		}
		line[n++] = '\n';
		wl_sys_write(line, n);
	}
}

static void cpuid_user(void)
{
	uint32_t a, b, c, d;

	put_str("cpuid-user-begin\n");
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
	cpuid_range(0, a > 0xff ? 0xff : a);
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000000), "c"(0));
	if (a >= 0x80000000)
		cpuid_range(0x80000000, a > 0x800000ff ? 0x800000ff : a);
	put_str("cpuid-user-end\n");
}

void user_task_entry(const struct wl_params *p, uint64_t id, void *ws)
{
	uint64_t result = 0;

	if (p->workload == WL_CPUID)
		cpuid_user();
	else
		result = wl_run(p, (uint32_t)id, ws);
	sys2(SYS_EXIT, result, 0);
	for (;;)
		;
}
