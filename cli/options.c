/* Options that several commands share: --set, --timeout and the console
 * move that --json needs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <inttypes.h>
#include <jansson.h>

#include "builtin.h"

int cli__collect_set(struct cli_sets *s, const char *arg, const char *cmd)
{
	if (s->n == CLI_MAX_SETS) {
		fprintf(stderr, "simuboost %s: too many --set options\n", cmd);
		return -1;
	}
	s->items[s->n++] = arg;
	return 0;
}

int cli__parse_timeout(const char *arg, double *seconds, const char *cmd)
{
	char *end;
	*seconds = strtod(arg, &end);
	if (*end || !*arg || *seconds <= 0) {
		fprintf(stderr, "simuboost %s: --timeout '%s' is not a positive number of seconds\n",
			cmd, arg);
		return -1;
	}
	return 0;
}

int cli__add_spec(const char **specs, unsigned *n, const char *spec, const char *cmd)
{
	if (*n == CLI_MAX_SPECS) {
		fprintf(stderr, "simuboost %s: at most %d analyses\n", cmd, CLI_MAX_SPECS);
		return -1;
	}
	specs[(*n)++] = spec;
	return 0;
}

int cli__apply_config(struct vnode_config *cfg, const struct cli_sets *s, bool json, char *err,
		      size_t errlen)
{
	for (int i = 0; i < s->n; i++)
		if (vnode_config__set(cfg, s->items[i], err, errlen) != 0)
			return -1;
	/* --json owns stdout; the guest's console goes to stderr instead. */
	if (json && !strcmp(cfg->console_out, "stdout")) {
		char *dest = strdup("/dev/stderr");
		if (!dest) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		free(cfg->console_out);
		cfg->console_out = dest;
	}
	return 0;
}

unsigned cli__cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

int cli__parse_index(const char *s, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int cli__exit_status(const struct vnode_stats *stats, const char *cmd)
{
	if (stats->outcome == VNODE_GUEST_FAULT || stats->outcome == VNODE_GUEST_HALTED)
		fprintf(stderr, "simuboost %s: %s: %s\n", cmd, vnode_outcome__name(stats->outcome),
			stats->fault);
	switch (stats->outcome) {
	case VNODE_GUEST_EXIT: return stats->guest_status & 0xff;
	case VNODE_TIMEOUT: return EXIT_TIMEOUT;
	case VNODE_STOPPED: return EXIT_STOPPED;
	default: return EXIT_GUEST_FAULT;
	}
}

json_t *cli__json_hex(uint64_t v)
{
	return json_sprintf("0x%" PRIx64, v);
}

static const char *field(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

void cli__print_results(json_t *results, FILE *out)
{
	size_t i;
	json_t *r;
	bool nodes = false; /* simulate's: which node ran each */
	json_array_foreach(results, i, r)
		nodes |= json_object_get(r, "node") != NULL;
	fprintf(out, "%8s  %-9s %14s %8s %7s  %s%s\n", "interval", "verdict", "instructions",
		"events", "wall s", nodes ? " node  " : "", "first divergence");
	json_array_foreach(results, i, r) {
		json_t *div = json_object_get(r, "divergence");
		fprintf(out, "%8lld  %-9s %14lld %8lld %7.2f  ",
			(long long)json_integer_value(json_object_get(r, "interval")),
			field(r, "verdict"),
			(long long)json_integer_value(json_object_get(r, "instructions")),
			(long long)json_integer_value(json_object_get(r, "events")),
			json_real_value(json_object_get(r, "wall_s")));
		if (nodes)
			fprintf(out, "%5lld  ", (long long)json_integer_value(json_object_get(r, "node")));
		if (div)
			fprintf(out, "%s at event %lld, rip %s, instruction %lld: %s", field(div, "kind"),
				(long long)json_integer_value(json_object_get(div, "event")),
				field(div, "rip"),
				(long long)json_integer_value(json_object_get(div, "at_instruction")),
				field(div, "detail"));
		else
			fputs(field(r, "detail"), out);
		fputc('\n', out);
	}
}
