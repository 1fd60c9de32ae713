/* simuboost simulate: every interval of a recording across simulation
 * nodes, coordinated over ZeroMQ (distributor/), each interval replayed by
 * a node as `replay` would (simnode/). Embedded: N node processes on this
 * machine. simuboost simnode: a node that joins a coordinator, from here
 * or from another machine. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <jansson.h>
#include <limits.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "analysis.h"
#include "builtin.h"
#include "checkpoint.h"
#include "distributor.h"
#include "simnode.h"

const char builtin_simulate_usage[] =
	"usage: simuboost simulate <REC> [--nodes N] [options]\n"
	"\n"
	"Replays every interval of the recording REC on simulation nodes, which a\n"
	"coordinator (this command) gives intervals one at a time; a node that\n"
	"dies has its interval run again elsewhere. Without --listen, the nodes\n"
	"are N processes on this machine.\n"
	"\n"
	"  -n, --nodes N          node processes to start here (default: CPUs; 0 with\n"
	"                         --listen: only nodes that join)\n"
	"      --listen ENDPOINT  also take nodes that join from elsewhere, e.g.\n"
	"                         tcp://0.0.0.0:7450 (`simuboost simnode --join`)\n"
	"      --secret-file F    the run's shared secret (default: a fresh random one,\n"
	"                         written to OUT/secret, or a temporary file)\n"
	"  -t, --trace DIR        full traces of every interval (see replay --trace)\n"
	"  -A, --analysis SPEC    an analysis plugin, PLUGIN.so[,ARGS] (repeatable)\n"
	"      --qemu-plugin SPEC a plain QEMU TCG plugin, PLUGIN.so[,ARGS], attached to\n"
	"                         every interval's QEMU (repeatable); what it prints goes\n"
	"                         to OUT/qemu-plugins/NNNNNN.log\n"
	"  -o, --out DIR          reports to DIR/NAME.txt, states to DIR/states, the\n"
	"                         schedule to DIR/schedule (default: stdout)\n"
	"      --resume           continue the run whose schedule is in OUT\n"
	"      --follow           REC is still being recorded: interval K starts as soon\n"
	"                         as checkpoint K+1 is committed, and the run ends with\n"
	"                         the recording's final checkpoint\n"
	"      --follow-timeout S with --follow, end after S seconds without a new\n"
	"                         checkpoint (a recording that died; default 60)\n"
	"      --timeout S        kill an interval's QEMU after S seconds (default 3600)\n"
	"      --pages ENDPOINT   where this machine, the vnode, serves the recording's\n"
	"                         pages to the nodes (default: an ipc socket; with a\n"
	"                         tcp --listen, a free port on the same address)\n"
	"      --no-prefetch      demand paging without sequential prefetch\n"
	"      --pages-over-wire  nodes started here fetch pages from their peers, as\n"
	"                         nodes on other machines do, instead of reading the\n"
	"                         recording's packs (to measure or test distribution)\n"
	"      --node-cache-mib N the page cache of each node started here, in MiB\n"
	"                         (default: a quarter of this machine's memory,\n"
	"                         shared among them)\n"
	"      --materialize      copy each interval's starting RAM from the recording\n"
	"                         (a shared filesystem) instead of demand paging\n"
	"  -j, --json             the results as JSON, with what the vnode sent\n"
	"\n"
	"Exit status: 0 if every interval replayed exact, 1 if not, 2 on bad usage.\n";

const char builtin_simnode_usage[] =
	"usage: simuboost simnode --join ENDPOINT --id N [--secret-file F] [--serve EP]\n"
	"                         [--cache-mib N] [--read-recording] [--work-dir DIR]\n"
	"\n"
	"A simulation node: joins the coordinator of `simuboost simulate` at\n"
	"ENDPOINT, replays the intervals it assigns, and exits when it says the\n"
	"run is over. The secret comes from --secret-file or $SIMUBOOST_SECRET.\n"
	"\n"
	"Its guests' pages are faulted in from its peers (the vnode and the other\n"
	"nodes), and it serves the pages it holds at --serve (default: an ipc\n"
	"socket for an ipc coordinator, else tcp on the address that reaches the\n"
	"coordinator, any free port). It keeps at most --cache-mib MiB of pages\n"
	"(lz4; default: a quarter of this machine's memory), the least recently\n"
	"used going first. With --read-recording, on the vnode's host or a disk\n"
	"shared with it, its guests' pages are read from the recording's packs\n"
	"instead, and no peer is asked (`simulate` starts its own nodes so).\n"
	"\n"
	"Where the recording is not at the same path here as for the coordinator,\n"
	"the node copies the manifests, logs and plugins it needs from the\n"
	"coordinator into a directory of its own under --work-dir (default:\n"
	"~/.cache/simuboost; removed when it leaves), and sends back its analysis\n"
	"states, QEMU plugin logs and traces.\n";

/* A quarter of this machine's memory, in MiB, shared by `nodes` nodes. */
static uint32_t default_cache_mib(unsigned nodes)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
	uint64_t mib = pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size >> 20 : 4096;
	uint64_t share = mib / 4 / (nodes ? nodes : 1);
	return share ? (uint32_t)(share < UINT32_MAX ? share : UINT32_MAX) : 1;
}

#define MAX_LOCAL 64

static int read_secret(const char *file, char *out, size_t len, const char *cmd)
{
	const char *env = getenv("SIMUBOOST_SECRET");
	if (!file && env) {
		snprintf(out, len, "%s", env);
		return 0;
	}
	FILE *f = file ? fopen(file, "r") : NULL;
	if (!f || !fgets(out, (int)len, f)) {
		fprintf(stderr, "simuboost %s: secret %s: %s\n", cmd, file ? file : "(none given)",
			f ? "empty" : file ? strerror(errno) : "use --secret-file or $SIMUBOOST_SECRET");
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	out[strcspn(out, "\n")] = '\0';
	return 0;
}

int builtin_simnode(int argc, char **argv)
{
	static const struct option options[] = {
		{ "join", required_argument, NULL, 'J' },
		{ "id", required_argument, NULL, 'i' },
		{ "secret-file", required_argument, NULL, 's' },
		{ "serve", required_argument, NULL, 'S' },
		{ "cache-mib", required_argument, NULL, 'c' },
		{ "read-recording", no_argument, NULL, 'r' },
		{ "work-dir", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	const char *secret_file = NULL;
	uint32_t cache_mib = default_cache_mib(1);
	struct simnode_serve_options o = { 0 };
	char secret[256], err[1024];
	struct wire_key key;
	int c;

	while ((c = getopt_long(argc, argv, "J:i:s:S:c:rw:", options, NULL)) != -1) {
		switch (c) {
		case 'J': o.join = optarg; break;
		case 'i':
			if (cli__parse_index(optarg, &o.id) != 0 || !o.id)
				goto usage;
			break;
		case 's': secret_file = optarg; break;
		case 'S': o.serve = optarg; break;
		case 'r': o.read_recording = true; break;
		case 'w': o.work_dir = optarg; break;
		case 'c':
			if (cli__parse_index(optarg, &cache_mib) != 0 || !cache_mib)
				goto usage;
			break;
		default: goto usage;
		}
	}
	if (!o.join || !o.id || optind != argc)
		goto usage;
	if (read_secret(secret_file, secret, sizeof(secret), "simnode") != 0)
		return EXIT_USAGE;
	if (wire_key__from_secret(&key, secret) != 0) {
		fprintf(stderr, "simuboost simnode: the secret is shorter than 16 characters\n");
		return EXIT_USAGE;
	}
	o.key = &key;
	o.cache_bytes = (uint64_t)cache_mib << 20;
	if (simnode__serve(&o, err, sizeof(err)) != 0) {
		fprintf(stderr, "simuboost simnode %u: %s\n", o.id, err);
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
usage:
	fputs(builtin_simnode_usage, stderr);
	return EXIT_USAGE;
}

struct local_nodes {
	pid_t pids[MAX_LOCAL];
	unsigned n;
};

/* A recording that is still being made (--follow). */
struct follow {
	const char *rec;
	uint32_t count;        /* checkpoints committed */
	double changed;        /* when count last grew */
	double timeout_s;
	bool complete;
};

struct run {
	struct local_nodes ln;
	struct follow follow;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* How far the recording is: its committed checkpoints, and whether the
 * last one is final. */
static void follow__poll(struct follow *f)
{
	char err[512];
	if (f->complete)
		return;
	struct ckpt_store *st = ckpt_store__open(f->rec, err, sizeof(err));
	uint32_t count = st ? ckpt_store__count(st) : 0;
	if (count > f->count) {
		f->count = count;
		f->changed = now_s();
		struct ckpt_manifest *m;
		if (ckpt_manifest__load(st, count - 1, &m, err, sizeof(err)) == 0) {
			f->complete = m->flags & CKPT_FINAL;
			ckpt_manifest__free(m);
		}
	} else if (now_s() - f->changed > f->timeout_s) {
		fprintf(stderr, "simuboost simulate: %s: no new checkpoint for %.0f s; ending with "
				"the %u committed\n", f->rec, f->timeout_s, f->count);
		f->complete = true;
	}
	ckpt_store__close(st);
}

static uint32_t available(void *ctx, bool *complete)
{
	struct follow *f = &((struct run *)ctx)->follow;
	follow__poll(f);
	*complete = f->complete;
	return f->count ? f->count - 1 : 0;
}

/* Local node processes that ended are lost nodes (ids 1..n). */
static unsigned lost_locals(void *ctx, uint32_t *lost, unsigned max)
{
	struct local_nodes *ln = &((struct run *)ctx)->ln;
	unsigned n = 0;
	for (unsigned i = 0; i < ln->n && n < max; i++) {
		int status;
		if (ln->pids[i] > 0 && waitpid(ln->pids[i], &status, WNOHANG) == ln->pids[i]) {
			ln->pids[i] = 0;
			lost[n++] = i + 1;
		}
	}
	return n;
}

/* Where the vnode serves pages: given, an ipc socket, or a free port on the
 * tcp address the coordinator listens on. */
static int vnode_endpoint(const char *pages, const char *listen, char *out, size_t len,
			  char *err, size_t errlen)
{
	if (pages) {
		snprintf(out, len, "%s", pages);
		return 0;
	}
	if (!listen || strncmp(listen, "tcp://", 6)) {
		snprintf(out, len, "ipc:///tmp/simuboost-vnode-pages.%d", (int)getpid());
		return 0;
	}
	const char *colon = strrchr(listen, ':');
	if (colon - listen < 6) {
		snprintf(err, errlen, "%s: say where to serve pages (--pages)", listen);
		return -1;
	}
	snprintf(out, len, "%.*s:*", (int)(colon - listen), listen);
	return 0;
}

/* An endpoint the nodes can connect to: a wildcard address becomes this
 * host's first non-loopback IPv4 address. */
static int advertise(const char *bound, char *out, size_t len, char *err, size_t errlen)
{
	const char *any = "tcp://0.0.0.0:";
	snprintf(out, len, "%s", bound);
	if (strncmp(bound, any, strlen(any)))
		return 0;
	struct ifaddrs *ifs, *i;
	if (getifaddrs(&ifs) != 0) {
		snprintf(err, errlen, "getifaddrs: %s", strerror(errno));
		return -1;
	}
	int rc = -1;
	for (i = ifs; i && rc; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK))
			continue;
		char addr[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, addr, sizeof(addr));
		snprintf(out, len, "tcp://%s:%s", addr, bound + strlen(any));
		rc = 0;
	}
	freeifaddrs(ifs);
	if (rc)
		snprintf(err, errlen, "%s: no address of this host to give the nodes (--pages)",
			 bound);
	return rc;
}

static void progress(void *ctx, unsigned done, unsigned total)
{
	(void)ctx;
	fprintf(stderr, "\rsimulate: %u/%u intervals", done, total);
	if (done == total)
		fputc('\n', stderr);
}

/* Outputs never finished (NAME.tmp: a node died while sending a trace, or
 * while writing one there): their intervals ran again, and came whole. */
static void remove_parts(const char *dir)
{
	DIR *d = dir[0] ? opendir(dir) : NULL;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (n > 4 && !strcmp(e->d_name + n - 4, ".tmp") && unlinkat(dirfd(d), e->d_name, 0))
			fprintf(stderr, "simuboost simulate: %s/%s: %s\n", dir, e->d_name,
				strerror(errno));
	}
	if (d)
		closedir(d);
}

/* n random bytes, as 2n hex digits into out. */
static int random_hex(char *out, size_t n)
{
	unsigned char raw[64];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (n > sizeof(raw) || fd < 0 || read(fd, raw, n) != (ssize_t)n) {
		fprintf(stderr, "simuboost simulate: /dev/urandom: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

/* Plugin specs as the nodes get them: paths made absolute, arguments kept. */
static json_t *absolute_specs(const char *const *specs, unsigned n)
{
	json_t *list = json_array();
	for (unsigned i = 0; i < n; i++) {
		char spec[PATH_MAX + 1024];
		cli__absolute_spec(specs[i], spec, sizeof(spec));
		json_array_append_new(list, json_string(spec));
	}
	return list;
}

int builtin_simulate(int argc, char **argv)
{
	enum { OPT_LISTEN = 256, OPT_SECRET, OPT_RESUME, OPT_TIMEOUT, OPT_PAGES, OPT_NO_PREFETCH,
	       OPT_MATERIALIZE, OPT_FOLLOW, OPT_FOLLOW_TIMEOUT, OPT_NODE_CACHE, OPT_QEMU_PLUGIN,
	       OPT_OVER_WIRE };
	static const struct option options[] = {
		{ "nodes", required_argument, NULL, 'n' },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "secret-file", required_argument, NULL, OPT_SECRET },
		{ "trace", required_argument, NULL, 't' },
		{ "analysis", required_argument, NULL, 'A' },
		{ "out", required_argument, NULL, 'o' },
		{ "resume", no_argument, NULL, OPT_RESUME },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "pages", required_argument, NULL, OPT_PAGES },
		{ "follow", no_argument, NULL, OPT_FOLLOW },
		{ "follow-timeout", required_argument, NULL, OPT_FOLLOW_TIMEOUT },
		{ "no-prefetch", no_argument, NULL, OPT_NO_PREFETCH },
		{ "node-cache-mib", required_argument, NULL, OPT_NODE_CACHE },
		{ "qemu-plugin", required_argument, NULL, OPT_QEMU_PLUGIN },
		{ "materialize", no_argument, NULL, OPT_MATERIALIZE },
		{ "pages-over-wire", no_argument, NULL, OPT_OVER_WIRE },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen = NULL, *secret_file = NULL, *trace_dir = NULL, *out_dir = NULL;
	const char *pages = NULL;
	bool no_prefetch = false, materialize = false, follow = false, over_wire = false;
	double follow_timeout_s = 60;
	uint32_t node_cache_mib = 0; /* 0: default_cache_mib */
	const char *specs[CLI_MAX_SPECS], *qemu_specs[CLI_MAX_SPECS];
	struct analysis *an[CLI_MAX_SPECS];
	unsigned nspecs = 0, nqemu = 0;
	long nodes = cli__cpus();
	bool json = false, resume = false;
	double timeout_s = 3600;
	char err[1024], secret[256], endpoint[256], states_dir[PATH_MAX] = "", state_path[PATH_MAX];
	/* where nodes without the recording's filesystem send their outputs */
	char outputs[MSG_OUTPUT__COUNT][PATH_MAX] = { "" };
	/* the plugins' files, analyses then QEMU plugins, for such nodes */
	char plugin_paths[2 * CLI_MAX_SPECS][PATH_MAX];
	const char *plugins[2 * CLI_MAX_SPECS];
	unsigned nplugins = 0;
	int c, status = EXIT_FAILURE;

	while ((c = getopt_long(argc, argv, "n:t:A:o:j", options, NULL)) != -1) {
		switch (c) {
		case 'n': nodes = strtol(optarg, NULL, 10); break;
		case OPT_LISTEN: listen = optarg; break;
		case OPT_SECRET: secret_file = optarg; break;
		case 't': trace_dir = optarg; break;
		case OPT_QEMU_PLUGIN:
			if (cli__add_spec(qemu_specs, &nqemu, optarg, "simulate") != 0)
				return EXIT_USAGE;
			break;
		case 'A':
			if (cli__add_spec(specs, &nspecs, optarg, "simulate") != 0)
				return EXIT_USAGE;
			break;
		case 'o': out_dir = optarg; break;
		case OPT_RESUME: resume = true; break;
		case OPT_TIMEOUT:
			if (cli__parse_timeout(optarg, &timeout_s, "simulate") != 0)
				return EXIT_USAGE;
			break;
		case OPT_PAGES: pages = optarg; break;
		case OPT_FOLLOW: follow = true; break;
		case OPT_FOLLOW_TIMEOUT:
			if (cli__parse_timeout(optarg, &follow_timeout_s, "simulate") != 0)
				return EXIT_USAGE;
			break;
		case OPT_NO_PREFETCH: no_prefetch = true; break;
		case OPT_NODE_CACHE:
			if (cli__parse_index(optarg, &node_cache_mib) != 0 || !node_cache_mib) {
				fprintf(stderr, "simuboost simulate: --node-cache-mib '%s': expected "
						"a size in MiB, 1 or more\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_MATERIALIZE: materialize = true; break;
		case OPT_OVER_WIRE: over_wire = true; break;
		case 'j': json = true; break;
		default:
			fputs(builtin_simulate_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || nodes < 0 || nodes > MAX_LOCAL || (!nodes && !listen) ||
	    (resume && !out_dir) || (json && nspecs && !out_dir) || (nqemu && !out_dir)) {
		fprintf(stderr, "simuboost simulate: expected a recording, --nodes 1..%d (or 0 with "
				"--listen); --resume, --qemu-plugin and --json with analyses only "
				"with --out\n", MAX_LOCAL);
		return EXIT_USAGE;
	}
	char rec[PATH_MAX];
	/* a recording to follow may not have been created yet */
	for (double t0 = now_s(); follow && !realpath(argv[optind], rec) && errno == ENOENT &&
				   now_s() - t0 < follow_timeout_s;)
		usleep(100000);
	if (!realpath(argv[optind], rec)) {
		fprintf(stderr, "simuboost simulate: %s: %s\n", argv[optind], strerror(errno));
		return EXIT_FAILURE;
	}
	struct run run = { .follow = { .rec = rec, .changed = now_s(),
				       .timeout_s = follow_timeout_s, .complete = !follow } };
	if (follow) /* checkpoint 0 at least, or the time-out */
		while (follow__poll(&run.follow), !run.follow.count && !run.follow.complete)
			usleep(100000);
	long count = follow ? (long)run.follow.count : simnode__checkpoints(rec, err, sizeof(err));
	if (count < 2 && !(follow && count == 1)) {
		fprintf(stderr, "simuboost simulate: %s\n",
			count < 0 ? err : "fewer than two checkpoints: no interval to simulate");
		return EXIT_FAILURE;
	}
	char results_dir[PATH_MAX];
	snprintf(results_dir, sizeof(results_dir), "%s/results", out_dir ? out_dir : "");
	if (out_dir && (cli__make_dir(out_dir, "simulate") != 0 ||
			cli__make_dir(results_dir, "simulate") != 0))
		return EXIT_FAILURE;
	if (trace_dir && cli__make_dir(trace_dir, "simulate") != 0)
		return EXIT_FAILURE;
	/* the secret: given, or fresh */
	if (secret_file || (getenv("SIMUBOOST_SECRET") && listen)) {
		if (read_secret(secret_file, secret, sizeof(secret), "simulate") != 0)
			return EXIT_USAGE;
	} else if (random_hex(secret, 24) != 0) {
		return EXIT_FAILURE;
	}
	/* names this run for the nodes: what they copied for another is not
	 * this one's, even of a recording at the same path */
	char run_id[33];
	if (random_hex(run_id, 16) != 0)
		return EXIT_FAILURE;
	struct wire_key key;
	if (wire_key__from_secret(&key, secret) != 0) {
		fprintf(stderr, "simuboost simulate: the secret is shorter than 16 characters\n");
		return EXIT_USAGE;
	}
	if (cli__load_analyses(specs, nspecs, an, "simulate") != 0)
		return EXIT_USAGE;
	for (unsigned i = 0; i < nspecs + nqemu; i++) {
		char spec[PATH_MAX + 1024];
		cli__absolute_spec(i < nspecs ? specs[i] : qemu_specs[i - nspecs], spec, sizeof(spec));
		snprintf(plugin_paths[nplugins], PATH_MAX, "%.*s", (int)strcspn(spec, ","), spec);
		plugins[nplugins] = plugin_paths[nplugins];
		nplugins++;
	}

	/* the settings every node replays with */
	json_t *settings = json_pack("{s:s, s:s, s:f, s:b, s:b}", "run", run_id, "recording", rec,
				     "timeout_s", timeout_s, "no_prefetch", no_prefetch,
				     "materialize", materialize);
	if (trace_dir && realpath(trace_dir, outputs[MSG_OUTPUT_TRACE]))
		json_object_set_new(settings, "trace_dir", json_string(outputs[MSG_OUTPUT_TRACE]));
	if (getenv("SIMUBOOST_QEMU"))
		json_object_set_new(settings, "qemu", json_string(getenv("SIMUBOOST_QEMU")));
	if (nspecs) {
		json_object_set_new(settings, "analyses", absolute_specs(specs, nspecs));
		if (cli__states_dir(out_dir, states_dir, sizeof(states_dir), "simulate") != 0 ||
		    !realpath(states_dir, outputs[MSG_OUTPUT_STATE])) {
			json_decref(settings);
			goto out;
		}
		json_object_set_new(settings, "analysis_dir",
				    json_string(outputs[MSG_OUTPUT_STATE]));
	}
	if (nqemu) {
		json_object_set_new(settings, "qemu_plugins", absolute_specs(qemu_specs, nqemu));
		if (cli__qemu_plugin_dir(out_dir, outputs[MSG_OUTPUT_QEMU_LOG], "simulate") != 0) {
			json_decref(settings);
			goto out;
		}
		json_object_set_new(settings, "qemu_plugin_dir",
				    json_string(outputs[MSG_OUTPUT_QEMU_LOG]));
	}
	char *settings_text = json_dumps(settings, JSON_COMPACT);
	json_decref(settings);

	/* the endpoint, and the local nodes */
	if (listen)
		snprintf(endpoint, sizeof(endpoint), "%s", listen);
	else
		snprintf(endpoint, sizeof(endpoint), "ipc:///tmp/simuboost-simulate.%d", (int)getpid());
	/* the vnode's pages, served from the recording */
	char pages_ep[PAGE_ENDPOINT_MAX], advertised[PAGE_ENDPOINT_MAX];
	struct page_server *vnode = NULL;
	if (vnode_endpoint(pages, listen, pages_ep, sizeof(pages_ep), err, sizeof(err)) == 0) {
		struct page_server_options so = { .endpoint = pages_ep, .key = &key,
						  .self = PAGE_VNODE_ID, .recording = rec };
		vnode = page_server__start(&so, err, sizeof(err));
	}
	if (!vnode || advertise(page_server__endpoint(vnode), advertised, sizeof(advertised), err,
				sizeof(err)) != 0) {
		fprintf(stderr, "simuboost simulate: serving pages: %s\n", err);
		page_server__stop(vnode, NULL);
		free(settings_text);
		goto out;
	}
	struct local_nodes *ln = &run.ln;
	struct wire_guard guard;
	wire_guard__init(&guard);
	uint64_t dropped = 0;
	ln->n = (unsigned)nodes;
	char join[512];
	snprintf(join, sizeof(join), "%s", endpoint);
	if (listen && !strncmp(listen, "tcp://0.0.0.0:", 14))
		snprintf(join, sizeof(join), "tcp://127.0.0.1:%s", listen + 14);
	setenv("SIMUBOOST_SECRET", secret, 1);
	char cache_mib[16];
	snprintf(cache_mib, sizeof(cache_mib), "%u",
		 node_cache_mib ? node_cache_mib : default_cache_mib(ln->n));
	for (unsigned i = 0; i < ln->n; i++) {
		char id[16];
		snprintf(id, sizeof(id), "%u", i + 1);
		ln->pids[i] = fork();
		if (ln->pids[i] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL); /* embedded nodes end with their coordinator */
			/* this machine holds the recording: they read it */
			execl("/proc/self/exe", "simuboost", "simnode", "--join", join, "--id", id,
			      "--cache-mib", cache_mib, over_wire ? NULL : "--read-recording",
			      (char *)NULL);
			fprintf(stderr, "simuboost simulate: exec: %s\n", strerror(errno));
			_exit(127);
		}
	}
	unsetenv("SIMUBOOST_SECRET");
	snprintf(state_path, sizeof(state_path), "%s/schedule", out_dir ? out_dir : "");
	struct coord_options co = {
		.endpoint = endpoint, .key = &key, .first = 0, .last = (uint32_t)count - 1,
		.settings = settings_text, .pages_endpoint = advertised,
		.state_path = out_dir ? state_path : NULL,
		.results_dir = results_dir,
		.resume = resume, .lost = lost_locals, .ctx = &run,
		.available = follow ? available : NULL, .guard = &guard, .dropped = &dropped,
		.progress = !json && isatty(STDERR_FILENO) ? progress : NULL,
		.recording = rec, .plugins = plugins, .nplugins = nplugins,
		.output_dirs = { [MSG_OUTPUT_STATE] = outputs[MSG_OUTPUT_STATE][0] ?
							  outputs[MSG_OUTPUT_STATE] : NULL,
				 [MSG_OUTPUT_QEMU_LOG] = outputs[MSG_OUTPUT_QEMU_LOG][0] ?
							     outputs[MSG_OUTPUT_QEMU_LOG] : NULL,
				 [MSG_OUTPUT_TRACE] = outputs[MSG_OUTPUT_TRACE][0] ?
							  outputs[MSG_OUTPUT_TRACE] : NULL },
	};
	json_t *results = coord__run(&co, listen ? 3600 : 10, err, sizeof(err));
	free(settings_text);
	for (int kind = 0; kind < MSG_OUTPUT__COUNT; kind++)
		remove_parts(outputs[kind]);
	for (unsigned i = 0; i < ln->n; i++)
		if (ln->pids[i] > 0) {
			/* after BYE they leave; one that does not is stopped */
			int st;
			for (int tries = 0; tries < 50 && waitpid(ln->pids[i], &st, WNOHANG) == 0;
			     tries++)
				usleep(100000);
			if (kill(ln->pids[i], SIGKILL) == 0)
				waitpid(ln->pids[i], &st, 0);
		}
	if (!listen)
		unlink(endpoint + strlen("ipc://"));
	struct page_server_stats sent;
	page_server__stop(vnode, &sent);
	if (!results) {
		fprintf(stderr, "simuboost simulate: %s\n", err);
		goto out;
	}
	size_t i, exact = 0;
	json_t *r;
	json_array_foreach(results, i, r)
		exact += !strcmp(json_string_value(json_object_get(r, "verdict")) ?: "", "exact");
	if (json) {
		json_t *doc = json_pack("{s:s, s:i, s:I, s:I, s:O, s:{s:I, s:I, s:I, s:I, s:o}, s:o, "
					"s:I}",
					"recording", rec, "nodes", (int)nodes, "exact",
					(json_int_t)exact, "intervals_total",
					(json_int_t)json_array_size(results), "intervals", results,
					"vnode", "sent_bytes", (json_int_t)sent.sent_bytes, "sent_pages",
					(json_int_t)sent.sent_pages, "requests", (json_int_t)sent.requests,
					"malformed", (json_int_t)sent.malformed, "refused",
					wire__refusals_json(sent.refused), "coordinator_refused",
					wire__refusals_json(guard.counts), "coordinator_dropped",
					(json_int_t)dropped);
		json_dumpf(doc, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(doc);
	} else {
		cli__print_results(results, stdout);
		printf("%zu of %zu intervals exact; the vnode sent %llu pages, %.1f MiB\n", exact,
		       json_array_size(results), (unsigned long long)sent.sent_pages,
		       (double)sent.sent_bytes / (1 << 20));
	}
	status = exact == json_array_size(results) ? EXIT_SUCCESS : EXIT_FAILURE;
	if (nspecs && status == EXIT_SUCCESS) {
		if (cli__analysis_reports(an, nspecs, states_dir, 0, (uint32_t)json_array_size(results),
					  false, out_dir, "simulate") != 0)
			status = EXIT_FAILURE;
	}
	json_decref(results);
out:
	for (unsigned a = 0; a < nspecs; a++)
		analysis__close(an[a]);
	if (nspecs && !out_dir && states_dir[0])
		cli__remove_dir(states_dir, "simulate");
	return status;
}
