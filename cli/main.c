/* simuboost: git-style front door. Each command lives in builtin-<name>.c. */
#include <stdio.h>
#include <string.h>

#include "builtin.h"
#include "simuboost-version.h"
#include "vnode.h"

static const struct builtin builtins[] = {
	{ "run", builtin_run, "boot a guest under the vnode (KVM) and print a summary",
	  builtin_run_usage },
	{ "record", builtin_record, "run a guest under KVM and record checkpoints and inputs",
	  builtin_record_usage },
	{ "ckpt", builtin_ckpt, "list, show, verify, materialize, export and import checkpoints",
	  builtin_ckpt_usage },
	{ "log", builtin_log, "show the nondeterminism log of an interval", builtin_log_usage },
	{ "replay", builtin_replay, "replay intervals in QEMU TCG and validate them", builtin_replay_usage },
	{ "analyze", builtin_analyze, "run analysis plugins over the traces of a recording",
	  builtin_analyze_usage },
	{ "simulate", builtin_simulate, "simulate every interval on simulation nodes",
	  builtin_simulate_usage },
	{ "simnode", builtin_simnode, "a simulation node that joins a coordinator",
	  builtin_simnode_usage },
	{ "trace", builtin_trace, "list, show and count the traces of replayed intervals",
	  builtin_trace_usage },
	{ "cpuid", builtin_cpuid, "show the guest CPUID table and the matching QEMU -cpu",
	  builtin_cpuid_usage },
};
#define N_BUILTINS (sizeof(builtins) / sizeof(builtins[0]))

static void print_help(FILE *out)
{
	fprintf(out, "usage: simuboost [--version] [--help] <command> [<args>]\n\n"
		     "simuboost runs a guest under KVM and replays it in parallel under\n"
		     "QEMU-TCG simulation nodes with full tracing.\n\ncommands:\n");
	for (size_t i = 0; i < N_BUILTINS; i++)
		fprintf(out, "  %-10s %s\n", builtins[i].name, builtins[i].summary);
	fprintf(out, "  %-10s %s\n", "help", "show help for a command, or `help config`");
	fprintf(out, "\nSee 'simuboost help <command>' for a command's options.\n");
}

static const struct builtin *find_builtin(const char *name)
{
	for (size_t i = 0; i < N_BUILTINS; i++)
		if (!strcmp(builtins[i].name, name))
			return &builtins[i];
	return NULL;
}

static int cmd_help(int argc, char **argv)
{
	if (argc < 2) {
		print_help(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "config")) {
		vnode_config__print_reference(stdout);
		return 0;
	}
	const struct builtin *b = find_builtin(argv[1]);
	if (!b) {
		fprintf(stderr, "simuboost: no such command '%s'\n", argv[1]);
		return EXIT_USAGE;
	}
	fputs(b->usage, stdout);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		print_help(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("simuboost %s\n", SIMUBOOST_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help"))
		return cmd_help(argc - 1, argv + 1);
	const struct builtin *b = find_builtin(cmd);
	if (!b) {
		fprintf(stderr, "simuboost: '%s' is not a simuboost command. See 'simuboost help'.\n",
			cmd);
		return EXIT_USAGE;
	}
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(b->usage, stdout);
			return 0;
		}
	}
	return b->main(argc - 1, argv + 1);
}
