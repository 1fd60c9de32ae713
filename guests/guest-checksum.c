/* guest-checksum: computes, on the host, the `checksum <workload> 0x...`
 * line that the simuboost test guest prints for a command line.
 *
 *   guest-checksum "workload=compute tasks=4 scale=1"
 *
 * All arguments are joined with spaces and parsed exactly like the guest's
 * kernel command line (same defaults and limits).  Warnings go to stderr;
 * stdout carries only the checksum line (nothing for workload=cpuid). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"
#include "workloads.h"

/* Deterministic stand-ins for the guest's system calls. */
int64_t wl_sys_write(const char *buf, uint64_t len)
{
	(void)buf;
	return (int64_t)len;
}

int64_t wl_sys_yield(void)
{
	return 0;
}

uint64_t wl_sys_getticks(void)
{
	static uint64_t ticks;
	return ticks++;
}

uint64_t wl_sys_devread(uint64_t port)
{
	return port == WL_PORT_UART_LSR ? 0x60 : 0;
}

static void warn(void *ctx, const char *what, const char *tok, size_t toklen)
{
	(void)ctx;
	fprintf(stderr, "guest-checksum: warning: %s: %.*s\n", what, (int)toklen, tok);
}

int main(int argc, char **argv)
{
	size_t len = 1;
	for (int i = 1; i < argc; i++)
		len += strlen(argv[i]) + 1;
	char *cmdline = calloc(1, len);
	if (!cmdline) {
		perror("guest-checksum");
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		if (i > 1)
			strcat(cmdline, " ");
		strcat(cmdline, argv[i]);
	}

	struct wl_params p;
	wl_parse_cmdline(cmdline, &p, warn, NULL);
	free(cmdline);
	if (p.workload == WL_CPUID)
		return 0;

	void *ws = NULL;
	if (p.workload == WL_MEMWRITE) {
		ws = aligned_alloc(4096, (size_t)p.ws_mib << 20);
		if (!ws) {
			fprintf(stderr, "guest-checksum: cannot allocate ws=%u MiB\n", p.ws_mib);
			return 1;
		}
	}
	uint64_t acc = wl_combine_init(p.workload);
	for (uint32_t id = 0; id < p.tasks; id++)
		acc = wl_combine(acc, wl_run(&p, id, ws), id);
	free(ws);
	printf("checksum %s 0x%016" PRIx64 "\n", wl_name(p.workload), acc);
	return 0;
}
