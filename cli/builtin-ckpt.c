/* simuboost ckpt: inspect, check and move the checkpoints of a recording. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "builtin.h"
#include "chart.h"
#include "checkpoint.h"

const char builtin_ckpt_usage[] =
	"usage: simuboost ckpt ls [--json] <REC>\n"
	"       simuboost ckpt show [--json] <REC> <K>\n"
	"       simuboost ckpt verify <REC>\n"
	"       simuboost ckpt materialize <REC> <K> -o <FILE>\n"
	"       simuboost ckpt plot <REC> -o <FILE.png|FILE.svg>\n"
	"       simuboost ckpt export <REC> <ARCHIVE>\n"
	"       simuboost ckpt import <ARCHIVE> <REC>\n"
	"\n"
	"  ls           one line per checkpoint: guest time, pages dirtied, zero and\n"
	"               deduplicated pages, bytes stored after lz4, downtime\n"
	"  show         one checkpoint's CPU state and page statistics\n"
	"  verify       checks every file's checksum and every page's hash; exit\n"
	"               status 1 if anything is wrong, with each problem named\n"
	"  materialize  writes the full RAM image at checkpoint K (sparse file)\n"
	"  plot         a chart per checkpoint: downtime, pages dirtied and the dirty\n"
	"               rate in MiB per second of guest time\n"
	"  export       writes the recording as a tar archive; compression by suffix:\n"
	"               .tar, .tar.gz, .tar.xz, .tar.zst, .tar.lz4\n"
	"  import       unpacks and verifies an archive into a new directory\n";

static int usage_error(const char *msg)
{
	fprintf(stderr, "simuboost ckpt: %s\n", msg);
	fputs(builtin_ckpt_usage, stderr);
	return EXIT_USAGE;
}

static struct ckpt_store *open_store(const char *dir)
{
	char err[1024];
	struct ckpt_store *st = ckpt_store__open(dir, err, sizeof(err));
	if (!st)
		fprintf(stderr, "simuboost ckpt: %s\n", err);
	return st;
}

static int load_manifest(struct ckpt_store *st, uint32_t k, struct ckpt_manifest **m)
{
	char err[1024];
	if (ckpt_manifest__load(st, k, m, err, sizeof(err)) != 0) {
		fprintf(stderr, "simuboost ckpt: %s\n", err);
		return -1;
	}
	return 0;
}

static json_t *manifest_json(const struct ckpt_manifest *m)
{
	return json_pack("{s:i, s:I, s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:I}",
			 "index", (int)m->index, "guest_time_ns", (json_int_t)m->guest_time_ns,
			 "downtime_ns", (json_int_t)m->downtime_ns, "final",
			 (m->flags & CKPT_FINAL) != 0, "pages", (json_int_t)m->page_count,
			 "zero_pages", (json_int_t)m->zero_pages, "dedup_pages",
			 (json_int_t)m->dedup_pages, "stored_pages", (json_int_t)m->stored_pages,
			 "stored_bytes", (json_int_t)m->stored_bytes, "raw_bytes",
			 (json_int_t)(m->page_count * CKPT_PAGE_SIZE));
}

static void print_json(json_t *o)
{
	char *text = json_dumps(o, JSON_COMPACT);
	if (text)
		printf("%s\n", text);
	free(text);
	json_decref(o);
}

static int cmd_ls(struct ckpt_store *st, bool json)
{
	const struct ckpt_info *info = ckpt_store__info(st);
	json_t *arr = json ? json_array() : NULL;
	if (!json) {
		printf("%s: %u checkpoints, %llu MiB guest, interval %.3f s, %s\n",
		       ckpt_store__dir(st), ckpt_store__count(st),
		       (unsigned long long)(info->memory_bytes >> 20),
		       (double)info->interval_ns / 1e9, info->mode);
		printf("%6s %10s %9s %9s %9s %9s %11s %7s %10s\n", "ckpt", "guest s", "pages",
		       "zero", "dedup", "stored", "stored KiB", "ratio", "downtime");
	}
	uint64_t raw = 0, stored = 0;
	for (uint32_t k = 0; k < ckpt_store__count(st); k++) {
		struct ckpt_manifest *m;
		if (load_manifest(st, k, &m) != 0) {
			json_decref(arr);
			return 1;
		}
		uint64_t r = m->page_count * CKPT_PAGE_SIZE;
		raw += r;
		stored += m->stored_bytes;
		if (json) {
			json_array_append_new(arr, manifest_json(m));
		} else {
			printf("%6u %10.3f %9llu %9llu %9llu %9llu %11.1f %6.2f%% %8.3fms%s\n", k,
			       (double)m->guest_time_ns / 1e9, (unsigned long long)m->page_count,
			       (unsigned long long)m->zero_pages, (unsigned long long)m->dedup_pages,
			       (unsigned long long)m->stored_pages, (double)m->stored_bytes / 1024.0,
			       r ? 100.0 * (double)m->stored_bytes / (double)r : 0.0,
			       (double)m->downtime_ns / 1e6, m->flags & CKPT_FINAL ? "  final" : "");
		}
		ckpt_manifest__free(m);
	}
	if (json) {
		print_json(json_pack("{s:s, s:I, s:I, s:s, s:I, s:I, s:o}", "recording",
				     ckpt_store__dir(st), "memory_bytes",
				     (json_int_t)info->memory_bytes, "interval_ns",
				     (json_int_t)info->interval_ns, "mode", info->mode, "raw_bytes",
				     (json_int_t)raw, "stored_bytes", (json_int_t)stored,
				     "checkpoints", arr));
	} else {
		printf("total: %.1f MiB of pages stored for %.1f MiB dirtied (%.2f%%)\n",
		       (double)stored / 1048576.0, (double)raw / 1048576.0,
		       raw ? 100.0 * (double)stored / (double)raw : 0.0);
	}
	return 0;
}

static int cmd_show(struct ckpt_store *st, uint32_t k, bool json)
{
	struct ckpt_manifest *m;
	if (load_manifest(st, k, &m) != 0)
		return 1;
	if (json) {
		json_t *o = manifest_json(m);
		json_object_set_new(o, "rip", json_integer((json_int_t)m->cpu.rip));
		json_object_set_new(o, "cr3", json_integer((json_int_t)m->cpu.cr3));
		json_object_set_new(o, "halted", json_boolean(m->cpu.halted));
		json_object_set_new(o, "device_state_bytes",
				    json_integer((json_int_t)m->device_state_len));
		print_json(o);
	} else {
		printf("checkpoint %u of %s%s\n", k, ckpt_store__dir(st),
		       m->flags & CKPT_FINAL ? " (final: the guest exited)" : "");
		printf("guest time %.6f s, downtime %.3f ms\n", (double)m->guest_time_ns / 1e9,
		       (double)m->downtime_ns / 1e6);
		if (m->flags & CKPT_FINAL)
			printf("guest exit status %d\n", m->exit_status);
		printf("pages %llu: %llu zero, %llu deduplicated, %llu stored in %.1f KiB\n",
		       (unsigned long long)m->page_count, (unsigned long long)m->zero_pages,
		       (unsigned long long)m->dedup_pages, (unsigned long long)m->stored_pages,
		       (double)m->stored_bytes / 1024.0);
		printf("device state %zu bytes\n\n", m->device_state_len);
		ckpt_cpu_state__print(&m->cpu, stdout);
	}
	ckpt_manifest__free(m);
	return 0;
}

static void report_problem(void *opaque, const char *problem)
{
	(void)opaque;
	printf("%s\n", problem);
}

static int cmd_verify(struct ckpt_store *st)
{
	char err[1024];
	long problems = ckpt_store__verify(st, report_problem, NULL, err, sizeof(err));
	if (problems < 0) {
		fprintf(stderr, "simuboost ckpt: %s\n", err);
		return 1;
	}
	if (problems) {
		printf("%s: %ld problem%s\n", ckpt_store__dir(st), problems, problems == 1 ? "" : "s");
		return 1;
	}
	printf("%s: %u checkpoints and %u logs intact\n", ckpt_store__dir(st), ckpt_store__count(st),
	       ckpt_store__count(st) ? ckpt_store__count(st) - 1 : 0);
	return 0;
}

/* Writes RAM at checkpoint k as a sparse file: zero pages become holes. */
static int cmd_materialize(struct ckpt_store *st, uint32_t k, const char *out)
{
	uint64_t size = ckpt_store__info(st)->memory_bytes;
	char err[1024];
	uint8_t *ram = mmap(NULL, size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ram == MAP_FAILED) {
		fprintf(stderr, "simuboost ckpt: %llu MiB for the image: %s\n",
			(unsigned long long)(size >> 20), strerror(errno));
		return 1;
	}
	int rc = 1;
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", out);
	int fd = -1;
	if (ckpt_store__materialize(st, k, ram, err, sizeof(err)) != 0) {
		fprintf(stderr, "simuboost ckpt: %s\n", err);
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)size) != 0)
		goto io_error;
	static const uint8_t zero[CKPT_PAGE_SIZE];
	for (uint64_t off = 0; off < size; off += CKPT_PAGE_SIZE) {
		if (!memcmp(ram + off, zero, CKPT_PAGE_SIZE))
			continue;
		if (pwrite(fd, ram + off, CKPT_PAGE_SIZE, (off_t)off) != CKPT_PAGE_SIZE)
			goto io_error;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		goto io_error;
	}
	fd = -1;
	if (rename(tmp, out) != 0)
		goto io_error;
	printf("%s: RAM at checkpoint %u, %llu MiB\n", out, k, (unsigned long long)(size >> 20));
	rc = 0;
	goto out;
io_error:
	fprintf(stderr, "simuboost ckpt: %s: %s\n", out, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
out:
	munmap(ram, size);
	return rc;
}

/* The downtime and dirty-rate chart of a recording. */
static int cmd_plot(struct ckpt_store *st, const char *output)
{
	uint32_t n = ckpt_store__count(st);
	double *v = malloc(3 * (n ? n : 1) * sizeof(*v)), prev_ns = 0;
	char err[1024];
	int rc = 1;

	for (uint32_t k = 0; k < n; k++) {
		struct ckpt_manifest *m;
		if (ckpt_manifest__load(st, k, &m, err, sizeof(err)) != 0) {
			fprintf(stderr, "simuboost ckpt: %s\n", err);
			goto out;
		}
		double span = ((double)m->guest_time_ns - prev_ns) / 1e9;
		v[k] = (double)m->downtime_ns / 1e6;
		v[n + k] = k ? (double)m->page_count : NAN; /* checkpoint 0 holds every page */
		v[2 * n + k] = k && span > 0 ? (double)m->page_count * CKPT_PAGE_SIZE / 1048576.0 / span
					     : NAN;
		prev_ns = (double)m->guest_time_ns;
		ckpt_manifest__free(m);
	}
	struct chart_panel panels[] = { { "downtime (ms)", v },
					{ "pages dirtied in the interval before", v + n },
					{ "dirty rate (MiB per second of guest time)", v + 2 * n } };
	char title[4200];
	const struct ckpt_info *info = ckpt_store__info(st);
	snprintf(title, sizeof(title), "simuboost: the checkpoints of %s (%s, every %g ms)",
		 ckpt_store__dir(st), info->mode, (double)info->interval_ns / 1e6);
	if (chart__write(output, title, "checkpoint", 0, n, panels, 3, err, sizeof(err)) != 0) {
		fprintf(stderr, "simuboost ckpt plot: %s\n", err);
		goto out;
	}
	rc = 0;
out:
	free(v);
	return rc;
}

/* export and import on a terminal: a line that moves with each percent */
struct moving {
	const char *what;
	int shown; /* the percent (or MiB, total unknown) last shown; -1: none */
};

static void show_moving(void *ctx, uint64_t done, uint64_t total)
{
	struct moving *m = ctx;
	int now = total ? (int)(done * 100 / total) : (int)(done >> 20);
	if (now == m->shown)
		return;
	m->shown = now;
	if (total)
		fprintf(stderr, "\r%s: %3d%% (%.1f of %.1f MiB)", m->what, now,
			(double)done / 1048576.0, (double)total / 1048576.0);
	else
		fprintf(stderr, "\r%s: %.1f MiB", m->what, (double)done / 1048576.0);
}

int builtin_ckpt(int argc, char **argv)
{
	static const struct option options[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "output", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	if (argc < 2)
		return usage_error("expected a subcommand");
	const char *sub = argv[1];
	bool json = false;
	const char *output = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc - 1, argv + 1, "jo:", options, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'o': output = optarg; break;
		default: return usage_error("bad option");
		}
	}
	char **args = argv + 1 + optind;
	int nargs = argc - 1 - optind;
	char err[1024];
	if (!strcmp(sub, "export") || !strcmp(sub, "import")) {
		if (nargs != 2)
			return usage_error("export and import take two paths");
		struct moving moving = { .what = sub, .shown = -1 };
		struct ckpt_progress progress = { .fn = show_moving, .ctx = &moving };
		const struct ckpt_progress *p = isatty(STDERR_FILENO) ? &progress : NULL;
		int rc = !strcmp(sub, "export") ?
			 ckpt_archive__export(args[0], args[1], p, err, sizeof(err)) :
			 ckpt_archive__import(args[0], args[1], p, err, sizeof(err));
		if (p && moving.shown >= 0)
			fputc('\n', stderr);
		if (rc != 0) {
			fprintf(stderr, "simuboost ckpt: %s\n", err);
			return 1;
		}
		printf("%s: written\n", args[1]);
		return 0;
	}
	bool needs_k = !strcmp(sub, "show") || !strcmp(sub, "materialize");
	if (!needs_k && strcmp(sub, "ls") && strcmp(sub, "verify") && strcmp(sub, "plot"))
		return usage_error("unknown subcommand");
	if (nargs != (needs_k ? 2 : 1))
		return usage_error(needs_k ? "expected a recording and a checkpoint number"
					   : "expected a recording");
	uint32_t k = 0;
	if (needs_k && cli__parse_index(args[1], &k) != 0)
		return usage_error("the checkpoint must be a number");
	if ((!strcmp(sub, "materialize") || !strcmp(sub, "plot")) && !output)
		return usage_error("materialize and plot need -o FILE");
	if (!strcmp(sub, "plot") && chart__check_path(output, err, sizeof(err)) != 0) {
		fprintf(stderr, "simuboost ckpt plot: %s\n", err);
		return EXIT_USAGE;
	}
	struct ckpt_store *st = open_store(args[0]);
	if (!st)
		return 1;
	int rc;
	if (needs_k && k >= ckpt_store__count(st)) {
		fprintf(stderr, "simuboost ckpt: %s has no checkpoint %u (it has %u)\n", args[0], k,
			ckpt_store__count(st));
		rc = 1;
	} else if (!strcmp(sub, "ls")) {
		rc = cmd_ls(st, json);
	} else if (!strcmp(sub, "show")) {
		rc = cmd_show(st, k, json);
	} else if (!strcmp(sub, "verify")) {
		rc = cmd_verify(st);
	} else if (!strcmp(sub, "plot")) {
		rc = cmd_plot(st, output);
	} else {
		rc = cmd_materialize(st, k, output);
	}
	ckpt_store__close(st);
	return rc;
}
