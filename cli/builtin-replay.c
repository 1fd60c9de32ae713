/* simuboost replay: replays intervals of a recording in the patched QEMU
 * and says, for each, whether it reached the next checkpoint exactly. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analysis.h"
#include "builtin.h"
#include "simnode.h"

const char builtin_replay_usage[] =
	"usage: simuboost replay <REC> (--interval K | --all | --serial) [options]\n"
	"\n"
	"Replays intervals of a recording in QEMU TCG (the patched build of\n"
	"simnode/qemu/) and validates each against the checkpoint that ends it:\n"
	"every register and every guest page. A verdict is exact, or diverged with\n"
	"the first divergence (kind, event index, RIP, instruction count, the\n"
	"differing state fields and pages, pages classified as page-table A/D bits\n"
	"only or other).\n"
	"\n"
	"  -i, --interval K    replay interval K (checkpoint K to K+1)\n"
	"  -a, --all           every interval, each in its own QEMU, in parallel\n"
	"  -s, --serial        every interval in one QEMU from checkpoint 0 (the oracle)\n"
	"  -J, --jobs N        QEMU processes at a time for --all (default: CPUs)\n"
	"      --budget N      instructions one interval may run before it counts as\n"
	"                      diverged (default: 4 x interval x 5e9/s)\n"
	"      --timeout S     kill a QEMU after S seconds (default 3600)\n"
	"      --qemu PATH     the patched qemu-system-x86_64 (default: this build's;\n"
	"                      or $SIMUBOOST_QEMU)\n"
	"      --materialize   copy the whole starting checkpoint into each QEMU's RAM\n"
	"                      first (default: demand paging; a page is faulted in\n"
	"                      when first touched, and the result's dsm object counts\n"
	"                      faults, prefetched pages and fault latency)\n"
	"      --no-prefetch   demand paging without the sequential prefetch\n"
	"  -b, --bisect        with --interval, if it diverges: re-run it with finer\n"
	"                      checks to narrow the divergence to instructions (the\n"
	"                      last change of each differing register, every store to\n"
	"                      each differing page word, every visit of a missed\n"
	"                      landmark after the last event that matched)\n"
	"  -t, --trace DIR     write the full trace of every exact interval to\n"
	"                      DIR/NNNNNN.trace: each instruction (pc, size, level),\n"
	"                      memory access (virtual and physical address, size,\n"
	"                      value) and the interrupts and port/MMIO accesses\n"
	"                      replayed; `simuboost trace` reads them\n"
	"  -A, --analysis SPEC run an analysis plugin, PLUGIN.so[,ARGS], online in every\n"
	"                      QEMU (repeat for more); the intervals' results are merged\n"
	"                      in order into one report per plugin, the same `simuboost\n"
	"                      analyze` gives offline from the traces\n"
	"      --qemu-plugin SPEC  attach a plain QEMU TCG plugin, PLUGIN.so[,ARGS], to\n"
	"                      every QEMU; what it prints goes to OUT/qemu-plugins/\n"
	"                      NNNNNN.log, per interval (--all) or for the run (--serial)\n"
	"  -o, --out DIR       analysis reports to DIR/NAME.txt (default: stdout, after\n"
	"                      the table), their states to DIR/states\n"
	"  -j, --json          the results as JSON\n"
	"\n"
	"Exit status: 0 if every interval replayed exact, 1 if not, 2 on bad usage.\n";

static void progress(void *opaque, unsigned done, unsigned total)
{
	(void)opaque;
	fprintf(stderr, "\rreplay: %u/%u intervals", done, total);
	if (done == total)
		fputc('\n', stderr);
}

static const char *str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static json_int_t num(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* What the finer checks of --bisect saw, as sentences. */
static void print_bisect(json_t *r, FILE *out)
{
	json_t *div = json_object_get(r, "divergence"), *b = json_object_get(r, "bisect");
	json_t *last = json_object_get(div, "last_match"), *v;
	size_t i;

	if (json_is_object(last))
		fprintf(out, "bisect: the replay matched the recording up to event %lld "
			     "(instruction %lld); the divergence showed at instruction %lld.\n",
			(long long)num(last, "event"), (long long)num(last, "at_instruction"),
			(long long)num(div, "at_instruction"));
	else
		fprintf(out, "bisect: no event of the interval matched; the divergence showed at "
			     "instruction %lld.\n", (long long)num(div, "at_instruction"));
	json_array_foreach(json_object_get(b, "fields"), i, v) {
		if (!num(v, "changes"))
			fprintf(out, "  %s: not changed after instruction %lld\n", str(v, "name"),
				(long long)num(b, "from"));
		else
			fprintf(out, "  %s: last changed by instruction %lld at rip %s (%s -> %s)\n",
				str(v, "name"), (long long)num(v, "last_change_at"), str(v, "rip"),
				str(v, "before"), str(v, "after"));
	}
	json_array_foreach(json_object_get(b, "words"), i, v) {
		fprintf(out, "  word %s (recorded %s): ", str(v, "address"), str(v, "recorded"));
		if (!num(v, "stores"))
			fprintf(out, "no instruction of the replay stored to it");
		else
			fprintf(out, "%lld stores, the last by instruction %lld at rip %s, value %s",
				(long long)num(v, "stores"), (long long)num(v, "last_store_at"),
				str(v, "rip"), str(v, "value"));
		if (json_object_get(v, "recorded_value_overwritten_at"))
			fprintf(out, "; it held the recorded value until instruction %lld",
				(long long)num(v, "recorded_value_overwritten_at"));
		else if (!json_is_true(json_object_get(v, "recorded_value_seen")))
			fprintf(out, "; no store wrote the recorded value");
		fputc('\n', out);
	}
	json_t *lm = json_object_get(b, "landmark");
	if (lm && !num(lm, "visits"))
		fprintf(out, "  landmark rip %s after %lld accesses: never reached after instruction "
			     "%lld\n", str(lm, "rip"), (long long)num(lm, "sync_count"),
			(long long)num(b, "from"));
	else if (lm)
		fprintf(out, "  landmark rip %s after %lld accesses: reached %lld times, at "
			     "instructions %lld..%lld, never with the recorded registers (last hash "
			     "%s)\n", str(lm, "rip"), (long long)num(lm, "sync_count"),
			(long long)num(lm, "visits"), (long long)num(lm, "first_visit_at"),
			(long long)num(lm, "last_visit_at"), str(lm, "last_visit_hash"));
}

int builtin_replay(int argc, char **argv)
{
	enum { OPT_BUDGET = 256, OPT_TIMEOUT, OPT_QEMU, OPT_QEMU_PLUGIN, OPT_MATERIALIZE,
	       OPT_NO_PREFETCH };
	enum { MAX_PLUGINS = 16 };
	static const struct option options[] = {
		{ "interval", required_argument, NULL, 'i' },
		{ "all", no_argument, NULL, 'a' },
		{ "serial", no_argument, NULL, 's' },
		{ "jobs", required_argument, NULL, 'J' },
		{ "budget", required_argument, NULL, OPT_BUDGET },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "qemu", required_argument, NULL, OPT_QEMU },
		{ "materialize", no_argument, NULL, OPT_MATERIALIZE },
		{ "no-prefetch", no_argument, NULL, OPT_NO_PREFETCH },
		{ "json", no_argument, NULL, 'j' },
		{ "bisect", no_argument, NULL, 'b' },
		{ "trace", required_argument, NULL, 't' },
		{ "analysis", required_argument, NULL, 'A' },
		{ "qemu-plugin", required_argument, NULL, OPT_QEMU_PLUGIN },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	struct simnode_replay_options o = { .timeout_s = 3600 };
	const char *interval = NULL, *out_dir = NULL;
	const char *specs[MAX_PLUGINS], *qemu_plugins[MAX_PLUGINS];
	unsigned nspecs = 0, nqemu = 0;
	struct analysis *an[MAX_PLUGINS];
	bool all = false, json = false, bisect = false;
	char err[1024], states_dir[PATH_MAX] = "", qemu_dir[PATH_MAX];
	int c;

	while ((c = getopt_long(argc, argv, "i:asJ:jbt:A:o:", options, NULL)) != -1) {
		switch (c) {
		case 'i': interval = optarg; break;
		case 'a': all = true; break;
		case 's': o.serial = true; break;
		case 'J': o.jobs = (unsigned)atoi(optarg); break;
		case OPT_BUDGET: o.budget = strtoull(optarg, NULL, 0); break;
		case OPT_TIMEOUT: o.timeout_s = atof(optarg); break;
		case OPT_QEMU: o.qemu = optarg; break;
		case OPT_MATERIALIZE: o.materialize = true; break;
		case OPT_NO_PREFETCH: o.no_prefetch = true; break;
		case 'j': json = true; break;
		case 'b': bisect = true; break;
		case 't': o.trace_dir = optarg; break;
		case 'A':
		case OPT_QEMU_PLUGIN:
			if ((c == 'A' ? nspecs : nqemu) == MAX_PLUGINS) {
				fprintf(stderr, "simuboost replay: at most %d of each kind of plugin\n",
					MAX_PLUGINS);
				return EXIT_USAGE;
			}
			if (c == 'A')
				specs[nspecs++] = optarg;
			else
				qemu_plugins[nqemu++] = optarg;
			break;
		case 'o': out_dir = optarg; break;
		default:
			fputs(builtin_replay_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || (!!interval + all + o.serial) != 1) {
		fprintf(stderr, "simuboost replay: expected a recording and one of --interval K, "
				"--all, --serial\n");
		return EXIT_USAGE;
	}
	if (bisect && !interval) {
		fprintf(stderr, "simuboost replay: --bisect needs --interval K\n");
		return EXIT_USAGE;
	}
	if (o.trace_dir && (strchr(o.trace_dir, ',') ||
			    (mkdir(o.trace_dir, 0755) != 0 && errno != EEXIST))) {
		fprintf(stderr, "simuboost replay: --trace %s: %s\n", o.trace_dir,
			strchr(o.trace_dir, ',') ? "QEMU cannot take a path with a comma"
						 : strerror(errno));
		return EXIT_USAGE;
	}
	if ((nqemu || json) && nspecs + nqemu && !out_dir) {
		fprintf(stderr, "simuboost replay: %s needs --out DIR for its output\n",
			nqemu ? "--qemu-plugin" : "--analysis with --json");
		return EXIT_USAGE;
	}
	if (out_dir && (strchr(out_dir, ',') || cli__make_dir(out_dir, "replay") != 0)) {
		if (strchr(out_dir, ','))
			fprintf(stderr, "simuboost replay: --out %s: QEMU cannot take a path with a "
					"comma\n", out_dir);
		return EXIT_USAGE;
	}
	o.recording = argv[optind];
	long count = simnode__checkpoints(o.recording, err, sizeof(err));
	if (count < 0) {
		fprintf(stderr, "simuboost replay: %s\n", err);
		return EXIT_FAILURE;
	}
	if (interval) {
		uint32_t k;
		if (cli__parse_index(interval, &k) != 0) {
			fprintf(stderr, "simuboost replay: --interval '%s' is not a number\n",
				interval);
			return EXIT_USAGE;
		}
		o.first = k;
		o.last = k + 1;
	} else {
		o.first = 0;
		o.last = count > 1 ? (uint32_t)count - 1 : 1;
	}
	if (!o.jobs)
		o.jobs = cli__cpus();
	if (!json && isatty(STDERR_FILENO))
		o.progress = progress;
	/* The plugins are loaded here too: a bad one is refused before any
	 * QEMU starts, and the report is made here. */
	char abs_specs[MAX_PLUGINS][PATH_MAX + 1024];
	if (cli__load_analyses(specs, nspecs, an, "replay") != 0)
		return EXIT_USAGE;
	for (unsigned i = 0; i < nspecs; i++) {
		/* QEMU runs them by path, wherever its working directory is */
		cli__absolute_spec(specs[i], abs_specs[i], sizeof(abs_specs[i]));
		specs[i] = abs_specs[i];
	}
	if (nspecs) {
		if (cli__states_dir(out_dir, states_dir, sizeof(states_dir), "replay") != 0)
			return EXIT_FAILURE;
		o.analyses = specs;
		o.nanalyses = nspecs;
		o.analysis_dir = states_dir;
	}
	if (nqemu) {
		if (cli__qemu_plugin_dir(out_dir, qemu_dir, "replay") != 0)
			return EXIT_FAILURE;
		o.qemu_plugins = qemu_plugins;
		o.nqemu_plugins = nqemu;
		o.qemu_plugin_dir = qemu_dir;
	}
	json_t *results = simnode__replay(&o, err, sizeof(err));
	if (!results) {
		fprintf(stderr, "simuboost replay: %s\n", err);
		return EXIT_FAILURE;
	}
	if (o.trace_dir) {
		/* beside the traces, for `trace plot` (replay time per interval) */
		char path[PATH_MAX], tmp[PATH_MAX + 8];
		snprintf(path, sizeof(path), "%s/replay.json", o.trace_dir);
		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		json_t *doc = json_pack("{s:s, s:O}", "recording", o.recording, "intervals", results);
		if (json_dump_file(doc, tmp, JSON_INDENT(1)) != 0 || rename(tmp, path) != 0)
			fprintf(stderr, "simuboost replay: cannot write %s\n", path);
		json_decref(doc);
	}
	size_t i, exact = 0;
	json_t *r;
	json_array_foreach(results, i, r)
		exact += !strcmp(str(r, "verdict"), "exact");
	json_t *first = json_array_get(results, 0);
	if (bisect && !strcmp(str(first, "verdict"), "diverged")) {
		json_t *again = simnode__bisect(&o, first, err, sizeof(err));
		if (!again) {
			fprintf(stderr, "simuboost replay: --bisect: %s\n", err);
		} else if (!json_object_get(again, "bisect")) {
			fprintf(stderr, "simuboost replay: --bisect: the re-run ended %s: %s\n",
				str(again, "verdict"), str(again, "detail"));
		} else {
			json_object_set(first, "bisect", json_object_get(again, "bisect"));
		}
		json_decref(again);
	}
	if (json) {
		json_t *doc = json_pack("{s:s, s:s, s:I, s:I, s:O}", "recording", o.recording, "mode",
					o.serial ? "serial" : "parallel", "exact", (json_int_t)exact,
					"intervals_total", (json_int_t)json_array_size(results),
					"intervals", results);
		json_dumpf(doc, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(doc);
	} else {
		cli__print_results(results, stdout);
		printf("%zu of %zu intervals exact\n", exact, json_array_size(results));
		if (json_object_get(first, "bisect"))
			print_bisect(first, stdout);
	}
	bool ok = exact == json_array_size(results);
	if (nspecs && ok) {
		ok = cli__analysis_reports(an, nspecs, states_dir, o.first, o.last, o.serial, out_dir,
					   "replay") == 0;
	} else if (nspecs) {
		fprintf(stderr, "simuboost replay: no analysis report: not every interval replayed "
				"exact\n");
	}
	for (unsigned a = 0; a < nspecs; a++)
		analysis__close(an[a]);
	if (nspecs && !out_dir)
		cli__remove_dir(states_dir, "replay");
	json_decref(results);
	return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
