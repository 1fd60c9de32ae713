/* simuboost log: the nondeterminism log of an interval, readable. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "checkpoint.h"

const char builtin_log_usage[] =
	"usage: simuboost log show <REC> --interval K [--kind KIND] [--json]\n"
	"\n"
	"Prints the events of interval K (from checkpoint K to K+1) in order: port\n"
	"and MMIO accesses with their values, interrupts with their landmarks\n"
	"(synchronous-event count, RIP, register hash), console input, and the stop\n"
	"landmark of checkpoint K+1.\n"
	"\n"
	"  -i, --interval K   the interval (required)\n"
	"      --kind KIND    only events of one kind (pio-read, irq, stop, ...)\n"
	"  -j, --json         one JSON object per event (JSON lines); landmarks add\n"
	"                     their GPRs and CR3; 64-bit values are \"0x...\" strings\n";

static json_t *event_json(size_t i, const struct ckpt_event *ev)
{
	json_t *o = json_pack("{s:I, s:s, s:I, s:I, s:o, s:o}", "index", (json_int_t)i, "kind",
			      ckpt_event_kind__name(ev->kind), "guest_time_ns",
			      (json_int_t)ev->guest_time_ns, "sync_count",
			      (json_int_t)ev->at.sync_count, "rip", cli__json_hex(ev->at.rip),
			      "reg_hash", cli__json_hex(ev->at.reg_hash));
	switch (ev->kind) {
	case CKPT_EV_PIO_READ: case CKPT_EV_PIO_WRITE:
	case CKPT_EV_MMIO_READ: case CKPT_EV_MMIO_WRITE:
		json_object_set_new(o, "addr", cli__json_hex(ev->addr));
		json_object_set_new(o, "size", json_integer(ev->size));
		json_object_set_new(o, "value", cli__json_hex(ev->value));
		break;
	case CKPT_EV_IRQ:
		json_object_set_new(o, "vector", json_integer((json_int_t)ev->value));
		break;
	case CKPT_EV_CONSOLE_IN: case CKPT_EV_DMA:
		json_object_set_new(o, "addr", cli__json_hex(ev->addr));
		json_object_set_new(o, "bytes", json_integer(ev->size));
		break;
	default:
		break;
	}
	if (ev->at.flags & CKPT_LM_HALTED)
		json_object_set_new(o, "halted", json_true());
	if (ckpt_event_kind__at_landmark(ev->kind)) {
		json_t *gpr = json_array();
		for (int r = 0; r < CKPT_GPR__COUNT; r++)
			json_array_append_new(gpr, cli__json_hex(ev->at.gpr[r]));
		json_object_set_new(o, "gpr", gpr);
		json_object_set_new(o, "cr3", cli__json_hex(ev->at.cr3));
	}
	return o;
}

int builtin_log(int argc, char **argv)
{
	enum { OPT_KIND = 256 };
	static const struct option options[] = {
		{ "interval", required_argument, NULL, 'i' },
		{ "kind", required_argument, NULL, OPT_KIND },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	if (argc < 2 || strcmp(argv[1], "show")) {
		fputs(builtin_log_usage, stderr);
		return EXIT_USAGE;
	}
	const char *interval = NULL, *kind = NULL;
	bool json = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc - 1, argv + 1, "i:j", options, NULL)) != -1) {
		switch (c) {
		case 'i': interval = optarg; break;
		case OPT_KIND: kind = optarg; break;
		case 'j': json = true; break;
		default:
			fputs(builtin_log_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 2 || !interval) {
		fprintf(stderr, "simuboost log: expected a recording and --interval K\n");
		return EXIT_USAGE;
	}
	uint32_t k;
	if (cli__parse_index(interval, &k) != 0) {
		fprintf(stderr, "simuboost log: --interval '%s' is not a number\n", interval);
		return EXIT_USAGE;
	}
	if (kind) {
		bool known = false;
		for (int i = 1; i < CKPT_EV__COUNT; i++)
			known |= !strcmp(kind, ckpt_event_kind__name((enum ckpt_event_kind)i));
		if (!known) {
			fprintf(stderr, "simuboost log: --kind '%s': no such event kind\n", kind);
			return EXIT_USAGE;
		}
	}
	const char *dir = argv[1 + optind];
	char err[1024];
	struct ckpt_store *st = ckpt_store__open(dir, err, sizeof(err));
	struct ckpt_log *log = NULL;
	if (st && (uint64_t)k + 1 >= ckpt_store__count(st)) {
		snprintf(err, sizeof(err), "%s: no interval %u (the recording has %u)", dir, k,
			 ckpt_store__count(st) ? ckpt_store__count(st) - 1 : 0);
	} else if (st) {
		ckpt_log__load(st, k, &log, err, sizeof(err));
	}
	if (!log) {
		fprintf(stderr, "simuboost log: %s\n", err);
		ckpt_store__close(st);
		return 1;
	}
	size_t n = ckpt_log__count(log);
	if (!json)
		printf("interval %u of %s: %zu events\n", k, dir, n);
	for (size_t i = 0; i < n; i++) {
		const struct ckpt_event *ev = ckpt_log__event(log, i);
		if (kind && strcmp(kind, ckpt_event_kind__name(ev->kind)))
			continue;
		if (json) {
			json_t *o = event_json(i, ev);
			char *text = json_dumps(o, JSON_COMPACT);
			if (text)
				printf("%s\n", text);
			free(text);
			json_decref(o);
		} else {
			char line[512];
			ckpt_event__format(ev, line, sizeof(line));
			printf("%s\n", line);
		}
	}
	ckpt_log__free(log);
	ckpt_store__close(st);
	return 0;
}
