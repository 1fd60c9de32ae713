/* simuboost test guest: command-line parsing (guest kernel and host tool). */
#include "params.h"

static const char *const wl_names[WL_COUNT] = {
	[WL_COMPUTE] = "compute",
	[WL_MEMWRITE] = "memwrite",
	[WL_SYSCALL] = "syscall",
	[WL_DEVREAD] = "devread",
	[WL_CPUID] = "cpuid",
};

const char *wl_name(uint32_t kind)
{
	return kind < WL_COUNT ? wl_names[kind] : 0;
}

#define WL_MAX_SCALE 1000000000ULL
#define WL_MAX_WS_MIB 4000u /* the guest maps at most 4 GiB */

static int tok_eq(const char *s, size_t len, const char *lit)
{
	size_t i = 0;
	for (; i < len && lit[i]; i++)
		if (s[i] != lit[i])
			return 0;
	return i == len && lit[i] == '\0';
}

/* Decimal only; returns 0 on an empty, non-numeric or huge value. */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0 || len > 12)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 1;
}

static void warn_tok(wl_warn_fn *warn, void *ctx, const char *what, const char *tok, size_t len)
{
	if (warn)
		warn(ctx, what, tok, len);
}

/* Parses a bounded number; clamps into [lo, hi] with a warning. */
static void set_bounded(uint64_t *dst, const char *tok, size_t toklen, const char *val,
			size_t vlen, uint64_t lo, uint64_t hi, wl_warn_fn *warn, void *ctx)
{
	uint64_t v;
	if (!parse_u64(val, vlen, &v)) {
		warn_tok(warn, ctx, "bad value, using the default", tok, toklen);
		return;
	}
	if (v < lo || v > hi) {
		warn_tok(warn, ctx, "out of range, clamped", tok, toklen);
		v = v < lo ? lo : hi;
	}
	*dst = v;
}

void wl_parse_cmdline(const char *cmdline, struct wl_params *p, wl_warn_fn *warn, void *ctx)
{
	uint64_t tasks = WL_DEFAULT_TASKS, hz = WL_DEFAULT_HZ, scale = WL_DEFAULT_SCALE;
	uint64_t ws = WL_DEFAULT_WS_MIB, spaces = 0;
	uint32_t workload = WL_COMPUTE;
	const char *s = cmdline ? cmdline : "";

	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
			s++;
		if (!*s)
			break;
		const char *tok = s;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
			s++;
		size_t toklen = (size_t)(s - tok);
		size_t klen = 0;
		while (klen < toklen && tok[klen] != '=')
			klen++;
		if (klen == toklen) {
			warn_tok(warn, ctx, "unknown key", tok, toklen);
			continue;
		}
		const char *val = tok + klen + 1;
		size_t vlen = toklen - klen - 1;

		if (tok_eq(tok, klen, "workload")) {
			uint32_t k;
			for (k = 0; k < WL_COUNT; k++)
				if (tok_eq(val, vlen, wl_name(k)))
					break;
			if (k == WL_COUNT)
				warn_tok(warn, ctx, "unknown workload, using the default", tok, toklen);
			else
				workload = k;
		} else if (tok_eq(tok, klen, "tasks")) {
			set_bounded(&tasks, tok, toklen, val, vlen, 1, WL_MAX_TASKS, warn, ctx);
		} else if (tok_eq(tok, klen, "hz")) {
			set_bounded(&hz, tok, toklen, val, vlen, WL_MIN_HZ, WL_MAX_HZ, warn, ctx);
		} else if (tok_eq(tok, klen, "scale")) {
			set_bounded(&scale, tok, toklen, val, vlen, 1, WL_MAX_SCALE, warn, ctx);
		} else if (tok_eq(tok, klen, "ws")) {
			set_bounded(&ws, tok, toklen, val, vlen, 1, WL_MAX_WS_MIB, warn, ctx);
		} else if (tok_eq(tok, klen, "spaces")) {
			set_bounded(&spaces, tok, toklen, val, vlen, 0, 1, warn, ctx);
		} else {
			warn_tok(warn, ctx, "unknown key", tok, toklen);
		}
	}
	p->workload = workload;
	p->tasks = (uint32_t)tasks;
	p->hz = (uint32_t)hz;
	p->scale = scale;
	p->ws_mib = (uint32_t)ws;
	p->spaces = (uint32_t)spaces;
}
