/* simuboost test guest: the user-mode workloads (guest CPL3 and host). */
#include "workloads.h"

size_t wl_fmt_u64(char *dst, uint64_t v)
{
	char tmp[20];
	size_t n = 0, i;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		dst[i] = tmp[n - 1 - i];
	return n;
}

size_t wl_fmt_hex(char *dst, uint64_t v, unsigned digits)
{
	static const char hex[] = "0123456789abcdef";
	for (unsigned i = 0; i < digits; i++)
		dst[i] = hex[(v >> (4 * (digits - 1 - i))) & 0xf];
	return digits;
}

size_t wl_fmt_str(char *dst, const char *s)
{
	size_t n = 0;
	while (s[n]) {
		dst[n] = s[n];
		n++;
	}
	return n;
}

/* ---- compute: integer matrix multiply and a mixing hash ---------------- */

#define CM_N 32

static uint64_t compute_unit(uint64_t unit)
{
	uint32_t a[CM_N * CM_N], b[CM_N * CM_N], c[CM_N * CM_N];
	uint64_t s = wl_mix64(unit ^ 0x636f6d7075746521ULL);
	uint64_t h = unit;

	for (unsigned i = 0; i < CM_N * CM_N; i++) {
		s += 0x9e3779b97f4a7c15ULL;
		uint64_t z = wl_mix64(s);
		a[i] = (uint32_t)z;
		b[i] = (uint32_t)(z >> 32);
		c[i] = 0;
		h = (h ^ z) * 0x100000001b3ULL;
	}
	for (unsigned i = 0; i < CM_N; i++)
		for (unsigned k = 0; k < CM_N; k++) {
			uint32_t aik = a[i * CM_N + k];
			for (unsigned j = 0; j < CM_N; j++)
				c[i * CM_N + j] += aik * b[k * CM_N + j];
		}
	for (unsigned i = 0; i < CM_N * CM_N; i += 2)
		h = wl_mix64(h ^ ((uint64_t)c[i] << 32 | c[i + 1]));
	return h;
}

static uint64_t run_compute(const struct wl_params *p, uint32_t id)
{
	uint64_t b, e, h = wl_mix64(id + 1);
	wl_share(p->scale * COMPUTE_UNITS_PER_SCALE, p->tasks, id, &b, &e);
	for (uint64_t u = b; u < e; u++)
		h = wl_mix64(h ^ compute_unit(u));
	return h ^ (e - b);
}

/* ---- memwrite: repeated writes over a share of the working set ---------- */

static uint64_t run_memwrite(const struct wl_params *p, uint32_t id, void *ws)
{
	uint64_t pages = ((uint64_t)p->ws_mib << 20) / 4096, pb, pe;
	wl_share(pages, p->tasks, id, &pb, &pe);
	uint64_t *w = (uint64_t *)ws + pb * 512;
	uint64_t n = (pe - pb) * 512;
	uint64_t passes = p->scale * MEMWRITE_PASSES_PER_SCALE;
	uint64_t h = 0xcbf29ce484222325ULL;

	for (uint64_t pass = 0; pass < passes; pass++) {
		uint64_t k = wl_mix64(pass + 1);
		if (pass == 0) {
			for (uint64_t i = 0; i < n; i++)
				w[i] = (pb * 512 + i) * 0x9e3779b97f4a7c15ULL ^ k;
		} else {
			for (uint64_t i = 0; i < n; i++)
				w[i] = ((w[i] << 13) | (w[i] >> 51)) + k;
		}
		/* Every pass really stores: the next one reads what this wrote. */
		__asm__ volatile("" ::: "memory");
	}
	for (uint64_t i = 0; i < n; i++)
		h = (h ^ w[i]) * 0x100000001b3ULL;
	return wl_mix64(h ^ n);
}

/* ---- syscall: compute with frequent system calls ------------------------ */

static uint64_t run_syscall(const struct wl_params *p, uint32_t id)
{
	uint64_t b, e, h = wl_mix64(id + 0x5c);
	wl_share(p->scale * SYSCALL_CALLS_PER_SCALE, p->tasks, id, &b, &e);
	for (uint64_t g = b; g < e; g++) {
		uint64_t x = g;
		for (unsigned r = 0; r < 64; r++)
			x = wl_mix64(x + r);
		h = wl_mix64(h ^ x);
		switch (g % 4) {
		case 0:
		case 2:
			h ^= (uint64_t)wl_sys_yield();
			break;
		case 1:
			(void)wl_sys_getticks(); /* never part of the checksum */
			break;
		default:
			if (g % 1000 == 3) {
				char line[64];
				size_t n = wl_fmt_str(line, "syscall: task ");
				n += wl_fmt_u64(line + n, id);
				n += wl_fmt_str(line + n, " call ");
				n += wl_fmt_u64(line + n, g);
				line[n++] = '\n';
				h = wl_mix64(h ^ (uint64_t)wl_sys_write(line, n));
			} else {
				(void)wl_sys_getticks();
			}
			break;
		}
	}
	return wl_mix64(h ^ (e - b));
}

/* ---- devread: PIT counter and UART LSR reads ----------------------------- */

static uint64_t run_devread(const struct wl_params *p, uint32_t id)
{
	uint64_t b, e, h = wl_mix64(id + 0xde), count = 0;
	wl_share(p->scale * DEVREAD_READS_PER_SCALE, p->tasks, id, &b, &e);
	for (uint64_t g = b; g < e; g++) {
		if (g & 1) {
			/* An idle transmitter always reads THRE|TEMT. */
			uint64_t lsr = wl_sys_devread(WL_PORT_UART_LSR);
			h = wl_mix64(h ^ (lsr & 0x60) ^ (g << 8));
		} else {
			/* The PIT count is timing: only the fact of the read counts. */
			(void)wl_sys_devread(WL_PORT_PIT0);
			h = wl_mix64(h ^ WL_PORT_PIT0 ^ (g << 8));
		}
		count++;
	}
	return wl_mix64(h ^ count);
}

uint64_t wl_run(const struct wl_params *p, uint32_t id, void *ws)
{
	switch (p->workload) {
	case WL_COMPUTE:
		return run_compute(p, id);
	case WL_MEMWRITE:
		return run_memwrite(p, id, ws);
	case WL_SYSCALL:
		return run_syscall(p, id);
	case WL_DEVREAD:
		return run_devread(p, id);
	default:
		return 0;
	}
}
