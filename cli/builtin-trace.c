/* simuboost trace ls|show|stats: the traces `replay --trace DIR` wrote. */
#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "trace.h"

const char builtin_trace_usage[] =
	"usage: simuboost trace ls [--json] <DIR>\n"
	"       simuboost trace show [--interval K] [--from N] [--count M] [--json] <DIR>\n"
	"       simuboost trace stats [--json] <DIR>\n"
	"\n"
	"Reads the per-interval traces that `simuboost replay --trace DIR` wrote\n"
	"(DIR/NNNNNN.trace). Concatenated in interval order they are the whole run;\n"
	"instruction counts (icount) are from the start of the first interval shown.\n"
	"\n"
	"  ls      one line per trace: interval, instructions, records, chunks, raw\n"
	"          and stored bytes, compression ratio\n"
	"  show    records as text, one per line: an instruction (pc, size,\n"
	"          privilege level), then its memory accesses and events\n"
	"  stats   record counts by kind, loads and stores, instructions per\n"
	"          privilege level, event counts by kind, compression\n"
	"\n"
	"  -i, --interval K   only interval K (show; icounts from its start)\n"
	"      --from N       start at instruction N (show)\n"
	"  -n, --count M      at most M records (show)\n"
	"  -j, --json         JSON (ls, stats) or JSON lines (show; addresses and\n"
	"                     values as \"0x...\" strings)\n";

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

static int trace_ls(const char *dir, bool json)
{
	uint32_t *ks;
	size_t n;
	char err[1024], path[4200];
	int rc = 0;

	if (list_intervals(dir, &ks, &n, err, sizeof(err)) != 0) {
		fprintf(stderr, "simuboost trace: %s\n", err);
		return 1;
	}
	json_t *arr = json_array();
	if (!json)
		printf("%8s %14s %14s %7s %12s %12s %6s\n", "interval", "instructions", "records",
		       "chunks", "raw bytes", "stored", "ratio");
	for (size_t i = 0; i < n; i++) {
		trace__path(path, sizeof(path), dir, ks[i]);
		struct trace_reader *r = trace_reader__open(path, err, sizeof(err));
		if (!r) {
			fprintf(stderr, "simuboost trace: %s\n", err);
			rc = 1;
			continue;
		}
		const struct trace_info *t = trace_reader__info(r);
		if (json)
			json_array_append_new(arr, json_pack("{s:i, s:I, s:I, s:I, s:I, s:I}", "interval",
							     t->interval, "instructions",
							     (json_int_t)t->instructions, "records",
							     (json_int_t)t->records, "chunks",
							     (json_int_t)t->chunks, "raw_bytes",
							     (json_int_t)t->raw_bytes, "file_bytes",
							     (json_int_t)t->file_bytes));
		else
			printf("%8u %14" PRIu64 " %14" PRIu64 " %7" PRIu64 " %12" PRIu64 " %12" PRIu64
			       " %6.1f\n", t->interval, t->instructions, t->records, t->chunks,
			       t->raw_bytes, t->file_bytes, ratio(t->raw_bytes, t->file_bytes));
		trace_reader__close(r);
	}
	if (json)
		json_dumpf(arr, stdout, JSON_INDENT(2)), putchar('\n');
	json_decref(arr);
	free(ks);
	return rc;
}

/* 64-bit addresses and values as hex strings: JSON numbers above 2^53
 * (and jansson's above 2^63) do not survive a round trip. */
static json_t *hex(uint64_t v)
{
	return json_sprintf("0x%" PRIx64, v);
}

static json_t *record_json(const struct trace_record *rec, uint32_t interval)
{
	switch (rec->kind) {
	case TRACE_INSN:
		return json_pack("{s:s, s:i, s:I, s:o, s:i, s:i}", "kind", "insn", "interval",
				 interval, "icount", (json_int_t)rec->icount, "pc", hex(rec->insn.pc),
				 "size", rec->insn.size, "cpl", rec->insn.cpl);
	case TRACE_MEM:
		return json_pack("{s:s, s:i, s:I, s:o, s:o, s:i, s:o}", "kind",
				 rec->mem.write ? "store" : "load", "interval", interval, "icount",
				 (json_int_t)rec->icount, "vaddr", hex(rec->mem.vaddr), "paddr",
				 hex(rec->mem.paddr), "size", rec->mem.size, "value",
				 hex(rec->mem.value));
	case TRACE_EVENT:
		return json_pack("{s:s, s:i, s:I, s:o, s:o, s:o, s:i}", "kind",
				 trace_event_kind__name(rec->event.kind), "interval", interval, "icount",
				 (json_int_t)rec->icount, "a", hex(rec->event.a), "b", hex(rec->event.b),
				 "c", hex(rec->event.c), "size", rec->event.size);
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

static int trace_show(const char *dir, const char *interval, uint64_t from, uint64_t count,
		      bool json)
{
	struct stream s;
	struct trace_record rec;
	uint32_t k;
	char err[1024], line[256];
	int rc;

	if (stream_open(&s, dir, interval, err, sizeof(err)) != 0) {
		fprintf(stderr, "simuboost trace: %s\n", err);
		return 1;
	}
	if (s.one && from && trace_reader__seek(s.one, from, err, sizeof(err)) != 0) {
		fprintf(stderr, "simuboost trace: %s\n", err);
		stream_close(&s);
		return 1;
	}
	uint64_t shown = 0;
	while (shown < count && (rc = stream_next(&s, &rec, &k, err, sizeof(err))) == 1) {
		if (rec.icount < from)
			continue;
		if (json) {
			json_t *o = record_json(&rec, k);
			json_dumpf(o, stdout, JSON_COMPACT);
			putchar('\n');
			json_decref(o);
		} else {
			trace_record__format(&rec, line, sizeof(line));
			printf("%s\n", line);
		}
		shown++;
	}
	stream_close(&s);
	if (shown < count && rc < 0) {
		fprintf(stderr, "simuboost trace: %s\n", err);
		return 1;
	}
	return 0;
}

static int trace_stats(const char *dir, bool json)
{
	struct stream s;
	struct trace_record rec;
	uint32_t k;
	char err[1024], path[4200];
	uint64_t insns = 0, by_cpl[4] = { 0 }, loads = 0, stores = 0, events[TRACE_EV__COUNT] = { 0 };
	uint64_t raw = 0, stored = 0;
	int rc;

	if (stream_open(&s, dir, NULL, err, sizeof(err)) != 0) {
		fprintf(stderr, "simuboost trace: %s\n", err);
		return 1;
	}
	while ((rc = stream_next(&s, &rec, &k, err, sizeof(err))) == 1) {
		switch (rec.kind) {
		case TRACE_INSN: insns++; by_cpl[rec.insn.cpl & 3]++; break;
		case TRACE_MEM: rec.mem.write ? stores++ : loads++; break;
		case TRACE_EVENT: events[rec.event.kind]++; break;
		}
	}
	stream_close(&s);
	if (rc < 0) {
		fprintf(stderr, "simuboost trace: %s\n", err);
		return 1;
	}
	uint32_t *ks;
	size_t n;
	if (list_intervals(dir, &ks, &n, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < n; i++) {
			trace__path(path, sizeof(path), dir, ks[i]);
			struct trace_reader *r = trace_reader__open(path, err, sizeof(err));
			if (r) {
				raw += trace_reader__info(r)->raw_bytes;
				stored += trace_reader__info(r)->file_bytes;
				trace_reader__close(r);
			}
		}
		free(ks);
	}
	if (json) {
		json_t *ev = json_object();
		for (int e = TRACE_EV_INTERRUPT; e < TRACE_EV__COUNT; e++)
			json_object_set_new(ev, trace_event_kind__name((enum trace_event_kind)e),
					    json_integer((json_int_t)events[e]));
		json_t *o = json_pack("{s:I, s:[I,I,I,I], s:I, s:I, s:o, s:I, s:I, s:f}",
				      "instructions", (json_int_t)insns, "instructions_by_cpl",
				      (json_int_t)by_cpl[0], (json_int_t)by_cpl[1],
				      (json_int_t)by_cpl[2], (json_int_t)by_cpl[3], "loads",
				      (json_int_t)loads, "stores", (json_int_t)stores, "events", ev,
				      "raw_bytes", (json_int_t)raw, "file_bytes", (json_int_t)stored,
				      "compression_ratio", ratio(raw, stored));
		json_dumpf(o, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(o);
		return 0;
	}
	printf("instructions  %" PRIu64 " (kernel %" PRIu64 ", user %" PRIu64 ")\n", insns,
	       by_cpl[0], by_cpl[3]);
	printf("loads         %" PRIu64 "\nstores        %" PRIu64 "\n", loads, stores);
	for (int e = TRACE_EV_INTERRUPT; e < TRACE_EV__COUNT; e++)
		if (events[e])
			printf("%-13s %" PRIu64 "\n", trace_event_kind__name((enum trace_event_kind)e),
			       events[e]);
	printf("stored        %" PRIu64 " bytes for %" PRIu64 " raw (%.1fx)\n", stored, raw,
	       ratio(raw, stored));
	return 0;
}

int builtin_trace(int argc, char **argv)
{
	enum { OPT_FROM = 256 };
	static const struct option options[] = {
		{ "interval", required_argument, NULL, 'i' },
		{ "from", required_argument, NULL, OPT_FROM },
		{ "count", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *interval = NULL;
	uint64_t from = 0, count = UINT64_MAX;
	bool json = false;
	int c;

	if (argc < 2 || (strcmp(argv[1], "ls") && strcmp(argv[1], "show") &&
			 strcmp(argv[1], "stats"))) {
		fputs(builtin_trace_usage, stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	optind = 1;
	while ((c = getopt_long(argc - 1, argv + 1, "i:n:j", options, NULL)) != -1) {
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
		case 'j': json = true; break;
		default:
			fputs(builtin_trace_usage, stderr);
			return EXIT_USAGE;
		}
		continue;
bad_number:
		fprintf(stderr, "simuboost trace: '%s' is not a number\n", optarg);
		return EXIT_USAGE;
	}
	if (optind != argc - 2) {
		fprintf(stderr, "simuboost trace %s: expected one trace directory\n", cmd);
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "show") && (interval || from || count != UINT64_MAX)) {
		fprintf(stderr, "simuboost trace %s: --interval, --from and --count go with show\n",
			cmd);
		return EXIT_USAGE;
	}
	const char *dir = argv[1 + optind];
	if (!strcmp(cmd, "ls"))
		return trace_ls(dir, json);
	if (!strcmp(cmd, "show"))
		return trace_show(dir, interval, from, count, json);
	return trace_stats(dir, json);
}
