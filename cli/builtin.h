/* One `simuboost <command>` per builtin-*.c file. */
#ifndef SIMUBOOST_CLI_BUILTIN_H
#define SIMUBOOST_CLI_BUILTIN_H

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
extern const char builtin_run_usage[];
extern const char builtin_cpuid_usage[];
extern const char builtin_record_usage[];
extern const char builtin_ckpt_usage[];
extern const char builtin_log_usage[];

/* Exit codes shared by the commands. */
enum {
	EXIT_VMM_ERROR = 1, /* bad config, KVM failure: nothing ran */
	EXIT_USAGE = 2,
	EXIT_GUEST_FAULT = 125,
	EXIT_TIMEOUT = 124,
	EXIT_STOPPED = 130,
};

#endif
