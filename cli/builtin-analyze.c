/* simuboost analyze: runs analysis plugins offline over the traces of a
 * recording, interval by interval, and merges their results in order,
 * exactly as `simuboost replay --analysis` does online. Intervals run in
 * worker processes, so that a plugin that crashes costs its own report
 * and nothing else: the worker says which plugin it is inside of, and the
 * interval runs again without that one. */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analysis.h"
#include "builtin.h"
#include "checkpoint.h"
#include "trace.h"

const char builtin_analyze_usage[] =
	"usage: simuboost analyze <REC> --trace DIR --analysis PLUGIN.so[,ARGS] [options]\n"
	"\n"
	"Runs analysis plugins over the traces `simuboost replay --trace DIR` wrote\n"
	"for the recording REC: each interval in a state of its own, the states\n"
	"merged in order (what `replay --all --analysis` does online, with the same\n"
	"output byte for byte). Plugins that read guest memory get it from the\n"
	"recording's checkpoints. Write your own against analysis-plugins/\n"
	"simuboost-analysis.h; the examples are built as build/analysis-plugins/*.so.\n"
	"\n"
	"  -t, --trace DIR        the traces, DIR/NNNNNN.trace\n"
	"  -A, --analysis SPEC    a plugin and its arguments, PLUGIN.so[,ARGS] (repeat\n"
	"                         for more)\n"
	"  -i, --intervals A[-B]  intervals A..B only (default: every interval)\n"
	"  -s, --serial           one state through every interval instead of one per\n"
	"                         interval merged (the oracle merging is checked against)\n"
	"  -J, --jobs N           intervals analysed at a time, each in a process of its\n"
	"                         own (default: CPUs)\n"
	"  -o, --out DIR          write each report to DIR/NAME.txt and the states to\n"
	"                         DIR/states (default: reports to stdout)\n"
	"\n"
	"A plugin that crashes is named with the interval; the others' reports are\n"
	"still made.\n"
	"\n"
	"Exit status: 0 on success, 1 if an analysis or a trace failed, 2 on bad usage.\n";


struct run {
	struct ckpt_store *store;
	struct ckpt_pages pages;    /* guest memory at the end of the interval */
	bool have_pages;
	char err[1024];
};

static int read_page(const struct sb_memory *m, uint64_t gpn, void *out)
{
	struct run *run = m->host;
	return ckpt_pages__read(&run->pages, gpn, out, run->err, sizeof(run->err));
}

/* Where a worker is, in memory it shares with the parent: a worker that
 * dies is named by it. */
struct inside {
	int plugin;        /* the one being called, -1 between calls */
	uint32_t interval;
};

/* Reads interval k's trace into the states (a plugin without one is left
 * out); ends the interval with guest memory at checkpoint k+1. */
static int analyze_interval(struct run *run, const char *trace_dir, uint32_t k,
			    struct analysis_state **states, unsigned n,
			    volatile struct inside *inside, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct trace_record rec;
	int rc;

	trace__path(path, sizeof(path), trace_dir, k);
	struct trace_reader *r = trace_reader__open(path, err, errlen);
	if (!r)
		return -1;
	if (trace_reader__info(r)->interval != k) {
		snprintf(err, errlen, "%s: the trace of interval %u, not %u", path,
			 trace_reader__info(r)->interval, k);
		trace_reader__close(r);
		return -1;
	}
	inside->interval = k;
	for (unsigned i = 0; i < n; i++)
		if (states[i]) {
			inside->plugin = (int)i;
			analysis_state__begin(states[i], k);
		}
	while ((rc = trace_reader__next(r, &rec, err, errlen)) == 1)
		for (unsigned i = 0; i < n; i++)
			if (states[i]) {
				inside->plugin = (int)i;
				analysis_state__record(states[i], &rec);
			}
	inside->plugin = -1;
	trace_reader__close(r);
	if (rc < 0)
		return -1;
	if (run->have_pages && ckpt_pages__advance(&run->pages, err, errlen) != 0)
		return -1;
	struct sb_memory mem = { .pages = run->pages.npages, .read_page = read_page,
				 .host = run };
	for (unsigned i = 0; i < n; i++) {
		if (!states[i])
			continue;
		run->err[0] = '\0';
		inside->plugin = (int)i;
		if (analysis_state__end(states[i], run->have_pages ? &mem : NULL, err, errlen) != 0) {
			if (run->err[0])
				snprintf(err + strlen(err), errlen - strlen(err), " (%s)", run->err);
			return -1;
		}
	}
	inside->plugin = -1;
	return 0;
}

/* A worker: intervals [lo, hi) of the plugins not left out, their states
 * saved after each interval, or once at the end with --serial. Guest
 * memory starts at checkpoint lo. */
static int analyze_range(struct run *run, const char *trace_dir, struct analysis **an,
			 const bool *left_out, unsigned n, uint32_t lo, uint32_t hi, bool serial,
			 const char *states_dir, volatile struct inside *inside)
{
	char err[1024];
	struct analysis_state *states[CLI_MAX_SPECS] = { 0 };
	int rc = 0;
	for (uint32_t k = lo; k < hi && rc == 0; k++) {
		for (unsigned i = 0; i < n && rc == 0; i++)
			if (!left_out[i] && !states[i] &&
			    !(states[i] = analysis_state__new(an[i], err, sizeof(err)))) {
				fprintf(stderr, "simuboost analyze: %s\n", err);
				rc = -1;
			}
		if (rc == 0 && analyze_interval(run, trace_dir, k, states, n, inside, err,
						sizeof(err)) != 0) {
			fprintf(stderr, "simuboost analyze: interval %u: %s\n", k, err);
			rc = -1;
		}
		for (unsigned i = 0; i < n && rc == 0 && (!serial || k + 1 == hi); i++) {
			if (states[i] && analysis_state__save(states[i], states_dir, err,
							       sizeof(err)) != 0) {
				fprintf(stderr, "simuboost analyze: %s\n", err);
				rc = -1;
			}
			analysis_state__free(states[i]);
			states[i] = NULL;
		}
	}
	for (unsigned i = 0; i < n; i++)
		analysis_state__free(states[i]);
	return rc;
}

/* The intervals to analyse, as ranges a worker takes whole (each interval,
 * or all of them with --serial), and the workers running. */
struct workers {
	struct run *run;
	const char *trace_dir, *states_dir, *rec;
	struct analysis **an;
	unsigned n;
	bool left_out[CLI_MAX_SPECS];
	bool serial;
	uint32_t first, last;
	uint32_t next;            /* the next range not yet started, in order */
	uint32_t *again;          /* ranges to run again, without a crashed plugin */
	unsigned nagain;
	unsigned jobs;
	struct worker { pid_t pid; uint32_t lo, hi; } *w;
	volatile struct inside *inside; /* shared with the workers: one each */
	uint32_t done;
	bool failed;
};

static uint32_t range_end(const struct workers *ws, uint32_t lo)
{
	return ws->serial ? ws->last : lo + 1;
}

/* Starts range lo in slot s. One run again starts from its checkpoint
 * afresh; the others find guest memory where the parent has it, at lo. */
static int start_worker(struct workers *ws, unsigned s, uint32_t lo, bool again)
{
	uint32_t hi = range_end(ws, lo);
	fflush(stdout);
	fflush(stderr);
	ws->inside[s] = (struct inside){ .plugin = -1, .interval = lo };
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "simuboost analyze: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		char err[1024];
		struct run *run = ws->run;
		if (again && run->have_pages) {
			ckpt_pages__destroy(&run->pages);
			if (ckpt_pages__init(&run->pages, run->store, lo, err, sizeof(err)) != 0) {
				fprintf(stderr, "simuboost analyze: %s: %s\n", ws->rec, err);
				_exit(1);
			}
		}
		_exit(analyze_range(run, ws->trace_dir, ws->an, ws->left_out, ws->n, lo, hi,
				    ws->serial, ws->states_dir, &ws->inside[s]) == 0 ? 0 : 1);
	}
	ws->w[s] = (struct worker){ .pid = pid, .lo = lo, .hi = hi };
	return 0;
}

/* A worker ended: counted, or its range queued again without the plugin
 * it crashed in. */
static void worker_ended(struct workers *ws, unsigned s, int status)
{
	struct worker w = ws->w[s];
	ws->w[s].pid = 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		ws->done += w.hi - w.lo;
		return;
	}
	int plugin = ws->inside[s].plugin;
	uint32_t interval = ws->inside[s].interval;
	if (!WIFSIGNALED(status) || plugin < 0) {
		/* a worker that failed has said why; one that died outside any
		 * plugin is our own fault: either way, no retry */
		if (WIFSIGNALED(status))
			fprintf(stderr, "simuboost analyze: intervals %u..%u: the worker died of %s\n",
				w.lo, w.hi - 1, strsignal(WTERMSIG(status)));
		ws->failed = true;
		return;
	}
	if (!ws->left_out[plugin]) {
		ws->left_out[plugin] = true;
		fprintf(stderr, "simuboost analyze: interval %u: analysis %s crashed (%s); its "
				"report is not made, the others' are\n", interval,
			analysis__name(ws->an[plugin]), strsignal(WTERMSIG(status)));
	}
	bool any = false;
	for (unsigned i = 0; i < ws->n; i++)
		any |= !ws->left_out[i];
	if (any)
		ws->again[ws->nagain++] = w.lo;
	else
		ws->failed = true;
}

/* Runs every range, ws->jobs at a time. Guest memory in the parent moves
 * along with the ranges started in order, so each worker inherits it. */
static int run_workers(struct workers *ws)
{
	bool tty = isatty(STDERR_FILENO);
	char err[1024];
	unsigned running = 0;
	for (;;) {
		for (unsigned s = 0; s < ws->jobs && !ws->failed; s++) {
			bool again = ws->nagain > 0;
			if (ws->w[s].pid || (!again && ws->next >= ws->last))
				continue;
			uint32_t lo = again ? ws->again[--ws->nagain] : ws->next;
			if (start_worker(ws, s, lo, again) != 0) {
				ws->failed = true;
				continue;
			}
			running++;
			if (again)
				continue;
			ws->next = range_end(ws, lo);
			if (!ws->serial && ws->run->have_pages &&
			    ckpt_pages__advance(&ws->run->pages, err, sizeof(err)) != 0) {
				fprintf(stderr, "simuboost analyze: %s: %s\n", ws->rec, err);
				ws->failed = true;
			}
		}
		if (!running)
			break;
		int status;
		pid_t pid = waitpid(-1, &status, 0);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "simuboost analyze: waitpid: %s\n", strerror(errno));
			return -1;
		}
		for (unsigned s = 0; s < ws->jobs; s++)
			if (ws->w[s].pid == pid) {
				running--;
				worker_ended(ws, s, status);
			}
		if (tty)
			fprintf(stderr, "\ranalyze: %u/%u intervals", ws->done, ws->last - ws->first);
	}
	if (tty)
		fputc('\n', stderr);
	return ws->failed ? -1 : 0;
}

int cli__analysis_reports(struct analysis **an, unsigned n, const char *states_dir,
			  uint32_t first, uint32_t last, bool serial, const char *out_dir,
			  const char *cmd)
{
	char err[1024], path[PATH_MAX];
	int rc = 0;
	/* the ranges the states cover: one, or one per interval */
	size_t nranges = serial ? 1 : last - first;
	uint32_t *bounds = malloc((nranges + 1) * sizeof(*bounds));
	if (!bounds) {
		fprintf(stderr, "simuboost %s: out of memory\n", cmd);
		return -1;
	}
	for (size_t k = 0; k <= nranges; k++)
		bounds[k] = serial ? (k ? last : first) : first + (uint32_t)k;
	for (unsigned i = 0; i < n; i++) {
		const char *name = analysis__name(an[i]);
		if (out_dir)
			snprintf(path, sizeof(path), "%s/%s.txt", out_dir, name);
		else
			printf("== analysis %s ==\n", name);
		fflush(stdout);
		if (analysis__merge_report(an[i], states_dir, bounds, nranges, out_dir ? path : "-",
					   err, sizeof(err)) != 0) {
			fprintf(stderr, "simuboost %s: %s\n", cmd, err);
			rc = -1;
		}
	}
	free(bounds);
	return rc;
}

int cli__load_analyses(const char *const *specs, unsigned n, struct analysis **out,
		       const char *cmd)
{
	char err[1024];
	for (unsigned i = 0; i < n; i++) {
		out[i] = analysis__load(specs[i], err, sizeof(err));
		for (unsigned j = 0; out[i] && j < i; j++)
			if (!strcmp(analysis__name(out[i]), analysis__name(out[j]))) {
				snprintf(err, sizeof(err), "analysis %s is given twice",
					 analysis__name(out[i]));
				analysis__close(out[i]);
				out[i] = NULL;
			}
		if (!out[i]) {
			fprintf(stderr, "simuboost %s: %s\n", cmd, err);
			while (i--) {
				analysis__close(out[i]);
				out[i] = NULL;
			}
			return -1;
		}
	}
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

void cli__remove_dir(const char *dir, const char *cmd)
{
	if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "simuboost %s: could not remove %s: %s\n", cmd, dir, strerror(errno));
}

int cli__make_dir(const char *dir, const char *cmd)
{
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "simuboost %s: %s: %s\n", cmd, dir, strerror(errno));
		return -1;
	}
	return 0;
}

int cli__states_dir(const char *out_dir, char *dir, size_t len, const char *cmd)
{
	if (out_dir) {
		snprintf(dir, len, "%s/states", out_dir);
		if (cli__make_dir(out_dir, cmd) == 0 && cli__make_dir(dir, cmd) == 0)
			return 0;
	} else {
		snprintf(dir, len, "/tmp/simuboost-%s-XXXXXX", cmd);
		if (mkdtemp(dir))
			return 0;
		fprintf(stderr, "simuboost %s: mkdtemp: %s\n", cmd, strerror(errno));
	}
	dir[0] = '\0';
	return -1;
}

int cli__qemu_plugin_dir(const char *out_dir, char dir[PATH_MAX], const char *cmd)
{
	char made[PATH_MAX];
	snprintf(made, sizeof(made), "%s/qemu-plugins", out_dir);
	if (cli__make_dir(out_dir, cmd) != 0 || cli__make_dir(made, cmd) != 0)
		return -1;
	if (!realpath(made, dir)) {
		fprintf(stderr, "simuboost %s: %s: %s\n", cmd, made, strerror(errno));
		return -1;
	}
	return 0;
}

void cli__absolute_spec(const char *spec, char *out, size_t len)
{
	char path[PATH_MAX], real[PATH_MAX];
	const char *comma = strchr(spec, ',');
	snprintf(path, sizeof(path), "%.*s", comma ? (int)(comma - spec) : PATH_MAX - 1, spec);
	snprintf(out, len, "%s%s", realpath(path, real) ? real : path, comma ? comma : "");
}

/* A-B or A: intervals [A, B+1). */
static int parse_range(const char *s, uint32_t *first, uint32_t *last)
{
	char a[32];
	const char *dash = strchr(s, '-');
	size_t n = dash ? (size_t)(dash - s) : strlen(s);
	uint32_t lo, hi;
	if (n >= sizeof(a))
		return -1;
	memcpy(a, s, n);
	a[n] = '\0';
	if (cli__parse_index(a, &lo) != 0 || cli__parse_index(dash ? dash + 1 : a, &hi) != 0 ||
	    hi < lo)
		return -1;
	*first = lo;
	*last = hi + 1;
	return 0;
}

int builtin_analyze(int argc, char **argv)
{
	static const struct option options[] = {
		{ "trace", required_argument, NULL, 't' },
		{ "analysis", required_argument, NULL, 'A' },
		{ "intervals", required_argument, NULL, 'i' },
		{ "serial", no_argument, NULL, 's' },
		{ "out", required_argument, NULL, 'o' },
		{ "jobs", required_argument, NULL, 'J' },
		{ NULL, 0, NULL, 0 },
	};
	const char *specs[CLI_MAX_SPECS], *trace_dir = NULL, *out_dir = NULL, *range = NULL;
	struct analysis *an[CLI_MAX_SPECS] = { 0 };
	unsigned n = 0, jobs = 0;
	bool serial = false;
	char err[1024], states_dir[PATH_MAX] = "";
	int c, status = EXIT_FAILURE;
	uint32_t index;
	struct workers ws = { 0 };

	while ((c = getopt_long(argc, argv, "t:A:i:so:J:", options, NULL)) != -1) {
		switch (c) {
		case 't': trace_dir = optarg; break;
		case 'A':
			if (cli__add_spec(specs, &n, optarg, "analyze") != 0)
				return EXIT_USAGE;
			break;
		case 'i': range = optarg; break;
		case 's': serial = true; break;
		case 'o': out_dir = optarg; break;
		case 'J':
			if (cli__parse_index(optarg, &index) != 0 || index == 0) {
				fprintf(stderr, "simuboost analyze: --jobs '%s': expected a count of "
						"1 or more\n", optarg);
				return EXIT_USAGE;
			}
			jobs = index;
			break;
		default:
			fputs(builtin_analyze_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || !trace_dir || !n) {
		fprintf(stderr, "simuboost analyze: expected a recording, --trace DIR and at least "
				"one --analysis PLUGIN.so\n");
		return EXIT_USAGE;
	}
	struct run run = { 0 };
	run.store = ckpt_store__open(argv[optind], err, sizeof(err));
	if (!run.store) {
		fprintf(stderr, "simuboost analyze: %s\n", err);
		return EXIT_FAILURE;
	}
	uint32_t count = ckpt_store__count(run.store), first = 0, last = count ? count - 1 : 0;
	if (range && parse_range(range, &first, &last) != 0) {
		fprintf(stderr, "simuboost analyze: --intervals '%s': expected A or A-B\n", range);
		status = EXIT_USAGE;
		goto out;
	}
	if (first >= last || last + 1 > count) {
		fprintf(stderr, "simuboost analyze: %s: intervals %u..%u: the recording has %u "
				"checkpoints, so intervals 0..%d\n", argv[optind], first, last - 1,
			count, (int)count - 2);
		goto out;
	}
	if (cli__load_analyses(specs, n, an, "analyze") != 0)
		goto out;
	bool memory = false;
	for (unsigned i = 0; i < n; i++)
		memory |= analysis__wants_memory(an[i]);
	if (memory) {
		if (ckpt_pages__init(&run.pages, run.store, first, err, sizeof(err)) != 0) {
			fprintf(stderr, "simuboost analyze: %s: %s\n", argv[optind], err);
			goto out;
		}
		run.have_pages = true;
	}
	if (cli__states_dir(out_dir, states_dir, sizeof(states_dir), "analyze") != 0)
		goto out;
	if (!jobs)
		jobs = cli__cpus();
	ws = (struct workers){ .run = &run, .trace_dir = trace_dir, .states_dir = states_dir,
			       .rec = argv[optind], .an = an, .n = n, .serial = serial,
			       .first = first, .last = last, .next = first,
			       .jobs = serial ? 1 : jobs };
	ws.again = calloc(last - first, sizeof(*ws.again));
	ws.w = calloc(ws.jobs, sizeof(*ws.w));
	ws.inside = mmap(NULL, ws.jobs * sizeof(*ws.inside), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ws.inside == MAP_FAILED)
		ws.inside = NULL;
	if (!ws.again || !ws.w || !ws.inside) {
		fprintf(stderr, "simuboost analyze: out of memory\n");
		goto out;
	}
	bool crashed = false;
	if (run_workers(&ws) == 0) {
		/* the reports of the plugins that did not crash */
		struct analysis *ok[CLI_MAX_SPECS];
		unsigned nok = 0;
		for (unsigned i = 0; i < n; i++) {
			if (!ws.left_out[i])
				ok[nok++] = an[i];
			crashed |= ws.left_out[i];
		}
		if (cli__analysis_reports(ok, nok, states_dir, first, last, serial, out_dir,
					  "analyze") == 0 && !crashed)
			status = EXIT_SUCCESS;
	}
out:
	free(ws.again);
	free(ws.w);
	if (ws.inside)
		munmap((void *)ws.inside, ws.jobs * sizeof(*ws.inside));
	for (unsigned i = 0; i < n; i++)
		analysis__close(an[i]);
	if (!out_dir && states_dir[0])
		cli__remove_dir(states_dir, "analyze");
	if (run.have_pages)
		ckpt_pages__destroy(&run.pages);
	ckpt_store__close(run.store);
	return status;
}
