/* simuboost record: run a guest under the vnode and leave a recording
 * (checkpoints at interval boundaries plus the nondeterminism log). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builtin.h"
#include "checkpoint.h"
#include "simuboost-version.h"
#include "vnode.h"

const char builtin_record_usage[] =
	"usage: simuboost record [options] <vm.cfg>\n"
	"\n"
	"Runs the guest under KVM like `run` and writes a recording: a checkpoint at\n"
	"every interval boundary (guest time) and the log of every nondeterministic\n"
	"input in between, enough to replay any interval exactly.\n"
	"\n"
	"  -o, --output DIR          the recording directory (default: NAME.rec for\n"
	"                            NAME.cfg, in the current directory); must not exist\n"
	"  -i, --interval DURATION   checkpoint interval, e.g. 100ms (default: the\n"
	"                            config's `interval`, else 1s; at least 10ms)\n"
	"      --checkpoint-mode MODE  cow (default): write-protect the dirty pages and\n"
	"                            copy them behind the running guest; stop-copy: copy\n"
	"                            them while the guest waits (the baseline)\n"
	"  -s, --set KEY=VALUE       override a vm.cfg key (repeatable)\n"
	"  -t, --timeout SECS        stop recording after SECS seconds of guest time\n"
	"  -j, --json                print the summary as JSON on stdout (the console\n"
	"                            then goes to stderr)\n"
	"  -q, --quiet               no progress and no summary\n"
	"      --simulate N          simulate the recording on N local nodes while it is\n"
	"                            made (`simulate --follow`): interval K starts once\n"
	"                            checkpoint K+1 is committed; its results go to\n"
	"                            SIMOUT/simulate.json, reports to SIMOUT/NAME.txt\n"
	"  -A, --analysis SPEC       with --simulate, an analysis plugin (repeatable)\n"
	"      --qemu-plugin SPEC    with --simulate, a plain QEMU TCG plugin on every\n"
	"                            interval (repeatable; output in SIMOUT/qemu-plugins)\n"
	"      --trace DIR           with --simulate, full traces of every interval\n"
	"      --simulate-out DIR    SIMOUT (default: DIR.sim beside the recording)\n"
	"\n"
	"Exit status: the guest's exit value, 124 on timeout, 125 if the guest\n"
	"faulted, 130 if interrupted, 1 if recording failed (checkpoints committed\n"
	"before the failure stay intact), 2 on usage errors.\n";

struct progress {
	bool tty;
	bool shown;
};

static void on_checkpoint(void *opaque, const struct vnode_checkpoint_event *ev)
{
	struct progress *p = opaque;
	if (!p->tty)
		return;
	fprintf(stderr, "\r\033[Krecording: checkpoint %u at %.2f s guest time, %.0f MiB written, "
			"downtime %.2f ms, %u on disk",
		ev->index, (double)ev->guest_time_ns / 1e9,
		(double)ev->written_pages * 4096 / 1048576.0,
		(double)ev->downtime_ns / 1e6, ev->committed);
	p->shown = true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted values. */
static uint64_t percentile(const uint64_t *sorted, size_t n, double p)
{
	if (!n)
		return 0;
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	return sorted[(rank > n ? n : rank) - 1];
}

struct store_totals {
	uint64_t raw_bytes;    /* 4096 x every page entry, zero pages included */
	uint64_t stored_bytes; /* page bytes in the packs after dedup and lz4 */
	uint64_t zero_pages, dedup_pages, stored_pages;
};

static int sum_store(struct ckpt_store *st, struct store_totals *t, char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	for (uint32_t k = 0; k < ckpt_store__count(st); k++) {
		struct ckpt_manifest *m;
		if (ckpt_manifest__load(st, k, &m, err, errlen) != 0)
			return -1;
		t->raw_bytes += m->page_count * CKPT_PAGE_SIZE;
		t->stored_bytes += m->stored_bytes;
		t->zero_pages += m->zero_pages;
		t->dedup_pages += m->dedup_pages;
		t->stored_pages += m->stored_pages;
		ckpt_manifest__free(m);
	}
	return 0;
}

static char *default_output(const char *cfg_path)
{
	const char *base = strrchr(cfg_path, '/');
	base = base ? base + 1 : cfg_path;
	size_t len = strlen(base);
	if (len > 4 && !strcmp(base + len - 4, ".cfg"))
		len -= 4;
	char *out = malloc(len + 5);
	if (out)
		snprintf(out, len + 5, "%.*s.rec", (int)len, base);
	return out;
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	char chunk[4096];
	size_t n;
	while (mem && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, n, mem);
	if (mem)
		fclose(mem);
	fclose(f);
	return buf;
}

static void print_summary(const char *dir, const struct vnode_stats *stats,
			  const struct vnode_record_stats *rs, const uint64_t *sorted,
			  const struct store_totals *t, const char *mode)
{
	size_t n = rs->checkpoints;
	fprintf(stderr, "recording: %s (%s checkpoints)\n", dir, mode);
	fprintf(stderr, "  outcome          %s", vnode_outcome__name(stats->outcome));
	if (stats->outcome == VNODE_GUEST_EXIT)
		fprintf(stderr, " (status %d)", stats->guest_status);
	fprintf(stderr, "\n  wall time        %.3f s\n", stats->wall_seconds);
	fprintf(stderr, "  checkpoints      %u taken, %u committed\n", rs->checkpoints,
		rs->committed);
	fprintf(stderr, "  downtime         median %.3f ms, p99 %.3f ms, max %.3f ms\n",
		(double)percentile(sorted, n, 50) / 1e6, (double)percentile(sorted, n, 99) / 1e6,
		n ? (double)sorted[n - 1] / 1e6 : 0.0);
	fprintf(stderr, "  dirty pages      %llu changed after checkpoint 0 (%llu write faults, "
			"%llu waited for a copy)\n",
		(unsigned long long)rs->dirty_pages, (unsigned long long)rs->write_faults,
		(unsigned long long)rs->wp_faults);
	fprintf(stderr, "  fault waits      %llu runs cut short in a page fault were let finish "
			"its instruction\n", (unsigned long long)rs->fault_waits);
	fprintf(stderr, "  events logged    %llu (%llu interrupts)\n",
		(unsigned long long)rs->events_logged, (unsigned long long)rs->interrupts_logged);
	fprintf(stderr, "  store            %.1f MiB of pages from %.1f MiB raw (%.2f%%): "
			"%llu zero, %llu deduplicated, %llu stored\n",
		(double)t->stored_bytes / 1048576.0, (double)t->raw_bytes / 1048576.0,
		t->raw_bytes ? 100.0 * (double)t->stored_bytes / (double)t->raw_bytes : 0.0,
		(unsigned long long)t->zero_pages, (unsigned long long)t->dedup_pages,
		(unsigned long long)t->stored_pages);
}

static void print_json(const char *dir, const struct vnode_stats *stats,
		       const struct vnode_record_stats *rs, const uint64_t *sorted,
		       const struct store_totals *t, const char *mode)
{
	size_t n = rs->checkpoints;
	json_t *down = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(down, json_integer((json_int_t)rs->downtime_ns[i]));
	json_t *o = json_pack(
		"{s:s, s:s, s:s, s:i, s:f, s:i, s:i, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
		"s:I, s:I, s:I, s:I, s:I, s:I}",
		"recording", dir, "mode", mode, "outcome", vnode_outcome__name(stats->outcome),
		"guest_status", stats->guest_status, "wall_seconds", stats->wall_seconds,
		"checkpoints", (int)rs->checkpoints, "committed", (int)rs->committed,
		"downtime_ns", down,
		"downtime_median_ns", (json_int_t)percentile(sorted, n, 50),
		"downtime_p99_ns", (json_int_t)percentile(sorted, n, 99),
		"dirty_pages", (json_int_t)rs->dirty_pages, "wp_faults", (json_int_t)rs->wp_faults,
		"write_faults", (json_int_t)rs->write_faults,
		"fault_waits", (json_int_t)rs->fault_waits,
		"events_logged", (json_int_t)rs->events_logged,
		"interrupts_logged", (json_int_t)rs->interrupts_logged,
		"raw_bytes", (json_int_t)t->raw_bytes, "stored_bytes", (json_int_t)t->stored_bytes,
		"zero_pages", (json_int_t)t->zero_pages, "dedup_pages", (json_int_t)t->dedup_pages,
		"stored_pages", (json_int_t)t->stored_pages,
		"interrupts_injected", (json_int_t)stats->interrupts_injected);
	char *text = json_dumps(o, JSON_COMPACT);
	if (text)
		printf("%s\n", text);
	free(text);
	json_decref(o);
}


/* What record passes on to `simulate`: option and value pairs. */
struct simulate_args {
	const char *v[2 * (2 * CLI_MAX_SPECS + 1)];
	unsigned n;
};

static int simulate_args__add(struct simulate_args *a, const char *opt, const char *value)
{
	if (a->n + 2 > sizeof(a->v) / sizeof(a->v[0])) {
		fprintf(stderr, "simuboost record: too many %s\n", opt);
		return -1;
	}
	a->v[a->n++] = opt;
	a->v[a->n++] = value;
	return 0;
}

/* `simuboost simulate --follow` on the recording being made, its output in
 * out_dir/simulate.json. The pid, or -1 with err. */
static pid_t start_simulate(const char *dir, const char *nodes, const char *out_dir,
			    const struct simulate_args *sa, char *err, size_t errlen)
{
	char json_path[4200];
	if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", out_dir, strerror(errno));
		return -1;
	}
	snprintf(json_path, sizeof(json_path), "%s/simulate.json", out_dir);
	int fd = open(json_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", json_path, strerror(errno));
		return -1;
	}
	const char *args[10 + sizeof(sa->v) / sizeof(sa->v[0])] = {
		"simuboost", "simulate", "--follow", dir, "--nodes", nodes, "--json", "-o", out_dir
	};
	unsigned n = 9;
	for (unsigned i = 0; i < sa->n; i++)
		args[n++] = sa->v[i];
	args[n] = NULL;
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (pid == 0) {
		dup2(fd, STDOUT_FILENO);
		execv("/proc/self/exe", (char *const *)args);
		fprintf(stderr, "simuboost record: exec simulate: %s\n", strerror(errno));
		_exit(127);
	}
	close(fd);
	return pid;
}

/* Waits for the simulation; its exit status, said on stderr. */
static int finish_simulate(pid_t pid, const char *out_dir)
{
	int st = 0;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) {
		fprintf(stderr, "simuboost record: the simulation ended abnormally\n");
		return EXIT_FAILURE;
	}
	fprintf(stderr, "simulation: %s/simulate.json (%s)\n", out_dir,
		WEXITSTATUS(st) == 0 ? "every interval exact" :
		WEXITSTATUS(st) == 1 ? "not every interval exact" : "failed");
	return WEXITSTATUS(st);
}

int builtin_record(int argc, char **argv)
{
	enum { OPT_MODE = 256, OPT_SIMULATE, OPT_SIMULATE_OUT, OPT_QEMU_PLUGIN, OPT_TRACE };
	static const struct option options[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "interval", required_argument, NULL, 'i' },
		{ "checkpoint-mode", required_argument, NULL, OPT_MODE },
		{ "set", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "simulate", required_argument, NULL, OPT_SIMULATE },
		{ "simulate-out", required_argument, NULL, OPT_SIMULATE_OUT },
		{ "analysis", required_argument, NULL, 'A' },
		{ "qemu-plugin", required_argument, NULL, OPT_QEMU_PLUGIN },
		{ "trace", required_argument, NULL, OPT_TRACE },
		{ NULL, 0, NULL, 0 },
	};
	const char *simulate = NULL, *sim_out = NULL;
	struct simulate_args sim_args = { .n = 0 };
	pid_t sim_pid = -1;
	char sim_dir[4200] = "";
	struct cli_sets sets = { .n = 0 };
	const char *output = NULL, *interval = NULL;
	bool json = false, quiet = false;
	struct vnode_run_options opts = { 0 };
	struct vnode_record_options ropts = { .mode = VNODE_CHECKPOINT_COW };
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:i:s:t:jqA:", options, NULL)) != -1) {
		switch (c) {
		case 'o': output = optarg; break;
		case 'i': interval = optarg; break;
		case OPT_MODE:
			if (!strcmp(optarg, "cow")) {
				ropts.mode = VNODE_CHECKPOINT_COW;
			} else if (!strcmp(optarg, "stop-copy")) {
				ropts.mode = VNODE_CHECKPOINT_STOP_COPY;
			} else {
				fprintf(stderr, "simuboost record: --checkpoint-mode '%s': expected cow "
						"or stop-copy\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 's':
			if (cli__collect_set(&sets, optarg, "record") != 0)
				return EXIT_USAGE;
			break;
		case 't':
			if (cli__parse_timeout(optarg, &opts.timeout_seconds, "record") != 0)
				return EXIT_USAGE;
			break;
		case 'j': json = true; break;
		case 'q': quiet = true; break;
		case OPT_SIMULATE:
			if (atoi(optarg) < 1) {
				fprintf(stderr, "simuboost record: --simulate N: N nodes, at least 1\n");
				return EXIT_USAGE;
			}
			simulate = optarg;
			break;
		case OPT_SIMULATE_OUT: sim_out = optarg; break;
		case 'A':
			if (simulate_args__add(&sim_args, "--analysis", optarg) != 0)
				return EXIT_USAGE;
			break;
		case OPT_QEMU_PLUGIN:
			if (simulate_args__add(&sim_args, "--qemu-plugin", optarg) != 0)
				return EXIT_USAGE;
			break;
		case OPT_TRACE:
			if (simulate_args__add(&sim_args, "--trace", optarg) != 0)
				return EXIT_USAGE;
			break;
		default:
			fputs(builtin_record_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if ((sim_args.n || sim_out) && !simulate) {
		fprintf(stderr, "simuboost record: --analysis, --qemu-plugin, --trace and "
				"--simulate-out go with --simulate\n");
		return EXIT_USAGE;
	}
	if (optind != argc - 1) {
		fprintf(stderr, "simuboost record: expected exactly one vm.cfg\n");
		fputs(builtin_record_usage, stderr);
		return EXIT_USAGE;
	}
	const char *cfg_path = argv[optind];
	char err[1024];
	struct vnode_config cfg;
	if (vnode_config__load(&cfg, cfg_path, err, sizeof(err)) != 0) {
		fprintf(stderr, "simuboost record: %s\n", err);
		return EXIT_VMM_ERROR;
	}
	int rc = EXIT_VMM_ERROR;
	char *dir = NULL, *cfg_text = NULL;
	struct ckpt_store *store = NULL;
	struct vnode *vn = NULL;
	if (cli__apply_config(&cfg, &sets, json, err, sizeof(err)) != 0)
		goto out_err;
	if (interval) {
		char assign[128];
		snprintf(assign, sizeof(assign), "interval=%s", interval);
		if (vnode_config__set(&cfg, assign, err, sizeof(err)) != 0)
			goto out_err;
	}
	ropts.interval_ns = cfg.interval_ns;
	dir = output ? strdup(output) : default_output(cfg_path);
	cfg_text = read_text(cfg_path);
	const char *mode = ropts.mode == VNODE_CHECKPOINT_COW ? "cow" : "stop-copy";
	struct ckpt_info info = {
		.memory_bytes = cfg.memory, .interval_ns = cfg.interval_ns, .mode = mode,
		.cpu_model = vnode_cpuid__qemu_cpu(), .config_path = cfg_path,
		.config_text = cfg_text ? cfg_text : "", .created_by = "simuboost " SIMUBOOST_VERSION,
	};
	vn = vnode__create(&cfg, err, sizeof(err));
	if (!vn)
		goto out_err;
	store = dir ? ckpt_store__create(dir, &info, err, sizeof(err)) : NULL;
	if (!store) {
		if (!dir)
			snprintf(err, sizeof(err), "out of memory");
		goto out_err;
	}
	if (simulate) {
		snprintf(sim_dir, sizeof(sim_dir), "%s", sim_out ? sim_out : "");
		if (!sim_out)
			snprintf(sim_dir, sizeof(sim_dir), "%s.sim", dir);
		sim_pid = start_simulate(dir, simulate, sim_dir, &sim_args, err, sizeof(err));
		if (sim_pid < 0)
			goto out_err;
	}
	struct progress progress = { .tty = !quiet && isatty(STDERR_FILENO) };
	ropts.on_checkpoint = on_checkpoint;
	ropts.opaque = &progress;
	struct vnode_stats stats;
	struct vnode_record_stats rstats;
	int rec_rc = vnode__record(vn, store, &opts, &ropts, &stats, &rstats, err, sizeof(err));
	fflush(stdout);
	if (progress.shown)
		fputs("\r\033[K", stderr);
	if (rec_rc != 0) {
		fprintf(stderr, "simuboost record: %s\n", err);
		fprintf(stderr, "simuboost record: %s keeps checkpoints 0..%d, which stay readable\n",
			dir, (int)ckpt_store__count(store) - 1);
		vnode_record_stats__free(&rstats);
		goto out;
	}
	uint64_t *sorted = malloc((rstats.checkpoints ? rstats.checkpoints : 1) * sizeof(uint64_t));
	struct store_totals totals;
	if (!sorted || sum_store(store, &totals, err, sizeof(err)) != 0) {
		free(sorted);
		vnode_record_stats__free(&rstats);
		goto out_err;
	}
	memcpy(sorted, rstats.downtime_ns, rstats.checkpoints * sizeof(uint64_t));
	qsort(sorted, rstats.checkpoints, sizeof(uint64_t), cmp_u64);
	if (json)
		print_json(dir, &stats, &rstats, sorted, &totals, mode);
	else if (!quiet)
		print_summary(dir, &stats, &rstats, sorted, &totals, mode);
	free(sorted);
	vnode_record_stats__free(&rstats);
	rc = cli__exit_status(&stats, "record");
	if (sim_pid > 0) {
		int sim_rc = finish_simulate(sim_pid, sim_dir);
		sim_pid = -1;
		if (rc == EXIT_SUCCESS)
			rc = sim_rc;
	}
	goto out;
out_err:
	fprintf(stderr, "simuboost record: %s\n", err);
out:
	if (sim_pid > 0) /* what was committed is simulated; then it ends */
		finish_simulate(sim_pid, sim_dir);
	ckpt_store__close(store);
	vnode__destroy(vn);
	vnode_config__free(&cfg);
	free(dir);
	free(cfg_text);
	return rc;
}
