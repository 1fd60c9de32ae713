/* simuboost analyze: runs analysis plugins offline over the traces of a
 * recording, interval by interval, and merges their results in order,
 * exactly as `simuboost replay --analysis` does online. */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
	"  -o, --out DIR          write each report to DIR/NAME.txt and the states to\n"
	"                         DIR/states (default: reports to stdout)\n"
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

/* Reads interval k's trace into the states; ends the interval with guest
 * memory at checkpoint k+1. */
static int analyze_interval(struct run *run, const char *trace_dir, uint32_t k,
			    struct analysis_state **states, unsigned n, char *err, size_t errlen)
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
	for (unsigned i = 0; i < n; i++)
		analysis_state__begin(states[i], k);
	while ((rc = trace_reader__next(r, &rec, err, errlen)) == 1)
		for (unsigned i = 0; i < n; i++)
			analysis_state__record(states[i], &rec);
	trace_reader__close(r);
	if (rc < 0)
		return -1;
	if (run->have_pages && ckpt_pages__advance(&run->pages, err, errlen) != 0)
		return -1;
	struct sb_memory mem = { .pages = run->pages.npages, .read_page = read_page,
				 .host = run };
	for (unsigned i = 0; i < n; i++) {
		run->err[0] = '\0';
		if (analysis_state__end(states[i], run->have_pages ? &mem : NULL, err, errlen) != 0) {
			if (run->err[0])
				snprintf(err + strlen(err), errlen - strlen(err), " (%s)", run->err);
			return -1;
		}
	}
	return 0;
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
		{ NULL, 0, NULL, 0 },
	};
	const char *specs[CLI_MAX_SPECS], *trace_dir = NULL, *out_dir = NULL, *range = NULL;
	struct analysis *an[CLI_MAX_SPECS] = { 0 };
	struct analysis_state *states[CLI_MAX_SPECS] = { 0 };
	unsigned n = 0;
	bool serial = false;
	char err[1024], states_dir[PATH_MAX] = "";
	int c, status = EXIT_FAILURE;

	while ((c = getopt_long(argc, argv, "t:A:i:so:", options, NULL)) != -1) {
		switch (c) {
		case 't': trace_dir = optarg; break;
		case 'A':
			if (cli__add_spec(specs, &n, optarg, "analyze") != 0)
				return EXIT_USAGE;
			break;
		case 'i': range = optarg; break;
		case 's': serial = true; break;
		case 'o': out_dir = optarg; break;
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
	bool tty = isatty(STDERR_FILENO);
	for (uint32_t k = first; k < last; k++) {
		for (unsigned i = 0; i < n; i++)
			if (!states[i] && !(states[i] = analysis_state__new(an[i], err, sizeof(err)))) {
				fprintf(stderr, "simuboost analyze: %s\n", err);
				goto out;
			}
		if (analyze_interval(&run, trace_dir, k, states, n, err, sizeof(err)) != 0) {
			fprintf(stderr, "simuboost analyze: interval %u: %s\n", k, err);
			goto out;
		}
		if (tty)
			fprintf(stderr, "\ranalyze: %u/%u intervals", k - first + 1, last - first);
		/* A state per interval, saved and merged like the online ones;
		 * --serial keeps one through the whole range. */
		for (unsigned i = 0; i < n && (!serial || k + 1 == last); i++) {
			if (analysis_state__save(states[i], states_dir, err, sizeof(err)) != 0) {
				fprintf(stderr, "simuboost analyze: %s\n", err);
				goto out;
			}
			analysis_state__free(states[i]);
			states[i] = NULL;
		}
	}
	if (tty)
		fputc('\n', stderr);
	status = cli__analysis_reports(an, n, states_dir, first, last, serial, out_dir,
				       "analyze") == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
out:
	for (unsigned i = 0; i < n; i++) {
		analysis_state__free(states[i]);
		analysis__close(an[i]);
	}
	if (!out_dir && states_dir[0])
		cli__remove_dir(states_dir, "analyze");
	if (run.have_pages)
		ckpt_pages__destroy(&run.pages);
	ckpt_store__close(run.store);
	return status;
}
