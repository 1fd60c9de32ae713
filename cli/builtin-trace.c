/* simuboost trace ls|show|grep|stats|export|plot: the traces `replay --trace
 * DIR` wrote. */
#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builtin.h"
#include "chart.h"
#include "checkpoint.h"
#include "trace.h"

const char builtin_trace_usage[] =
	"usage: simuboost trace ls [--json] <DIR>\n"
	"       simuboost trace show [--interval K] [--from N] [--count M] [--json] <DIR>\n"
	"       simuboost trace grep [--pc A[-B]] [--addr A[-B]] [--kind KIND] [show's options] <DIR>\n"
	"       simuboost trace stats [--json] <DIR>\n"
	"       simuboost trace export --format csv|jsonl|perfetto [-o FILE] [--interval K] <DIR>\n"
	"       simuboost trace plot -o FILE.png|FILE.svg [--rec REC] <DIR>\n"
	"\n"
	"Reads the per-interval traces that `simuboost replay --trace DIR` wrote\n"
	"(DIR/NNNNNN.trace). Concatenated in interval order they are the whole run;\n"
	"instruction counts (icount) are from the start of the first interval read.\n"
	"\n"
	"  ls      one line per trace: interval, instructions, records, chunks, raw\n"
	"          and stored bytes, compression ratio\n"
	"  show    records as text, one per line: an instruction (pc, size,\n"
	"          privilege level), then its memory accesses and events\n"
	"  grep    the records that match: instructions at --pc, memory accesses\n"
	"          whose virtual or physical address is in --addr, records of --kind\n"
	"          (insn, load, store, or an event: interrupt, exception, pio-read,\n"
	"          pio-write, mmio-read, mmio-write, syscall, sysret, cr3)\n"
	"  stats   record counts by kind, loads and stores, instructions per\n"
	"          privilege level, event counts by kind, compression, over the\n"
	"          traces there are (the intervals between without one are named)\n"
	"  export  every record as CSV or JSON lines, or the per-interval timeline as\n"
	"          a Chrome/Perfetto trace (one slice per interval, time in\n"
	"          instructions, interrupts and exceptions as instants)\n"
	"  plot    a chart of the intervals: instructions, memory accesses, the\n"
	"          replay's time (DIR/replay.json, which replay --trace writes; red:\n"
	"          not exact) and, with --rec REC, the pages each interval dirtied\n"
	"\n"
	"  -i, --interval K   only interval K (icounts from its start)\n"
	"      --from N       start at instruction N\n"
	"  -n, --count M      at most M records\n"
	"  -f, --format F     export format: csv, jsonl, perfetto\n"
	"  -o, --output FILE  export or plot to FILE (written whole, then renamed into\n"
	"                     place)\n"
	"      --rec REC      plot: the recording, for dirty pages\n"
	"  -j, --json         JSON (ls, stats) or JSON lines (show, grep; addresses\n"
	"                     and values as \"0x...\" strings)\n";

/* The intervals DIR holds traces of, sorted; -1 with err if none. */
static int list_intervals(const char *dir, uint32_t **out, size_t *n, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t cap = 0;

	*out = NULL;
	*n = 0;
	if (!d) {
		snprintf(err, errlen, "%s: cannot open: %m", dir);
		return -1;
	}
	while ((e = readdir(d))) {
		unsigned k;
		char tail;
		if (strlen(e->d_name) != 12 || sscanf(e->d_name, "%6u.trac%c", &k, &tail) != 2 ||
		    tail != 'e')
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			uint32_t *grown = realloc(*out, cap * sizeof(**out));
			if (!grown)
				break;
			*out = grown;
		}
		(*out)[(*n)++] = k;
	}
	closedir(d);
	if (!*n) {
		snprintf(err, errlen, "%s: no traces (NNNNNN.trace) here", dir);
		free(*out);
		return -1;
	}
	for (size_t i = 1; i < *n; i++) /* few hundred files: insertion sort */
		for (size_t j = i; j > 0 && (*out)[j - 1] > (*out)[j]; j--) {
			uint32_t t = (*out)[j];
			(*out)[j] = (*out)[j - 1];
			(*out)[j - 1] = t;
		}
	return 0;
}

static double ratio(uint64_t raw, uint64_t stored)
{
	return stored ? (double)raw / (double)stored : 0.0;
}

/* Opens each trace in DIR in interval order and calls fn on it, which
 * returns -1 (having said why) to stop. A trace that does not open is
 * named; keep_going says whether the next ones are still read. Returns 0,
 * or 1 if anything failed. */
static int each_trace(const char *dir, bool keep_going,
		      int (*fn)(struct trace_reader *r, uint32_t interval, void *ctx), void *ctx)
{
	uint32_t *ks;
	size_t n;
	char err[1024], path[4200];
	int rc = 0;

	if (list_intervals(dir, &ks, &n, err, sizeof(err)) != 0) {
		fprintf(stderr, "simuboost trace: %s\n", err);
		return 1;
	}
	for (size_t i = 0; i < n && (keep_going || !rc); i++) {
		trace__path(path, sizeof(path), dir, ks[i]);
		struct trace_reader *r = trace_reader__open(path, err, sizeof(err));
		if (!r) {
			fprintf(stderr, "simuboost trace: %s\n", err);
			rc = 1;
			continue;
		}
		if (fn(r, ks[i], ctx) != 0)
			rc = 1;
		trace_reader__close(r);
	}
	free(ks);
	return rc;
}

struct ls_output {
	json_t *arr;                    /* with --json; else a table */
	bool header_done;
};

/* One line, or one JSON object, per trace. */
static int ls_one(struct trace_reader *r, uint32_t interval, void *ctx)
{
	struct ls_output *o = ctx;
	json_t *arr = o->arr;
	const struct trace_info *t = trace_reader__info(r);
	(void)interval;
	if (!arr && !o->header_done) {
		printf("%8s %14s %14s %7s %12s %12s %6s\n", "interval", "instructions", "records",
		       "chunks", "raw bytes", "stored", "ratio");
		o->header_done = true;
	}
	if (arr)
		json_array_append_new(arr, json_pack("{s:i, s:I, s:I, s:I, s:I, s:I}", "interval",
						     t->interval, "instructions",
						     (json_int_t)t->instructions, "records",
						     (json_int_t)t->records, "chunks", (json_int_t)t->chunks,
						     "raw_bytes", (json_int_t)t->raw_bytes, "file_bytes",
						     (json_int_t)t->file_bytes));
	else
		printf("%8u %14" PRIu64 " %14" PRIu64 " %7" PRIu64 " %12" PRIu64 " %12" PRIu64
		       " %6.1f\n", t->interval, t->instructions, t->records, t->chunks,
		       t->raw_bytes, t->file_bytes, ratio(t->raw_bytes, t->file_bytes));
	return 0;
}

static int trace_ls(const char *dir, bool json)
{
	struct ls_output o = { .arr = json ? json_array() : NULL };
	int rc = each_trace(dir, true, ls_one, &o);
	/* nothing at all when DIR holds no traces */
	if (json && (rc == 0 || json_array_size(o.arr)))
		json_dumpf(o.arr, stdout, JSON_INDENT(2)), putchar('\n');
	json_decref(o.arr);
	return rc;
}

static json_t *record_json(const struct trace_record *rec, uint32_t interval)
{
	switch (rec->kind) {
	case TRACE_INSN:
		return json_pack("{s:s, s:i, s:I, s:o, s:i, s:i}", "kind", "insn", "interval",
				 interval, "icount", (json_int_t)rec->icount, "pc", cli__json_hex(rec->insn.pc),
				 "size", rec->insn.size, "cpl", rec->insn.cpl);
	case TRACE_MEM:
		return json_pack("{s:s, s:i, s:I, s:o, s:o, s:i, s:o}", "kind",
				 rec->mem.write ? "store" : "load", "interval", interval, "icount",
				 (json_int_t)rec->icount, "vaddr", cli__json_hex(rec->mem.vaddr), "paddr",
				 cli__json_hex(rec->mem.paddr), "size", rec->mem.size, "value",
				 cli__json_hex(rec->mem.value));
	case TRACE_EVENT: {
		json_t *o = json_pack("{s:s, s:i, s:I, s:o, s:o, s:o, s:i}", "kind",
				      trace_event_kind__name(rec->event.kind), "interval", interval,
				      "icount", (json_int_t)rec->icount, "a", cli__json_hex(rec->event.a),
				      "b", cli__json_hex(rec->event.b), "c", cli__json_hex(rec->event.c),
				      "size", rec->event.size);
		if (rec->event.kind == TRACE_EV_SYSCALL) {
			json_t *args = json_array();
			for (unsigned i = 0; i < 6; i++)
				json_array_append_new(args, cli__json_hex(rec->event.args[i]));
			json_object_set_new(o, "args", args);
		}
		return o;
	}
	}
	return json_null();
}

/* The whole run, or one interval, as one stream. */
struct stream {
	struct trace_run *run;
	struct trace_reader *one;
	uint32_t interval;
};

static int stream_open(struct stream *s, const char *dir, const char *interval, char *err,
		       size_t errlen)
{
	memset(s, 0, sizeof(*s));
	if (interval) {
		char path[4200];
		if (cli__parse_index(interval, &s->interval) != 0) {
			snprintf(err, errlen, "--interval '%s' is not a number", interval);
			return -1;
		}
		trace__path(path, sizeof(path), dir, s->interval);
		s->one = trace_reader__open(path, err, errlen);
		return s->one ? 0 : -1;
	}
	uint32_t *ks;
	size_t n;
	if (list_intervals(dir, &ks, &n, err, errlen) != 0)
		return -1;
	/* the run is the consecutive intervals from the first; a gap is named
	 * when the stream reaches it */
	s->run = trace_run__open(dir, ks[0], ks[n - 1] + 1, err, errlen);
	free(ks);
	return s->run ? 0 : -1;
}

static int stream_next(struct stream *s, struct trace_record *rec, uint32_t *interval, char *err,
		       size_t errlen)
{
	if (s->one) {
		*interval = s->interval;
		return trace_reader__next(s->one, rec, err, errlen);
	}
	return trace_run__next(s->run, rec, interval, err, errlen);
}

static void stream_close(struct stream *s)
{
	trace_reader__close(s->one);
	trace_run__close(s->run);
}

enum record_format { FMT_TEXT, FMT_JSONL, FMT_CSV };

/* Which records grep keeps; all of them by default. */
struct record_filter {
	uint64_t pc_lo, pc_hi;          /* instructions with pc in [lo, hi] */
	uint64_t addr_lo, addr_hi;      /* accesses touching [lo, hi] */
	bool pc, addr;
	const char *kind;
};

static const char *record_kind_name(const struct trace_record *rec)
{
	switch (rec->kind) {
	case TRACE_INSN: return "insn";
	case TRACE_MEM: return rec->mem.write ? "store" : "load";
	case TRACE_EVENT: return trace_event_kind__name(rec->event.kind);
	}
	return "unknown";
}

static bool filter_match(const struct record_filter *f, const struct trace_record *rec)
{
	if (f->kind && strcmp(f->kind, record_kind_name(rec)))
		return false;
	if (f->pc && (rec->kind != TRACE_INSN || rec->insn.pc < f->pc_lo || rec->insn.pc > f->pc_hi))
		return false;
	if (f->addr) {
		if (rec->kind != TRACE_MEM)
			return false;
		uint64_t last = rec->mem.size - 1u;
		bool v = rec->mem.vaddr <= f->addr_hi && rec->mem.vaddr + last >= f->addr_lo;
		bool p = rec->mem.paddr <= f->addr_hi && rec->mem.paddr + last >= f->addr_lo;
		if (!v && !p)
			return false;
	}
	return true;
}

static void print_csv(FILE *out, const struct trace_record *rec, uint32_t k)
{
	fprintf(out, "%s,%u,%" PRIu64 ",", record_kind_name(rec), k, rec->icount);
	switch (rec->kind) {
	case TRACE_INSN:
		fprintf(out, "0x%" PRIx64 ",%u,%u,,,,\n", rec->insn.pc, rec->insn.size, rec->insn.cpl);
		break;
	case TRACE_MEM:
		fprintf(out, ",%u,,0x%" PRIx64 ",0x%" PRIx64 ",0x%" PRIx64 ",\n", rec->mem.size,
			rec->mem.vaddr, rec->mem.paddr, rec->mem.value);
		break;
	case TRACE_EVENT:
		fprintf(out, ",%u,,0x%" PRIx64 ",0x%" PRIx64 ",0x%" PRIx64 ",\n", rec->event.size,
			rec->event.a, rec->event.b, rec->event.c);
		break;
	}
}

/* show, grep, and export as csv or jsonl. */
static int trace_records(FILE *out, const char *dir, const char *interval, uint64_t from,
			 uint64_t count, const struct record_filter *f, enum record_format fmt)
{
	struct stream s;
	struct trace_record rec;
	uint32_t k;
	char err[1024], line[256];
	int rc = 0;

	if (stream_open(&s, dir, interval, err, sizeof(err)) != 0) {
		fprintf(stderr, "simuboost trace: %s\n", err);
		return 1;
	}
	if (s.one && from && trace_reader__seek(s.one, from, err, sizeof(err)) != 0) {
		fprintf(stderr, "simuboost trace: %s\n", err);
		stream_close(&s);
		return 1;
	}
	if (fmt == FMT_CSV)
		fprintf(out, "kind,interval,icount,pc,size,cpl,vaddr_or_a,paddr_or_b,value_or_c,\n");
	uint64_t shown = 0, read = 0;
	bool progress = out != stdout && isatty(STDERR_FILENO);
	while (shown < count && (rc = stream_next(&s, &rec, &k, err, sizeof(err))) == 1) {
		if (progress && !(++read & ((1u << 22) - 1)))
			fprintf(stderr, "\rexport: %" PRIu64 " records", read);
		if (rec.icount < from || !filter_match(f, &rec))
			continue;
		if (fmt == FMT_JSONL) {
			json_t *o = record_json(&rec, k);
			json_dumpf(o, out, JSON_COMPACT);
			fputc('\n', out);
			json_decref(o);
		} else if (fmt == FMT_CSV) {
			print_csv(out, &rec, k);
		} else {
			trace_record__format(&rec, line, sizeof(line));
			fprintf(out, "%s\n", line);
		}
		shown++;
	}
	if (progress)
		fprintf(stderr, "\rexport: %" PRIu64 " records\n", read);
	stream_close(&s);
	if (shown < count && rc < 0) {
		fprintf(stderr, "simuboost trace: %s\n", err);
		return 1;
	}
	return 0;
}

struct timeline {
	json_t *events;
	uint64_t base;                  /* instructions of the intervals before */
};

/* One interval's slice and instants. */
static int timeline_add(struct trace_reader *r, uint32_t interval, void *ctx)
{
	struct timeline *tl = ctx;
	struct trace_record rec;
	uint64_t loads = 0, stores = 0, insns = 0;
	char err[1024], name[32];
	int got;

	while ((got = trace_reader__next(r, &rec, err, sizeof(err))) == 1) {
		if (rec.kind == TRACE_INSN)
			insns++;
		else if (rec.kind == TRACE_MEM)
			rec.mem.write ? stores++ : loads++;
		else if (rec.event.kind == TRACE_EV_INTERRUPT || rec.event.kind == TRACE_EV_EXCEPTION)
			json_array_append_new(tl->events, json_pack(
				"{s:s, s:s, s:s, s:I, s:i, s:i, s:{s:o}}", "name",
				trace_event_kind__name(rec.event.kind), "ph", "i", "s", "t", "ts",
				(json_int_t)(tl->base + rec.icount), "pid", 1, "tid", 1, "args",
				"vector", cli__json_hex(rec.event.a)));
	}
	if (got < 0) {
		fprintf(stderr, "simuboost trace: %s\n", err);
		return -1;
	}
	snprintf(name, sizeof(name), "interval %u", interval);
	json_array_append_new(tl->events, json_pack(
		"{s:s, s:s, s:I, s:I, s:i, s:i, s:{s:I, s:I, s:I, s:I}}", "name", name, "ph", "X",
		"ts", (json_int_t)tl->base, "dur", (json_int_t)insns, "pid", 1, "tid", 1, "args",
		"instructions", (json_int_t)insns, "loads", (json_int_t)loads, "stores",
		(json_int_t)stores, "bytes", (json_int_t)trace_reader__info(r)->file_bytes));
	tl->base += insns;
	return 0;
}

/* The per-interval timeline for chrome://tracing and ui.perfetto.dev: one
 * complete slice per interval ("ts" and "dur" in instructions, shown as
 * microseconds), with its counts as arguments, and an instant per
 * interrupt and exception. */
static int trace_perfetto(FILE *out, const char *dir)
{
	struct timeline tl = { .events = json_array() };
	json_array_append_new(tl.events, json_pack("{s:s, s:s, s:i, s:{s:s}}", "name",
						   "process_name", "ph", "M", "pid", 1, "args", "name",
						   "simuboost run"));
	if (each_trace(dir, false, timeline_add, &tl) != 0) {
		json_decref(tl.events);
		return 1;
	}
	json_t *doc = json_pack("{s:o, s:s}", "traceEvents", tl.events, "displayTimeUnit", "ns");
	json_dumpf(doc, out, JSON_COMPACT);
	fputc('\n', out);
	json_decref(doc);
	return 0;
}

struct plot_data {
	uint32_t first, last;       /* intervals [first, last) */
	double *insns, *accesses;   /* by interval - first */
	bool progress;              /* stderr is a terminal: a progress line on it */
};

/* Ends the progress line, so that a message starts on a clean line. */
static void plot_progress_end(const struct plot_data *d)
{
	if (d->progress)
		fputs("\r\033[K", stderr);
}

/* Counts the memory accesses of one trace (traces can be GBs: the progress
 * line moves every 32M records). */
static int plot_add(struct plot_data *d, struct trace_reader *r, uint32_t interval, size_t nth,
		    size_t total)
{
	struct trace_record rec;
	uint64_t accesses = 0, records = 0;
	char err[1024];
	int got;

	while ((got = trace_reader__next(r, &rec, err, sizeof(err))) == 1) {
		accesses += rec.kind == TRACE_MEM;
		if (d->progress && !(++records & ((1u << 25) - 1)))
			fprintf(stderr, "\rtrace plot: interval %u (%zu of %zu), %" PRIu64
				"M records\033[K", interval, nth + 1, total, records / 1000000);
	}
	if (got < 0) {
		plot_progress_end(d);
		fprintf(stderr, "simuboost trace plot: %s\n", err);
		return -1;
	}
	d->insns[interval - d->first] = (double)trace_reader__info(r)->instructions;
	d->accesses[interval - d->first] = (double)accesses;
	return 0;
}

/* The replay's results that replay --trace leaves in DIR/replay.json: an
 * array of intervals ("interval", "instructions", "wall_s", "verdict"), or
 * an object holding it as "intervals". NULL, having said why, if there are
 * none; *doc is to be freed either way. */
static json_t *plot_replay_results(const char *dir, json_t **doc)
{
	char path[4200];
	json_error_t jerr;

	snprintf(path, sizeof(path), "%s/replay.json", dir);
	*doc = NULL;
	if (access(path, F_OK) != 0) {
		fprintf(stderr, "simuboost trace plot: no %s: no replay time panel\n", path);
		return NULL;
	}
	*doc = json_load_file(path, 0, &jerr);
	if (!*doc) {
		fprintf(stderr, "simuboost trace plot: %s:%d: %s: no replay time panel\n", path,
			jerr.line, jerr.text);
		return NULL;
	}
	json_t *results = json_is_array(*doc) ? *doc : json_object_get(*doc, "intervals");
	if (!json_is_array(results)) {
		fprintf(stderr, "simuboost trace plot: %s: not a list of intervals: no replay "
			"time panel\n", path);
		return NULL;
	}
	return results;
}

/* An interval number of replay.json, or -1. */
static int64_t plot_interval_of(json_t *result)
{
	json_t *k = json_object_get(result, "interval");
	if (!json_is_integer(k) || json_integer_value(k) < 0 ||
	    json_integer_value(k) >= (json_int_t)UINT32_MAX)
		return -1;
	return json_integer_value(k);
}

/* The pages each interval K dirtied: those checkpoint K+1 holds. */
static int plot_dirty(const struct plot_data *d, const char *rec_dir, json_t *doc,
		      double *dirty)
{
	char err[1024];
	struct ckpt_store *st = ckpt_store__open(rec_dir, err, sizeof(err));

	if (!st) {
		fprintf(stderr, "simuboost trace plot: --rec: %s\n", err);
		return -1;
	}
	/* the recording the replay says it replayed, if it is another one */
	const char *replayed = json_string_value(json_object_get(doc, "recording"));
	char *a = replayed ? realpath(replayed, NULL) : NULL, *b = realpath(rec_dir, NULL);
	if (a && b && strcmp(a, b))
		fprintf(stderr, "simuboost trace plot: warning: the traces are of %s (replay.json), "
			"not of --rec %s\n", replayed, rec_dir);
	free(a);
	free(b);
	uint32_t count = ckpt_store__count(st);
	int rc = 0;
	for (uint32_t k = d->first; k < d->last; k++) {
		struct ckpt_manifest *m;
		if (k + 1 >= count) {
			fprintf(stderr, "simuboost trace plot: --rec %s has %u checkpoints: none ends "
				"interval %u (is it the recording of these traces?)\n", rec_dir,
				count, k);
			rc = -1;
			break;
		}
		if (ckpt_manifest__load(st, k + 1, &m, err, sizeof(err)) != 0) {
			fprintf(stderr, "simuboost trace plot: --rec: %s\n", err);
			rc = -1;
			break;
		}
		dirty[k - d->first] = (double)m->page_count;
		ckpt_manifest__free(m);
	}
	ckpt_store__close(st);
	return rc;
}

/* plot -o FILE: the intervals of the traces in dir as a chart, with the
 * replay's time per interval (replay.json) and the pages each dirtied
 * (--rec). */
static int trace_plot(const char *dir, const char *output, const char *rec_dir)
{
	uint32_t *ks;
	size_t n;
	char err[1024], path[4200], title[4300];
	int rc = 1;

	if (!output) {
		fprintf(stderr, "simuboost trace plot: give -o FILE.png or -o FILE.svg\n");
		return EXIT_USAGE;
	}
	if (chart__check_path(output, err, sizeof(err)) != 0) { /* before reading GBs */
		fprintf(stderr, "simuboost trace plot: %s\n", err);
		return EXIT_USAGE;
	}
	if (list_intervals(dir, &ks, &n, err, sizeof(err)) != 0) {
		fprintf(stderr, "simuboost trace plot: %s\n", err);
		return 1;
	}
	struct plot_data d = { .first = ks[0], .last = ks[n - 1] + 1,
			       .progress = isatty(STDERR_FILENO) };
	/* the intervals the replay ran but did not trace (diverged) too */
	json_t *doc, *results = plot_replay_results(dir, &doc), *iv;
	size_t i;
	json_array_foreach(results, i, iv) {
		int64_t k = plot_interval_of(iv);
		if (k >= 0 && k < d.first)
			d.first = (uint32_t)k;
		if (k >= 0 && k >= d.last)
			d.last = (uint32_t)k + 1;
	}
	size_t span = d.last - d.first;
	double *v = malloc(4 * span * sizeof(*v));
	unsigned char *diverged = calloc(span, 1);
	if (!v || !diverged) {
		fprintf(stderr, "simuboost trace plot: %zu intervals: out of memory\n", span);
		goto out;
	}
	for (i = 0; i < 4 * span; i++)
		v[i] = NAN;
	d.insns = v;
	d.accesses = v + span;
	double *wall = v + 2 * span, *dirty = v + 3 * span;
	struct chart_panel panels[4] = { { "instructions", d.insns, NULL },
					 { "memory accesses (loads and stores)", d.accesses, NULL } };
	unsigned np = 2;
	for (i = 0; i < n; i++) {
		trace__path(path, sizeof(path), dir, ks[i]);
		if (d.progress)
			fprintf(stderr, "\rtrace plot: interval %u (%zu of %zu)\033[K", ks[i], i + 1, n);
		struct trace_reader *r = trace_reader__open(path, err, sizeof(err));
		if (!r) {
			plot_progress_end(&d);
			fprintf(stderr, "simuboost trace plot: %s\n", err);
			goto out;
		}
		int got = plot_add(&d, r, ks[i], i, n);
		trace_reader__close(r);
		if (got != 0)
			goto out;
	}
	plot_progress_end(&d);
	if (results) {
		bool any = false;
		json_array_foreach(results, i, iv) {
			int64_t k = plot_interval_of(iv);
			json_t *w = json_object_get(iv, "wall_s");
			const char *verdict = json_string_value(json_object_get(iv, "verdict"));
			if (k < 0 || !json_is_number(w))
				continue;
			wall[k - d.first] = json_number_value(w);
			diverged[k - d.first] = verdict && strcmp(verdict, "exact");
			any |= diverged[k - d.first];
		}
		panels[np++] = (struct chart_panel){
			any ? "replay time (s); red: not exact" : "replay time (s)", wall, diverged };
	}
	if (rec_dir) {
		if (plot_dirty(&d, rec_dir, doc, dirty) != 0)
			goto out;
		panels[np++] = (struct chart_panel){ "pages dirtied", dirty, NULL };
	}
	snprintf(title, sizeof(title), "simuboost: the intervals of %s", dir);
	if (chart__write(output, title, "interval", d.first, span, panels, np, err,
			 sizeof(err)) != 0) {
		fprintf(stderr, "simuboost trace plot: %s\n", err);
		goto out;
	}
	rc = 0;
out:
	json_decref(doc);
	free(diverged);
	free(v);
	free(ks);
	return rc;
}

/* export -o FILE: written as FILE.tmp, renamed when complete. */
static int trace_export(const char *dir, const char *interval, const char *format,
			const char *output)
{
	static const struct record_filter all;
	char tmp[4200];
	FILE *out = stdout;
	int rc;

	if (!format || (strcmp(format, "csv") && strcmp(format, "jsonl") &&
			strcmp(format, "perfetto"))) {
		fprintf(stderr, "simuboost trace export: --format csv, jsonl or perfetto\n");
		return EXIT_USAGE;
	}
	if (output) {
		snprintf(tmp, sizeof(tmp), "%s.tmp", output);
		out = fopen(tmp, "w");
		if (!out) {
			fprintf(stderr, "simuboost trace export: %s: %m\n", tmp);
			return 1;
		}
	}
	if (!strcmp(format, "perfetto"))
		rc = trace_perfetto(out, dir);
	else
		rc = trace_records(out, dir, interval, 0, UINT64_MAX, &all,
				   !strcmp(format, "csv") ? FMT_CSV : FMT_JSONL);
	if (output) {
		if (fflush(out) != 0 || ferror(out) || fsync(fileno(out)) != 0) {
			fprintf(stderr, "simuboost trace export: %s: %m\n", tmp);
			rc = 1;
		}
		fclose(out);
		if (!rc && rename(tmp, output) != 0) {
			fprintf(stderr, "simuboost trace export: %s: %m\n", output);
			rc = 1;
		}
		if (rc)
			unlink(tmp);
	}
	return rc;
}

/* A or A-B, numbers in any base strtoull takes. */
static bool parse_range(const char *arg, uint64_t *lo, uint64_t *hi)
{
	char *end;
	*lo = strtoull(arg, &end, 0);
	if (end == arg)
		return false;
	*hi = *lo;
	if (*end == '-') {
		const char *b = end + 1;
		*hi = strtoull(b, &end, 0);
		if (end == b)
			return false;
	}
	return !*end && *lo <= *hi;
}

/* Counts over the traces of a directory, one trace at a time: a gap (an
 * interval whose replay was not exact has no trace) leaves its records
 * out, and is named. */
struct trace_counts {
	uint64_t insns, by_cpl[4], loads, stores, events[TRACE_EV__COUNT];
	uint64_t raw, stored;
	uint32_t traces, next;          /* the interval after the last counted */
	json_t *missing;                /* intervals in between without a trace */
};

static int count_trace(struct trace_reader *r, uint32_t interval, void *ctx)
{
	struct trace_counts *c = ctx;
	struct trace_record rec;
	char err[1024];
	int rc;

	while ((rc = trace_reader__next(r, &rec, err, sizeof(err))) == 1) {
		switch (rec.kind) {
		case TRACE_INSN: c->insns++; c->by_cpl[rec.insn.cpl & 3]++; break;
		case TRACE_MEM: rec.mem.write ? c->stores++ : c->loads++; break;
		case TRACE_EVENT: c->events[rec.event.kind]++; break;
		}
	}
	if (rc < 0) {
		fprintf(stderr, "simuboost trace: %s\n", err);
		return -1;
	}
	for (uint32_t k = c->traces ? c->next : interval; k < interval; k++)
		json_array_append_new(c->missing, json_integer(k));
	c->next = interval + 1;
	c->traces++;
	c->raw += trace_reader__info(r)->raw_bytes;
	c->stored += trace_reader__info(r)->file_bytes;
	return 0;
}

static int trace_stats(const char *dir, bool json)
{
	struct trace_counts c = { .missing = json_array() };

	if (each_trace(dir, false, count_trace, &c) != 0) {
		json_decref(c.missing);
		return 1;
	}
	size_t nmissing = json_array_size(c.missing);
	if (json) {
		json_t *ev = json_object();
		for (int e = TRACE_EV_INTERRUPT; e < TRACE_EV__COUNT; e++)
			json_object_set_new(ev, trace_event_kind__name((enum trace_event_kind)e),
					    json_integer((json_int_t)c.events[e]));
		json_t *o = json_pack("{s:I, s:o, s:I, s:[I,I,I,I], s:I, s:I, s:o, s:I, s:I, s:f}",
				      "traces", (json_int_t)c.traces, "missing", c.missing,
				      "instructions", (json_int_t)c.insns, "instructions_by_cpl",
				      (json_int_t)c.by_cpl[0], (json_int_t)c.by_cpl[1],
				      (json_int_t)c.by_cpl[2], (json_int_t)c.by_cpl[3], "loads",
				      (json_int_t)c.loads, "stores", (json_int_t)c.stores, "events", ev,
				      "raw_bytes", (json_int_t)c.raw, "file_bytes", (json_int_t)c.stored,
				      "compression_ratio", ratio(c.raw, c.stored));
		json_dumpf(o, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(o);
		return 0;
	}
	printf("traces        %" PRIu32, c.traces);
	for (size_t i = 0; i < nmissing; i++)
		printf("%s%" JSON_INTEGER_FORMAT,
		       i ? ", " : nmissing > 1 ? " (none for intervals " : " (none for interval ",
		       json_integer_value(json_array_get(c.missing, i)));
	printf("%s\n", nmissing ? ")" : "");
	json_decref(c.missing);
	printf("instructions  %" PRIu64 " (kernel %" PRIu64 ", user %" PRIu64 ")\n", c.insns,
	       c.by_cpl[0], c.by_cpl[3]);
	printf("loads         %" PRIu64 "\nstores        %" PRIu64 "\n", c.loads, c.stores);
	for (int e = TRACE_EV_INTERRUPT; e < TRACE_EV__COUNT; e++)
		if (c.events[e])
			printf("%-13s %" PRIu64 "\n", trace_event_kind__name((enum trace_event_kind)e),
			       c.events[e]);
	printf("stored        %" PRIu64 " bytes for %" PRIu64 " raw (%.1fx)\n", c.stored, c.raw,
	       ratio(c.raw, c.stored));
	return 0;
}

int builtin_trace(int argc, char **argv)
{
	enum { OPT_FROM = 256, OPT_PC, OPT_ADDR, OPT_KIND, OPT_REC };
	static const struct option options[] = {
		{ "interval", required_argument, NULL, 'i' },
		{ "from", required_argument, NULL, OPT_FROM },
		{ "count", required_argument, NULL, 'n' },
		{ "pc", required_argument, NULL, OPT_PC },
		{ "addr", required_argument, NULL, OPT_ADDR },
		{ "kind", required_argument, NULL, OPT_KIND },
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "rec", required_argument, NULL, OPT_REC },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const cmds[] = { "ls", "show", "grep", "stats", "export", "plot" };
	const char *interval = NULL, *format = NULL, *output = NULL, *rec_dir = NULL;
	struct record_filter filter = { 0 };
	uint64_t from = 0, count = UINT64_MAX;
	bool json = false, known = false;
	int c;

	for (size_t i = 0; argc >= 2 && i < sizeof(cmds) / sizeof(cmds[0]); i++)
		known |= !strcmp(argv[1], cmds[i]);
	if (!known) {
		fputs(builtin_trace_usage, stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	optind = 1;
	while ((c = getopt_long(argc - 1, argv + 1, "i:n:f:o:j", options, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'i': interval = optarg; break;
		case OPT_FROM:
			from = strtoull(optarg, &end, 0);
			if (*end || end == optarg)
				goto bad_number;
			break;
		case 'n':
			count = strtoull(optarg, &end, 0);
			if (*end || end == optarg)
				goto bad_number;
			break;
		case OPT_PC:
			filter.pc = parse_range(optarg, &filter.pc_lo, &filter.pc_hi);
			if (!filter.pc)
				goto bad_number;
			break;
		case OPT_ADDR:
			filter.addr = parse_range(optarg, &filter.addr_lo, &filter.addr_hi);
			if (!filter.addr)
				goto bad_number;
			break;
		case OPT_KIND: filter.kind = optarg; break;
		case 'f': format = optarg; break;
		case 'o': output = optarg; break;
		case 'j': json = true; break;
		case OPT_REC: rec_dir = optarg; break;
		default:
			fputs(builtin_trace_usage, stderr);
			return EXIT_USAGE;
		}
		continue;
bad_number:
		fprintf(stderr, "simuboost trace: '%s' is not a number or range\n", optarg);
		return EXIT_USAGE;
	}
	if (optind != argc - 2) {
		fprintf(stderr, "simuboost trace %s: expected one trace directory\n", cmd);
		return EXIT_USAGE;
	}
	bool records = !strcmp(cmd, "show") || !strcmp(cmd, "grep");
	bool filtered = filter.pc || filter.addr || filter.kind;
	if ((!records && (from || count != UINT64_MAX || filtered)) ||
	    (interval && !records && strcmp(cmd, "export")) ||
	    (format && strcmp(cmd, "export")) ||
	    (output && strcmp(cmd, "export") && strcmp(cmd, "plot")) ||
	    (rec_dir && strcmp(cmd, "plot")) || (!strcmp(cmd, "show") && filtered)) {
		fprintf(stderr, "simuboost trace %s: option not for this command (see --help)\n", cmd);
		return EXIT_USAGE;
	}
	if (!strcmp(cmd, "grep") && !filtered) {
		fprintf(stderr, "simuboost trace grep: give --pc, --addr or --kind\n");
		return EXIT_USAGE;
	}
	const char *dir = argv[1 + optind];
	if (!strcmp(cmd, "ls"))
		return trace_ls(dir, json);
	if (records)
		return trace_records(stdout, dir, interval, from, count, &filter,
				     json ? FMT_JSONL : FMT_TEXT);
	if (!strcmp(cmd, "export"))
		return trace_export(dir, interval, format, output);
	if (!strcmp(cmd, "plot"))
		return trace_plot(dir, output, rec_dir);
	return trace_stats(dir, json);
}
