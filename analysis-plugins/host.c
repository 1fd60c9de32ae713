/* Loading analysis plugins and running their states: see analysis.h.
 *
 * A saved state is a plugin's bytes in an envelope (little-endian):
 *   "SBASTATE", u32 envelope version, u32 plugin API version,
 *   char name[32] (NUL-padded), u32 first, u32 last, u64 payload length,
 *   the payload, u64 XXH3-64 of everything before it. */
#include <dlfcn.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "analysis.h"

#define STATE_MAGIC "SBASTATE"
#define STATE_VERSION 1u
#define STATE_NAME_MAX 32u
#define STATE_HDR_SIZE (8u + 4u + 4u + STATE_NAME_MAX + 4u + 4u + 8u)

/* libFuzzer's convention (tests/fuzz): random input rarely has the right
 * checksum, so the fuzz build reaches the plugins' load behind it. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define SUM_OK(stored, computed) ((void)(stored), (void)(computed), true)
#else
#define SUM_OK(stored, computed) ((stored) == (computed))
#endif

struct analysis {
	void *dl;
	const struct sb_analysis *ops;
	void *plugin;
	char spec[PATH_MAX + 1024];
};

struct analysis_state {
	struct analysis *a;
	void *state;
	uint32_t first, last;
	bool open;                  /* between begin and end */
};

static bool name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > STATE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      name[i] == '_' || name[i] == '-'))
			return false;
	return true;
}

static const char *missing_callback(const struct sb_analysis *o)
{
	if (!o->create) return "create";
	if (!o->destroy) return "destroy";
	if (!o->state_new) return "state_new";
	if (!o->state_free) return "state_free";
	if (!o->interval_begin) return "interval_begin";
	if (!o->interval_end) return "interval_end";
	if (!o->save) return "save";
	if (!o->load) return "load";
	if (!o->merge) return "merge";
	if (!o->report) return "report";
	return NULL;
}

struct analysis *analysis__load(const char *spec, char *err, size_t errlen)
{
	struct analysis *a = calloc(1, sizeof(*a));
	char path[PATH_MAX];
	const char *comma = strchr(spec, ',');
	size_t plen = comma ? (size_t)(comma - spec) : strlen(spec);

	if (!a || plen == 0 || plen >= sizeof(path) || strlen(spec) >= sizeof(a->spec)) {
		snprintf(err, errlen, "analysis \"%s\": %s", spec,
			 a ? "expected PLUGIN.so[,ARGS]" : "out of memory");
		free(a);
		return NULL;
	}
	memcpy(path, spec, plen);
	path[plen] = '\0';
	strcpy(a->spec, spec);
	/* dlopen searches the library path for a bare name; a plugin is a file */
	char rel[PATH_MAX + 2];
	snprintf(rel, sizeof(rel), "%s%s", strchr(path, '/') ? "" : "./", path);
	a->dl = dlopen(rel, RTLD_NOW | RTLD_LOCAL);
	if (!a->dl) {
		snprintf(err, errlen, "analysis %s: %s", path, dlerror());
		/* a QEMU plugin needs QEMU's symbols: say what it is instead */
		void *lazy = dlopen(rel, RTLD_LAZY | RTLD_LOCAL);
		if (lazy && dlsym(lazy, "qemu_plugin_install"))
			snprintf(err, errlen, "analysis %s: a QEMU TCG plugin, not a simuboost "
					      "analysis plugin (attach it with --qemu-plugin)", path);
		if (lazy)
			dlclose(lazy);
		goto fail;
	}
	sb_analysis_entry_fn entry;
	*(void **)&entry = dlsym(a->dl, SB_ANALYSIS_ENTRY);
	if (!entry) {
		snprintf(err, errlen, "analysis %s: no %s() symbol: not a simuboost analysis plugin",
			 path, SB_ANALYSIS_ENTRY);
		goto fail;
	}
	a->ops = entry();
	const char *cb = a->ops ? missing_callback(a->ops) : "everything";
	if (!a->ops || a->ops->api_version != SB_ANALYSIS_API_VERSION) {
		snprintf(err, errlen, "analysis %s: plugin API version %u, this simuboost speaks %u",
			 path, a->ops ? a->ops->api_version : 0, SB_ANALYSIS_API_VERSION);
		goto fail;
	}
	if (cb || !name_ok(a->ops->name)) {
		snprintf(err, errlen, "analysis %s: %s%s", path, cb ? "no callback " : "bad name",
			 cb ? cb : " (1..32 of a-z, 0-9, _ and -)");
		goto fail;
	}
	char perr[512] = "";
	a->plugin = a->ops->create(comma ? comma + 1 : "", perr, sizeof(perr));
	if (!a->plugin) {
		snprintf(err, errlen, "analysis %s: %s", a->ops->name,
			 perr[0] ? perr : "could not start");
		goto fail;
	}
	return a;
fail:
	if (a->dl)
		dlclose(a->dl);
	free(a);
	return NULL;
}

void analysis__close(struct analysis *a)
{
	if (!a)
		return;
	a->ops->destroy(a->plugin);
	dlclose(a->dl);
	free(a);
}

const char *analysis__name(const struct analysis *a)
{
	return a->ops->name;
}

const char *analysis__spec(const struct analysis *a)
{
	return a->spec;
}

bool analysis__wants(const struct analysis *a, enum trace_kind kind)
{
	switch (kind) {
	case TRACE_INSN: return a->ops->insn != NULL;
	case TRACE_MEM: return a->ops->mem != NULL;
	case TRACE_EVENT: return a->ops->event != NULL;
	}
	return false;
}

bool analysis__wants_memory(const struct analysis *a)
{
	return a->ops->flags & SB_ANALYSIS_MEMORY;
}

/* ---- states ------------------------------------------------------------------ */

static struct analysis_state *wrap(struct analysis *a, void *state, const char *what, char *err,
				   size_t errlen)
{
	struct analysis_state *s = state ? calloc(1, sizeof(*s)) : NULL;
	if (!s) {
		if (state)
			a->ops->state_free(a->plugin, state);
		snprintf(err, errlen, "analysis %s: %s", a->ops->name, what);
		return NULL;
	}
	s->a = a;
	s->state = state;
	return s;
}

struct analysis_state *analysis_state__new(struct analysis *a, char *err, size_t errlen)
{
	return wrap(a, a->ops->state_new(a->plugin), "no state (out of memory)", err, errlen);
}

void analysis_state__free(struct analysis_state *s)
{
	if (!s)
		return;
	s->a->ops->state_free(s->a->plugin, s->state);
	free(s);
}

void analysis_state__begin(struct analysis_state *s, uint32_t interval)
{
	if (s->first == s->last)
		s->first = s->last = interval;
	s->open = true;
	s->a->ops->interval_begin(s->a->plugin, s->state, interval);
}

void analysis_state__record(struct analysis_state *s, const struct trace_record *rec)
{
	const struct sb_analysis *o = s->a->ops;
	void (*cb)(void *, const struct trace_record *) =
		rec->kind == TRACE_INSN ? o->insn : rec->kind == TRACE_MEM ? o->mem : o->event;
	if (cb)
		cb(s->state, rec);
}

int analysis_state__end(struct analysis_state *s, const struct sb_memory *mem, char *err,
			size_t errlen)
{
	char perr[512] = "";
	if (!s->open) {
		snprintf(err, errlen, "analysis %s: interval end without a beginning",
			 s->a->ops->name);
		return -1;
	}
	s->open = false;
	if (s->a->ops->interval_end(s->a->plugin, s->state, s->last,
				    analysis__wants_memory(s->a) ? mem : NULL, perr,
				    sizeof(perr)) != 0) {
		snprintf(err, errlen, "analysis %s: interval %u: %s", s->a->ops->name, s->last,
			 perr[0] ? perr : "failed");
		return -1;
	}
	s->last++;
	return 0;
}

void analysis_state__range(const struct analysis_state *s, uint32_t *first, uint32_t *last)
{
	*first = s->first;
	*last = s->last;
}

int analysis_state__merge(struct analysis_state *s, struct analysis_state *next, char *err,
			  size_t errlen)
{
	char perr[512] = "";
	int rc = 0;
	if (s->first != s->last && s->last != next->first) {
		snprintf(err, errlen, "analysis %s: intervals %u-%u cannot follow %u-%u",
			 s->a->ops->name, next->first, next->last, s->first, s->last);
		rc = -1;
	} else if (s->a->ops->merge(s->a->plugin, s->state, next->state, perr, sizeof(perr)) != 0) {
		snprintf(err, errlen, "analysis %s: merging intervals %u-%u: %s", s->a->ops->name,
			 next->first, next->last, perr[0] ? perr : "failed");
		rc = -1;
	} else {
		if (s->first == s->last)
			s->first = next->first;
		s->last = next->last;
	}
	analysis_state__free(next);
	return rc;
}

int analysis_state__report(const struct analysis_state *s, FILE *out, char *err, size_t errlen)
{
	if (s->a->ops->report(s->a->plugin, s->state, out) != 0 || ferror(out)) {
		snprintf(err, errlen, "analysis %s: the report failed", s->a->ops->name);
		return -1;
	}
	return 0;
}

/* ---- on disk -------------------------------------------------------------------- */

void analysis__state_path(char *out, size_t outlen, const char *dir, const char *name,
			  uint32_t first, uint32_t last)
{
	snprintf(out, outlen, "%s/%s.%06u-%06u.state", dir, name, first, last);
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* Writes len bytes to path through path.tmp, fsync and rename. */
static int write_atomic(const char *path, const void *buf, size_t len, char *err, size_t errlen)
{
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	const uint8_t *p = buf;
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "%s: write: %s", tmp, n ? strerror(errno) : "no space");
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "%s: rename: %s", path, strerror(errno));
		goto fail;
	}
	/* the rename itself survives a crash of the machine once its directory
	 * is on disk: a merge may then rely on the state being there */
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	int dfd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0) {
		snprintf(err, errlen, "%s: fsync of its directory: %s", path, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	close(dfd);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}

int analysis_state__save(const struct analysis_state *s, const char *dir, char *err,
			 size_t errlen)
{
	char path[PATH_MAX], *payload = NULL;
	size_t plen = 0;
	FILE *f = open_memstream(&payload, &plen);
	const char *name = s->a->ops->name;

	analysis__state_path(path, sizeof(path), dir, name, s->first, s->last);
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	int rc = s->a->ops->save(s->a->plugin, s->state, f);
	if (fclose(f) != 0 || rc != 0) {
		snprintf(err, errlen, "%s: analysis %s could not save its state", path, name);
		free(payload);
		return -1;
	}
	size_t total = STATE_HDR_SIZE + plen + 8;
	uint8_t *buf = calloc(1, total);
	if (!buf) {
		snprintf(err, errlen, "%s: out of memory", path);
		free(payload);
		return -1;
	}
	memcpy(buf, STATE_MAGIC, 8);
	put32(buf + 8, STATE_VERSION);
	put32(buf + 12, SB_ANALYSIS_API_VERSION);
	memcpy(buf + 16, name, strlen(name));
	put32(buf + 16 + STATE_NAME_MAX, s->first);
	put32(buf + 20 + STATE_NAME_MAX, s->last);
	put64(buf + 24 + STATE_NAME_MAX, plen);
	if (plen)
		memcpy(buf + STATE_HDR_SIZE, payload, plen);
	put64(buf + STATE_HDR_SIZE + plen, XXH3_64bits(buf, STATE_HDR_SIZE + plen));
	free(payload);
	rc = write_atomic(path, buf, total, err, errlen);
	free(buf);
	return rc;
}

struct analysis_state *analysis_state__parse(struct analysis *a, const void *data, size_t len,
					     const char *name, char *err, size_t errlen)
{
	const uint8_t *buf = data;
	char pname[STATE_NAME_MAX + 1] = "";
	uint64_t plen;

	if (len < STATE_HDR_SIZE + 8 || memcmp(buf, STATE_MAGIC, 8)) {
		snprintf(err, errlen, "%s: not an analysis state%s", name,
			 len < STATE_HDR_SIZE + 8 ? " (truncated)" : "");
		return NULL;
	}
	if (get32(buf + 8) != STATE_VERSION || get32(buf + 12) != SB_ANALYSIS_API_VERSION) {
		snprintf(err, errlen, "%s: state version %u, plugin API %u; expected %u, %u", name,
			 get32(buf + 8), get32(buf + 12), STATE_VERSION, SB_ANALYSIS_API_VERSION);
		return NULL;
	}
	plen = get64(buf + 24 + STATE_NAME_MAX);
	if (plen != len - STATE_HDR_SIZE - 8) {
		snprintf(err, errlen, "%s: %zu bytes, the header says %" PRIu64 " (truncated?)", name,
			 len, plen + STATE_HDR_SIZE + 8);
		return NULL;
	}
	if (!SUM_OK(get64(buf + len - 8), XXH3_64bits(buf, len - 8))) {
		snprintf(err, errlen, "%s: checksum mismatch: the state is corrupt", name);
		return NULL;
	}
	memcpy(pname, buf + 16, STATE_NAME_MAX);
	if (strcmp(pname, a->ops->name)) {
		snprintf(err, errlen, "%s: a state of analysis \"%s\", not \"%s\"", name, pname,
			 a->ops->name);
		return NULL;
	}
	uint32_t first = get32(buf + 16 + STATE_NAME_MAX), last = get32(buf + 20 + STATE_NAME_MAX);
	if (last < first) {
		snprintf(err, errlen, "%s: intervals %u-%u make no range", name, first, last);
		return NULL;
	}
	FILE *f = fmemopen((void *)(buf + STATE_HDR_SIZE), plen ? plen : 1, "r");
	char perr[512] = "";
	void *state = f ? a->ops->load(a->plugin, f, perr, sizeof(perr)) : NULL;
	if (f)
		fclose(f);
	char what[700];
	snprintf(what, sizeof(what), "%s: %s", name, perr[0] ? perr : "the plugin rejected it");
	struct analysis_state *s = wrap(a, state, what, err, errlen);
	if (s) {
		s->first = first;
		s->last = last;
	}
	return s;
}

struct analysis_state *analysis_state__load(struct analysis *a, const char *dir, uint32_t first,
					    uint32_t last, char *err, size_t errlen)
{
	char path[PATH_MAX];
	analysis__state_path(path, sizeof(path), dir, a->ops->name, first, last);
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	do {
		if (len == cap) {
			char *nb = realloc(buf, cap = cap ? cap * 2 : 65536);
			if (!nb) {
				fclose(f);
				free(buf);
				snprintf(err, errlen, "%s: out of memory", path);
				return NULL;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n);
	bool bad = ferror(f);
	fclose(f);
	struct analysis_state *s = NULL;
	if (bad)
		snprintf(err, errlen, "%s: read error", path);
	else
		s = analysis_state__parse(a, buf, len, path, err, errlen);
	free(buf);
	if (s && (s->first != first || s->last != last)) {
		snprintf(err, errlen, "%s: holds intervals %u-%u", path, s->first, s->last);
		analysis_state__free(s);
		s = NULL;
	}
	return s;
}

int analysis__merge_report(struct analysis *a, const char *dir, const uint32_t *bounds,
			   size_t n, const char *out_path, char *err, size_t errlen)
{
	struct analysis_state *all = analysis_state__new(a, err, errlen);
	for (size_t i = 0; all && i < n; i++) {
		struct analysis_state *s =
			analysis_state__load(a, dir, bounds[i], bounds[i + 1], err, errlen);
		if (!s || analysis_state__merge(all, s, err, errlen) != 0) {
			analysis_state__free(all);
			all = NULL;
		}
	}
	if (!all)
		return -1;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int rc = f ? analysis_state__report(all, f, err, errlen) : -1;
	if (!f)
		snprintf(err, errlen, "analysis %s: %s", a->ops->name, strerror(errno));
	if (f && fclose(f) != 0 && rc == 0) {
		snprintf(err, errlen, "analysis %s: the report failed", a->ops->name);
		rc = -1;
	}
	analysis_state__free(all);
	if (rc == 0) {
		if (!strcmp(out_path, "-"))
			rc = fwrite(text, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : -1;
		else
			rc = write_atomic(out_path, text, len, err, errlen);
		if (rc != 0 && !strcmp(out_path, "-"))
			snprintf(err, errlen, "stdout: %s", strerror(errno));
	}
	free(text);
	return rc;
}
