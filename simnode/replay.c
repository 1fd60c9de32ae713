/* The replay driver: one patched QEMU per interval (or one for all, the
 * serial oracle), each with the replay plugin, its RAM a shared memfd that
 * starts empty and is paged in on demand by a fault thread here (dsm.c),
 * or that holds the whole starting checkpoint (materialize). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "dsm.h"
#include "simnode-paths.h"
#include "simnode.h"

#define POLL_NS 20000000L

/* A demand-paged QEMU's pages: the recording's at the job's starting
 * checkpoint, from its packs or by hash from page_by_hash. */
struct ram_source {
	const struct simnode_replay_options *o;
	struct ckpt_store *store;  /* the fault thread's own handle */
	struct ckpt_pages pages;
	struct ckpt_hash hashes[DSM_PREFETCH_MAX];
	unsigned slot[DSM_PREFETCH_MAX];
};

struct job {
	uint32_t first, last;
	pid_t pid;
	int ram_fd, dsm_sock;      /* dsm_sock: QEMU's end of the fault hand-over */
	struct ram_source *src;
	struct dsm *dsm;
	double started;
	char out[4200], log[4200];
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

long simnode__checkpoints(const char *recording, char *err, size_t errlen)
{
	struct ckpt_store *st = ckpt_store__open(recording, err, errlen);
	if (!st)
		return -1;
	long n = ckpt_store__count(st);
	ckpt_store__close(st);
	return n;
}

/* The QEMU must carry our patches: build.sh stamps its version string. */
static int check_qemu(const char *qemu, char *err, size_t errlen)
{
	char cmd[4200], line[256] = "";
	if (access(qemu, X_OK) != 0) {
		snprintf(err, errlen, "%s: %s (build it with simnode/qemu/build.sh)", qemu,
			 strerror(errno));
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "'%s' -version 2>&1", qemu);
	FILE *p = popen(cmd, "r");
	if (!p || !fgets(line, sizeof(line), p)) {
		if (p)
			pclose(p);
		snprintf(err, errlen, "%s: cannot run it", qemu);
		return -1;
	}
	pclose(p);
	if (!strstr(line, "(simuboost-")) {
		line[strcspn(line, "\n")] = '\0';
		snprintf(err, errlen,
			 "%s lacks the simuboost patches (it says \"%s\"); build the patched "
			 "QEMU with simnode/qemu/build.sh",
			 qemu, line);
		return -1;
	}
	return 0;
}

static int fetch_pages(void *ctx, const uint64_t *gpn, unsigned n, uint8_t *out, bool *zero,
		       char *err, size_t errlen)
{
	struct ram_source *s = ctx;
	unsigned m = 0;
	for (unsigned i = 0; i < n; i++) {
		const struct ckpt_page_ref *ref = &s->pages.refs[gpn[i]];
		zero[i] = ref->flags & CKPT_PAGE_ZERO;
		if (zero[i])
			continue;
		if (!s->o->page_by_hash) {
			if (ckpt_store__read_page(s->store, ref, out + (size_t)i * CKPT_PAGE_SIZE, err,
						  errlen) != 0)
				return -1;
			continue;
		}
		s->hashes[m] = ref->hash;
		s->slot[m++] = i;
	}
	if (!m)
		return 0;
	if (s->o->page_by_hash(s->o->page_ctx, s->hashes, m, out, err, errlen) != 0)
		return -1;
	/* fetched packed at the front; spread to their places, last first */
	for (unsigned j = m; j-- > 0;)
		if (s->slot[j] != j)
			memmove(out + (size_t)s->slot[j] * CKPT_PAGE_SIZE,
				out + (size_t)j * CKPT_PAGE_SIZE, CKPT_PAGE_SIZE);
	return 0;
}

/* For a plugin whose recording has no packs: a page by hash, from the
 * node's peers. */
static int fetch_hash(void *ctx, const struct ckpt_hash *hash, uint8_t *out, char *err,
		      size_t errlen)
{
	struct ram_source *s = ctx;
	if (!s->o->page_by_hash) {
		snprintf(err, errlen, "no source of pages by hash");
		return -1;
	}
	return s->o->page_by_hash(s->o->page_ctx, hash, 1, out, err, errlen);
}

static void ram_source__free(struct ram_source *s)
{
	if (!s)
		return;
	ckpt_pages__destroy(&s->pages);
	ckpt_store__close(s->store);
	free(s);
}

static struct ram_source *ram_source__new(const struct simnode_replay_options *o, uint32_t k,
					  char *err, size_t errlen)
{
	struct ram_source *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->o = o;
	s->store = ckpt_store__open(o->recording, err, errlen);
	if (!s->store || ckpt_pages__init(&s->pages, s->store, k, err, errlen) != 0) {
		ram_source__free(s);
		return NULL;
	}
	return s;
}

/* Guest RAM for a QEMU starting at checkpoint k: a memfd (inherited by
 * QEMU, which names it /proc/self/fd/N) holding that checkpoint, or empty
 * for demand paging. */
static int ram_at(struct ckpt_store *st, uint32_t k, bool fill, char *err, size_t errlen)
{
	uint64_t size = ckpt_store__info(st)->memory_bytes;
	int fd = memfd_create("simuboost-ram", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)size) != 0) {
		snprintf(err, errlen, "memfd for %" PRIu64 " bytes: %s", size, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!fill)
		return fd;
	void *ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ram == MAP_FAILED) {
		snprintf(err, errlen, "mmap: %s", strerror(errno));
		close(fd);
		return -1;
	}
	int rc = ckpt_store__materialize(st, k, ram, err, errlen);
	munmap(ram, size);
	if (rc != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int spawn(struct job *j, const struct simnode_replay_options *o, const char *qemu,
		 const char *plugin, const char *cpu, uint64_t mem, const char *dir, char *err,
		 size_t errlen)
{
	char mem_arg[256], plugin_arg[8192], cpu_arg[2048], m_arg[64];

	snprintf(j->out, sizeof(j->out), "%s/interval-%u.json", dir, j->first);
	snprintf(j->log, sizeof(j->log), "%s/interval-%u.log", dir, j->first);
	snprintf(mem_arg, sizeof(mem_arg),
		 "memory-backend-file,id=ram,size=%" PRIu64 ",mem-path=/proc/self/fd/%d,share=%s",
		 mem, j->ram_fd, j->dsm_sock >= 0 ? "on" : "off");
	snprintf(m_arg, sizeof(m_arg), "%" PRIu64 "M", mem >> 20);
	snprintf(cpu_arg, sizeof(cpu_arg), "%s,apic-id=0", cpu);
	int n = snprintf(plugin_arg, sizeof(plugin_arg), "%s,rec=%s,first=%u,last=%u,out=%s",
			 plugin, o->recording, j->first, j->last, j->out);
	if (o->budget)
		n += snprintf(plugin_arg + n, sizeof(plugin_arg) - (size_t)n, ",budget=%" PRIu64,
			      o->budget);
	if (j->dsm_sock >= 0)
		n += snprintf(plugin_arg + n, sizeof(plugin_arg) - (size_t)n, ",dsm=%d",
			      j->dsm_sock);
	if (o->trace_dir && (size_t)n < sizeof(plugin_arg))
		n += snprintf(plugin_arg + n, sizeof(plugin_arg) - (size_t)n, ",trace=%s",
			      o->trace_dir);
	if (o->analysis_dir && (size_t)n < sizeof(plugin_arg))
		n += snprintf(plugin_arg + n, sizeof(plugin_arg) - (size_t)n, ",analysis-out=%s",
			      o->analysis_dir);
	for (unsigned i = 0; i < o->nanalyses && (size_t)n < sizeof(plugin_arg); i++) {
		/* QEMU splits its -plugin option at commas; ",," is a comma */
		n += snprintf(plugin_arg + n, sizeof(plugin_arg) - (size_t)n, ",analysis=");
		for (const char *c = o->analyses[i]; *c && (size_t)n + 2 < sizeof(plugin_arg); c++) {
			plugin_arg[n++] = *c;
			if (*c == ',')
				plugin_arg[n++] = ',';
		}
		plugin_arg[n] = '\0';
	}
	if (o->plugin_args && (size_t)n < sizeof(plugin_arg))
		n += snprintf(plugin_arg + n, sizeof(plugin_arg) - (size_t)n, ",%s", o->plugin_args);
	if ((size_t)n >= sizeof(plugin_arg) - 1) {
		snprintf(err, errlen, "the replay plugin's arguments are too long");
		return -1;
	}
	char qlog[4200];
	if (o->qemu_plugin_dir)
		snprintf(qlog, sizeof(qlog), "%s/%06u.log", o->qemu_plugin_dir, j->first);
	/* A machine with no devices: every port and MMIO access is the replay
	 * plugin's, and nothing but the log raises interrupts. Then a -plugin
	 * per plain QEMU plugin. */
	const char *args[64] = {
		qemu, "-M", "none,memory-backend=ram", "-object", mem_arg, "-m", m_arg,
		"-cpu", cpu_arg, "-accel", "tcg,thread=multi", "-nodefaults", "-no-user-config",
		"-display", "none", "-monitor", "none", "-serial", "none", "-plugin", plugin_arg,
	};
	unsigned na = 0;
	while (args[na])
		na++;
	for (unsigned i = 0; i < o->nqemu_plugins && na + 2 < 60; i++) {
		args[na++] = "-plugin";
		args[na++] = o->qemu_plugins[i];
	}
	if (o->nqemu_plugins && o->qemu_plugin_dir) {
		args[na++] = "-d";
		args[na++] = "plugin";
		args[na++] = "-D";
		args[na++] = qlog;
	}
	args[na] = NULL;
	int logfd = open(j->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (logfd < 0) {
		snprintf(err, errlen, "%s: %s", j->log, strerror(errno));
		return -1;
	}
	j->started = now_s();
	j->pid = fork();
	if (j->pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(logfd);
		return -1;
	}
	if (j->pid == 0) {
		/* a QEMU outlives no driver: a simulation node killed mid-interval
		 * takes its QEMU with it */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* these two only: no QEMU holds another job's RAM or socket */
		fcntl(j->ram_fd, F_SETFD, 0);
		if (j->dsm_sock >= 0)
			fcntl(j->dsm_sock, F_SETFD, 0);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		execv(qemu, (char *const *)args);
		fprintf(stderr, "exec %s: %s\n", qemu, strerror(errno));
		_exit(127);
	}
	close(logfd);
	return 0;
}

/* The last line QEMU printed, for an error message. */
static void last_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	char line[512];
	buf[0] = '\0';
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0])
			snprintf(buf, len, "%s", line);
	}
	fclose(f);
}

static json_t *error_result(uint32_t k, const char *verdict, const char *detail)
{
	return json_pack("{s:i, s:s, s:s}", "interval", k, "verdict", verdict, "detail", detail);
}

/* Appends the results of a finished job to results (one per interval). */
static json_t *dsm_result(const struct dsm_stats *s)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f}", "faults", (json_int_t)s->faults,
			 "zero_faults", (json_int_t)s->zero_faults, "prefetched",
			 (json_int_t)s->prefetched, "prefetch_used", (json_int_t)s->prefetch_used,
			 "prefetch_wasted", (json_int_t)(s->prefetched - s->prefetch_used),
			 "fault_p50_us", s->p50_us, "fault_p99_us", s->p99_us, "fault_max_us",
			 s->max_us);
}

/* Appends the results of a finished job to results (one per interval).
 * paging: why demand paging failed, if it did. */
static void collect(struct job *j, int status, bool timed_out, const char *paging,
		    const char *qemu, json_t *results)
{
	struct dsm_stats ds;
	bool paged = j->dsm != NULL;
	char paging_failed[600] = "";
	if (paging) /* d's own text: it goes with d */
		snprintf(paging_failed, sizeof(paging_failed), "%s", paging);
	dsm__stop(j->dsm, &ds);
	j->dsm = NULL;
	ram_source__free(j->src);
	j->src = NULL;
	json_error_t jerr;
	json_t *doc = json_load_file(j->out, 0, &jerr);
	json_t *got = doc ? json_object_get(doc, "intervals") : NULL;
	const char *fatal = doc ? json_string_value(json_object_get(doc, "error")) : NULL;
	size_t have = json_is_array(got) ? json_array_size(got) : 0;
	char why[1024], line[512];

	for (size_t i = 0; i < have; i++) {
		if (i == 0 && paged)
			json_object_set_new(json_array_get(got, i), "dsm", dsm_result(&ds));
		json_array_append(results, json_array_get(got, i));
	}
	last_line(j->log, line, sizeof(line));
	if (paging)
		snprintf(why, sizeof(why), "demand paging: %s; QEMU killed", paging_failed);
	else if (timed_out)
		snprintf(why, sizeof(why), "no result after the time limit; QEMU killed");
	else if (strstr(line, "undefined symbol: qemu_plugin_"))
		snprintf(why, sizeof(why), "%s lacks the simuboost patches: %s", qemu, line);
	else if (fatal)
		snprintf(why, sizeof(why), "%s", fatal);
	else if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "QEMU crashed (signal %d)%s%s", WTERMSIG(status),
			 line[0] ? ": " : "", line);
	else if (!doc || WEXITSTATUS(status) != 0)
		snprintf(why, sizeof(why), "QEMU exited with status %d without a result%s%s",
			 WEXITSTATUS(status), line[0] ? ": " : "", line);
	else
		why[0] = '\0';
	/* A replay stops at its first divergence; later intervals of the same
	 * QEMU did not run. */
	bool stopped = have && strcmp(json_string_value(json_object_get(
					      json_array_get(got, have - 1), "verdict")), "exact");
	for (uint32_t k = j->first + (uint32_t)have; k < j->last; k++) {
		if (stopped || !why[0])
			json_array_append_new(results,
					      error_result(k, "not-run", "an earlier interval diverged"));
		else {
			char d[1200];
			snprintf(d, sizeof(d), "interval %u: %s", k, why);
			json_array_append_new(results, error_result(k, "error", d));
			stopped = true;
		}
	}
	json_decref(doc);
	unlink(j->out);
	close(j->ram_fd);
	j->pid = 0;
}

static int by_interval(const void *a, const void *b)
{
	json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "interval"));
	json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "interval"));
	return (x > y) - (x < y);
}

static json_t *sorted(json_t *results)
{
	size_t n = json_array_size(results);
	json_t **v = calloc(n ? n : 1, sizeof(*v));
	json_t *out = json_array();
	for (size_t i = 0; i < n; i++)
		v[i] = json_array_get(results, i);
	qsort(v, n, sizeof(*v), by_interval);
	for (size_t i = 0; i < n; i++)
		json_array_append(out, v[i]);
	free(v);
	json_decref(results);
	return out;
}

/* Gives job j its RAM (and with demand paging its fault thread) and
 * starts its QEMU. */
static int start_job(struct job *j, const struct simnode_replay_options *o,
		     struct ckpt_store *st, const char *qemu, const char *plugin, const char *dir,
		     char *err, size_t errlen)
{
	const struct ckpt_info *info = ckpt_store__info(st);
	int sv[2] = { -1, -1 };
	j->ram_fd = ram_at(st, j->first, o->materialize, err, errlen);
	if (j->ram_fd < 0)
		return -1;
	if (!o->materialize) {
		struct dsm_source src = { .fetch = fetch_pages, .fetch_hash = fetch_hash };
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
			snprintf(err, errlen, "socketpair: %s", strerror(errno));
			goto bad;
		}
		j->src = ram_source__new(o, j->first, err, errlen);
		src.ctx = j->src;
		j->dsm = j->src ? dsm__start(sv[0], j->ram_fd, info->memory_bytes, &src,
					     !o->no_prefetch, err, errlen) :
				  NULL;
		if (!j->dsm)
			goto bad;
		sv[0] = -1; /* the fault thread's now */
		j->dsm_sock = sv[1];
		sv[1] = -1;
	}
	if (spawn(j, o, qemu, plugin, info->cpu_model, info->memory_bytes, dir, err, errlen) != 0)
		goto bad;
	if (j->dsm_sock >= 0)
		close(j->dsm_sock); /* QEMU's now: its end closes when QEMU ends */
	j->dsm_sock = -1;
	return 0;
bad:
	dsm__stop(j->dsm, NULL);
	j->dsm = NULL;
	ram_source__free(j->src);
	j->src = NULL;
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (j->dsm_sock >= 0)
		close(j->dsm_sock);
	j->dsm_sock = -1;
	close(j->ram_fd);
	j->ram_fd = -1;
	return -1;
}

json_t *simnode__replay(const struct simnode_replay_options *o, char *err, size_t errlen)
{
	const char *qemu = o->qemu ? o->qemu : getenv("SIMUBOOST_QEMU");
	const char *plugin = o->plugin ? o->plugin : SIMNODE_REPLAY_PLUGIN;
	char dir[] = "/tmp/simuboost-replay-XXXXXX";
	json_t *results = NULL;
	struct job *jobs = NULL;

	if (!qemu)
		qemu = SIMNODE_QEMU;
	struct ckpt_store *st = ckpt_store__open(o->recording, err, errlen);
	if (!st)
		return NULL;
	uint32_t count = ckpt_store__count(st);
	if (count < 2 || o->first >= o->last || o->last > count - 1) {
		if (count < 2)
			snprintf(err, errlen, "%s: %u checkpoint%s, so no interval to replay",
				 o->recording, count, count == 1 ? "" : "s");
		else
			snprintf(err, errlen,
				 "%s: interval %u is out of range: %u checkpoints, so intervals 0..%u",
				 o->recording, o->last > count - 1 ? o->last - 1 : o->first, count,
				 count - 2);
		goto out;
	}
	if (!plugin[0]) {
		snprintf(err, errlen, "this build has no replay plugin: the patched QEMU was not "
				      "built when it was configured (simnode/qemu/build.sh)");
		goto out;
	}
	if (check_qemu(qemu, err, errlen) != 0)
		goto out;
	if (!mkdtemp(dir)) {
		snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
		goto out;
	}
	unsigned njobs = o->serial ? 1 : o->last - o->first;
	unsigned parallel = o->serial ? 1 : (o->jobs ? o->jobs : 1);
	jobs = calloc(njobs, sizeof(*jobs));
	results = json_array();
	unsigned next = 0, running = 0, done = 0, total = o->last - o->first;
	for (unsigned i = 0; i < njobs; i++) {
		jobs[i].first = o->serial ? o->first : o->first + i;
		jobs[i].last = o->serial ? o->last : jobs[i].first + 1;
		jobs[i].ram_fd = jobs[i].dsm_sock = -1;
	}
	while (done < njobs) {
		while (running < parallel && next < njobs) {
			struct job *j = &jobs[next++];
			char e[512];
			if (start_job(j, o, st, qemu, plugin, dir, e, sizeof(e)) != 0) {
				char d[700];
				snprintf(d, sizeof(d), "checkpoint %u: %s", j->first, e);
				for (uint32_t k = j->first; k < j->last; k++)
					json_array_append_new(results, error_result(k, "error", d));
				done++;
				continue;
			}
			running++;
		}
		for (unsigned i = 0; i < next; i++) {
			struct job *j = &jobs[i];
			int status = 0;
			if (j->pid <= 0)
				continue;
			bool late = o->timeout_s > 0 && now_s() - j->started > o->timeout_s;
			const char *paging = j->dsm ? dsm__failed(j->dsm) : NULL;
			if (late || paging) {
				kill(j->pid, SIGKILL);
				waitpid(j->pid, &status, 0);
			} else if (waitpid(j->pid, &status, WNOHANG) != j->pid) {
				continue;
			}
			collect(j, status, late, paging, qemu, results);
			unlink(j->log);
			running--;
			done++;
			if (o->progress)
				o->progress(o->opaque, (unsigned)json_array_size(results), total);
		}
		if (o->tick)
			o->tick(o->opaque);
		nanosleep(&(struct timespec){ 0, POLL_NS }, NULL);
	}
	rmdir(dir);
	results = sorted(results);
out:
	free(jobs);
	ckpt_store__close(st);
	return results;
}

static uint64_t hex_field(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? strtoull(s, NULL, 16) : 0;
}

json_t *simnode__bisect(const struct simnode_replay_options *o, const json_t *diverged,
			char *err, size_t errlen)
{
	const json_t *div = json_object_get(diverged, "divergence");
	const char *kind = json_string_value(json_object_get(div, "kind"));
	json_int_t k = json_integer_value(json_object_get(diverged, "interval"));
	char args[4096];
	size_t n = 0, i;
	json_t *v;

	if (!kind) {
		snprintf(err, errlen, "interval %lld did not diverge: nothing to bisect", (long long)k);
		return NULL;
	}
	const json_t *last = json_object_get(div, "last_match");
	n += (size_t)snprintf(args, sizeof(args), "bisect-from=%lld",
			      (long long)json_integer_value(json_object_get(last, "at_instruction")));
	json_array_foreach(json_object_get(div, "state"), i, v)
		if (n < sizeof(args))
			n += (size_t)snprintf(args + n, sizeof(args) - n, ",watch-field=%s",
					      json_string_value(json_object_get(v, "name")));
	json_array_foreach(json_object_get(json_object_get(div, "pages"), "first"), i, v)
		if (n < sizeof(args))
			n += (size_t)snprintf(args + n, sizeof(args) - n,
					      ",watch-word=0x%" PRIx64 "/0x%" PRIx64,
					      hex_field(v, "gpn") * 4096 +
						      (uint64_t)json_integer_value(
							      json_object_get(v, "offset")),
					      hex_field(v, "recorded"));
	const json_t *exp = json_object_get(div, "expected");
	const char *ekind = json_string_value(json_object_get(exp, "kind"));
	if (ekind && (!strcmp(ekind, "irq") || !strcmp(ekind, "stop") || !strcmp(ekind, "dma")) &&
	    !json_is_true(json_object_get(exp, "halted")) && n < sizeof(args))
		n += (size_t)snprintf(args + n, sizeof(args) - n, ",watch-landmark=0x%" PRIx64 "/%lld",
				      hex_field(exp, "rip"),
				      (long long)json_integer_value(json_object_get(exp, "sync_count")));
	if (n >= sizeof(args)) {
		snprintf(err, errlen, "interval %lld: too many watches for one run", (long long)k);
		return NULL;
	}
	struct simnode_replay_options again = *o;
	again.first = (uint32_t)k;
	again.last = (uint32_t)k + 1;
	again.serial = false;
	again.jobs = 1;
	again.plugin_args = args;
	again.progress = NULL;
	json_t *res = simnode__replay(&again, err, errlen);
	if (!res)
		return NULL;
	json_t *one = json_incref(json_array_get(res, 0));
	json_decref(res);
	return one;
}
