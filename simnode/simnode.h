/* simuboost simulation node: replays intervals of a recording in the
 * patched QEMU (simnode/qemu/) with the replay plugin, and validates each
 * against the checkpoint that ends it. This is the only header other
 * modules may use. */
#ifndef SIMUBOOST_SIMNODE_H
#define SIMUBOOST_SIMNODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct ckpt_hash;

struct simnode_replay_options {
	const char *recording;
	/* Intervals [first, last). serial: one QEMU replays them all from
	 * checkpoint `first` (the oracle); otherwise one QEMU per interval,
	 * `jobs` at a time. */
	uint32_t first, last;
	bool serial;
	unsigned jobs;
	const char *qemu;        /* NULL: the build's patched QEMU */
	const char *plugin;      /* NULL: the build's replay plugin */
	uint64_t budget;         /* instructions per interval; 0: the default */
	double timeout_s;        /* per QEMU process; 0: none */
	const char *plugin_args; /* more replay plugin arguments, comma-separated */
	/* A directory (existing, no commas in its path) for the full trace of
	 * every exact interval, NNNNNN.trace (trace/trace.h); NULL: none. */
	const char *trace_dir;
	/* Analysis plugins ("path.so[,args]", analysis-plugins/) run inside
	 * each QEMU; each saves its state for the intervals that QEMU replayed
	 * exact in analysis_dir, as analysis__state_path names it. */
	const char *const *analyses;
	unsigned nanalyses;
	const char *analysis_dir;
	/* Plain QEMU TCG plugins ("path.so[,args]") attached to each QEMU;
	 * what they print goes to qemu_plugin_dir/NNNNNN.log, NNNNNN the
	 * first interval of that QEMU. */
	const char *const *qemu_plugins;
	unsigned nqemu_plugins;
	const char *qemu_plugin_dir;
	/* Guest RAM: demand-paged (the default: each QEMU starts with empty
	 * RAM and its pages are faulted in as they are touched, see dsm.h),
	 * or with materialize the whole starting checkpoint copied in first.
	 * no_prefetch turns off the sequential prefetch of demand paging. */
	bool materialize, no_prefetch;
	/* Where demand paging gets page contents by hash (a distributed node's
	 * peers, distributor.h): n pages into out; NULL: the recording's own
	 * page packs. Called on fault threads, one per QEMU. */
	int (*page_by_hash)(void *ctx, const struct ckpt_hash *hashes, unsigned n, uint8_t *out,
			    char *err, size_t errlen);
	void *page_ctx;
	/* Called every few tens of milliseconds while QEMUs run (NULL: not),
	 * e.g. for a heartbeat. */
	void (*tick)(void *opaque);
	/* Called after each interval's result, e.g. for progress. */
	void (*progress)(void *opaque, unsigned done, unsigned total);
	void *opaque;
};

/* Replays and returns a JSON array with one object per interval, in order:
 *   interval, verdict ("exact", "diverged", "error", "not-run"),
 *   instructions, events, events_total, undefined_flag_fixups, wall_s,
 *   with demand paging a dsm object (faults, zero_faults, prefetched,
 *   prefetch_used, prefetch_wasted, fault_p50_us, fault_p99_us; in a serial
 *   replay on its first interval, for the whole run),
 *   and for "diverged" a divergence object (kind, detail, event, rip,
 *   at_instruction, state and pages where they differ), for "error" a
 *   detail string. Returns NULL with err only when nothing could run (bad
 *   recording, interval out of range, QEMU missing or unpatched). */
json_t *simnode__replay(const struct simnode_replay_options *o, char *err, size_t errlen);

/* Re-runs a diverged interval (one object of simnode__replay's result)
 * with finer checks chosen from its divergence, and returns the re-run's
 * result, whose "bisect" object says what they saw: for differing CPU
 * state fields, the instruction that last changed each one; for differing
 * page words, every store to them and whether the recorded value ever
 * appeared; for a missed landmark, the visits of its RIP after the last
 * matching event. NULL with err if the re-run could not run. */
json_t *simnode__bisect(const struct simnode_replay_options *o, const json_t *diverged,
			char *err, size_t errlen);

/* A node of a distributed run (simnode__serve). */
struct wire_key;
struct simnode_serve_options {
	const char *join;            /* the coordinator's endpoint (distributor.h) */
	/* Where it serves the pages it holds; NULL: an ipc socket for an ipc
	 * coordinator, else a free tcp port on the address that reaches it. */
	const char *serve;
	const struct wire_key *key;
	uint32_t id;
	uint64_t cache_bytes;        /* pages kept (lz4), least recently used first out; 0: no bound */
	/* The node shares the recording's disk (it runs on the vnode's host):
	 * its guests' pages are read from the recording's packs, as `replay`
	 * reads them, and no peer is asked. It still serves what peers fetch
	 * through it. */
	bool read_recording;
	/* Where a node whose machine does not hold the recording keeps its
	 * copy of what it replays from, a directory per run; NULL:
	 * $XDG_CACHE_HOME/simuboost (~/.cache/simuboost). */
	const char *work_dir;
};

/* Serves a distributed run: joins the coordinator, replays the intervals
 * it assigns, and returns 0 when it says BYE, -1 with err if the link
 * fails. Unless it reads the recording, its guests' pages come from its
 * peers. Where its machine does not hold the recording, it copies the
 * manifests and logs from the coordinator and sends back its analysis
 * states, QEMU plugin logs and traces. Each result gains
 * node, host, recording ("shared" or "fetched"), and a pages object:
 * source ("recording" or "peers"), bytes_from (bytes received from each
 * peer, by id; 0 is the vnode), cache_hits, peers_lost, cache (pages,
 * bytes, evicted so far), served (what its page server sent). */
int simnode__serve(const struct simnode_serve_options *o, char *err, size_t errlen);

/* The number of checkpoints of a recording, or -1 with err. */
long simnode__checkpoints(const char *recording, char *err, size_t errlen);

#endif
