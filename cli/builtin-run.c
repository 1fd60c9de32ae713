/* simuboost run: boot a guest under the vnode and summarise the run. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "checkpoint.h"
#include "vnode.h"

const char builtin_run_usage[] =
	"usage: simuboost run [options] <vm.cfg>\n"
	"       simuboost run [options] --from REC --checkpoint K [<vm.cfg>]\n"
	"\n"
	"Boots the guest described by vm.cfg under KVM with all devices in userspace\n"
	"and prints a summary at exit (see `simuboost help config` for the keys).\n"
	"With --from, resumes the guest live from checkpoint K of a recording instead\n"
	"(RAM, CPU and devices); vm.cfg, if given, only supplies the console.\n"
	"\n"
	"      --from REC        the recording directory to resume from\n"
	"  -k, --checkpoint K    the checkpoint to resume (default 0)\n"
	"  -s, --set KEY=VALUE   override a vm.cfg key (repeatable)\n"
	"  -t, --timeout SECS    stop the guest after SECS seconds of wall time\n"
	"  -j, --json            print the summary as JSON on stdout; the guest\n"
	"                        console then goes to stderr if it was on stdout\n"
	"  -q, --quiet           no summary (the exit status still tells)\n"
	"\n"
	"Exit status: the guest's debug-exit value (port 0xf4), 124 on timeout,\n"
	"125 if the guest faulted or halted for good, 130 if interrupted, 1 if the\n"
	"VM could not be set up, 2 on usage errors.\n";

int builtin_run(int argc, char **argv)
{
	enum { OPT_FROM = 256 };
	static const struct option options[] = {
		{ "from", required_argument, NULL, OPT_FROM },
		{ "checkpoint", required_argument, NULL, 'k' },
		{ "set", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_sets sets = { .n = 0 };
	bool json = false, quiet = false;
	const char *from = NULL;
	uint32_t checkpoint = 0;
	struct vnode_run_options ropts = { 0 };
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "k:s:t:jq", options, NULL)) != -1) {
		switch (c) {
		case OPT_FROM: from = optarg; break;
		case 'k':
			if (cli__parse_index(optarg, &checkpoint) != 0) {
				fprintf(stderr, "simuboost run: --checkpoint '%s' is not a checkpoint "
						"number\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 's':
			if (cli__collect_set(&sets, optarg, "run") != 0)
				return EXIT_USAGE;
			break;
		case 't':
			if (cli__parse_timeout(optarg, &ropts.timeout_seconds, "run") != 0)
				return EXIT_USAGE;
			break;
		case 'j': json = true; break;
		case 'q': quiet = true; break;
		default:
			fputs(builtin_run_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1 && !(from && optind == argc)) {
		fprintf(stderr, "simuboost run: expected exactly one vm.cfg\n");
		fputs(builtin_run_usage, stderr);
		return EXIT_USAGE;
	}
	char err[1024];
	struct vnode_config cfg;
	if (optind == argc) {
		vnode_config__init(&cfg);
	} else if (vnode_config__load(&cfg, argv[optind], err, sizeof(err)) != 0) {
		fprintf(stderr, "simuboost run: %s\n", err);
		return EXIT_VMM_ERROR;
	}
	if (cli__apply_config(&cfg, &sets, json, err, sizeof(err)) != 0) {
		fprintf(stderr, "simuboost run: %s\n", err);
		vnode_config__free(&cfg);
		return EXIT_VMM_ERROR;
	}
	struct vnode *vn;
	if (from) {
		struct ckpt_store *store = ckpt_store__open(from, err, sizeof(err));
		vn = store ? vnode__create_from_checkpoint(&cfg, store, checkpoint, err,
							   sizeof(err))
			   : NULL;
		ckpt_store__close(store);
	} else {
		vn = vnode__create(&cfg, err, sizeof(err));
	}
	vnode_config__free(&cfg);
	if (!vn) {
		fprintf(stderr, "simuboost run: %s\n", err);
		return EXIT_VMM_ERROR;
	}
	struct vnode_stats stats;
	int rc = vnode__run(vn, &ropts, &stats, err, sizeof(err));
	vnode__destroy(vn);
	fflush(stdout);
	if (rc != 0) {
		fprintf(stderr, "simuboost run: %s\n", err);
		return EXIT_VMM_ERROR;
	}
	if (json) {
		char *text = vnode_stats__json(&stats);
		if (text)
			printf("%s\n", text);
		free(text);
	} else if (!quiet) {
		vnode_stats__print(&stats, stderr);
	}
	return cli__exit_status(&stats, "run");
}
