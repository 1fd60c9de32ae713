/* One `simuboost <command>` per builtin-*.c file. */
#ifndef SIMUBOOST_CLI_BUILTIN_H
#define SIMUBOOST_CLI_BUILTIN_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vnode.h"

struct builtin {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
	const char *usage; /* printed by `simuboost <cmd> --help` */
};

int builtin_run(int argc, char **argv);
int builtin_cpuid(int argc, char **argv);
int builtin_record(int argc, char **argv);
int builtin_ckpt(int argc, char **argv);
int builtin_log(int argc, char **argv);
int builtin_replay(int argc, char **argv);
int builtin_trace(int argc, char **argv);
int builtin_analyze(int argc, char **argv);
int builtin_simulate(int argc, char **argv);
int builtin_simnode(int argc, char **argv);
extern const char builtin_run_usage[];
extern const char builtin_cpuid_usage[];
extern const char builtin_record_usage[];
extern const char builtin_ckpt_usage[];
extern const char builtin_log_usage[];
extern const char builtin_replay_usage[];
extern const char builtin_trace_usage[];
extern const char builtin_analyze_usage[];
extern const char builtin_simulate_usage[];
extern const char builtin_simnode_usage[];

/* Options shared by run and record (options.c); each prints its own error. */
#define CLI_MAX_SETS 64
struct cli_sets {
	const char *items[CLI_MAX_SETS]; /* KEY=VALUE, in order */
	int n;
};
int cli__collect_set(struct cli_sets *s, const char *arg, const char *cmd);
int cli__parse_timeout(const char *arg, double *seconds, const char *cmd);
/* Analysis specs given by a repeatable --analysis: adds spec to specs[*n],
 * or says there are too many and returns -1. */
#define CLI_MAX_SPECS 16
int cli__add_spec(const char **specs, unsigned *n, const char *spec, const char *cmd);
/* Applies the --set overrides; with json, moves a stdout console to stderr. */
int cli__apply_config(struct vnode_config *cfg, const struct cli_sets *s, bool json, char *err,
		      size_t errlen);

/* A checkpoint or interval number; -1 if s is not one. */
int cli__parse_index(const char *s, uint32_t *out);
/* This machine's online CPUs, at least 1: the default number of jobs. */
unsigned cli__cpus(void);
/* A 64-bit address or value for --json output, as "0x..." (JSON numbers
 * above 2^53, and jansson's above 2^63, do not survive a round trip). */
struct json_t;
struct json_t *cli__json_hex(uint64_t v);
/* The command's exit status for how the guest ended (the guest's own
 * status, or one of the codes below); names a fault on stderr. */
struct vnode_stats;
int cli__exit_status(const struct vnode_stats *stats, const char *cmd);

/* Analyses, shared by replay (online) and analyze (offline), in
 * builtin-analyze.c. Each prints its own error. */
struct analysis;
/* Loads the plugins of n --analysis specs into out; refuses a name twice. */
int cli__load_analyses(const char *const *specs, unsigned n, struct analysis **out,
		       const char *cmd);
/* Merges each analysis's states of intervals [first, last) from
 * states_dir, one per interval (or one for them all: serial), and writes
 * its report to out_dir/NAME.txt (NULL: stdout). */
int cli__analysis_reports(struct analysis **an, unsigned n, const char *states_dir,
			  uint32_t first, uint32_t last, bool serial, const char *out_dir,
			  const char *cmd);
int cli__make_dir(const char *dir, const char *cmd);
/* Where analysis states go: OUT/states (made, with OUT), or a fresh
 * temporary directory without OUT. -1 (said, and dir emptied) if neither. */
int cli__states_dir(const char *out_dir, char *dir, size_t len, const char *cmd);
/* Where plain QEMU plugins' output goes: OUT/qemu-plugins (made, with
 * OUT), as an absolute path. -1 (said) if it cannot be made. */
int cli__qemu_plugin_dir(const char *out_dir, char dir[PATH_MAX], const char *cmd);
/* A --analysis spec with its plugin's path made absolute, for processes
 * that load it from another working directory. */
void cli__absolute_spec(const char *spec, char *out, size_t len);
/* The table of per-interval replay results (replay, simulate). */
void cli__print_results(struct json_t *results, FILE *out);
void cli__remove_dir(const char *dir, const char *cmd);

/* Exit codes shared by the commands. */
enum {
	EXIT_VMM_ERROR = 1, /* bad config, KVM failure: nothing ran */
	EXIT_USAGE = 2,
	EXIT_GUEST_FAULT = 125,
	EXIT_TIMEOUT = 124,
	EXIT_STOPPED = 130,
};

#endif
