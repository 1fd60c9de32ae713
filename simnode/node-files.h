/* A distributed node's files (node-files.c, for node.c; internal to
 * simnode/): where it reads the recording, and where what its intervals
 * produce goes.
 *
 * A node that shares the coordinator's filesystem (at the same path, the
 * same recording.meta and first manifest) reads the recording there and
 * writes its outputs where the run's settings say. One that does not
 * keeps a copy of what it replays from in a directory of its own:
 * recording.meta, the manifests up to the interval's end, the interval's
 * log and the run's plugins, asked of the coordinator (FILE_REQUEST),
 * never the page packs, whose contents come from peers by hash. Its
 * analysis states, QEMU plugin logs and traces go back to the coordinator
 * (OUTPUT) before the result, and are removed here. */
#ifndef SIMUBOOST_SIMNODE_NODE_FILES_H
#define SIMUBOOST_SIMNODE_NODE_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct link;
struct simnode_replay_options;

struct node_files;

/* work_dir: where copies of recordings are made (a directory per run,
 * removed with the node). shared: the node is told it shares the
 * recording's filesystem (it does not ask). */
struct node_files *node_files__new(const char *work_dir, bool shared);
void node_files__free(struct node_files *f);

/* A new run's settings arrived: what is known of the last run is dropped. */
void node_files__new_run(struct node_files *f);

/* Before interval k of the run whose settings are in o (as WELCOME gave
 * them): decides, once per run, whether the recording is shared, fetches
 * what is missing for k, and points o's recording and output directories
 * where this node reads and writes them. tick (optional) is called while
 * waiting on the coordinator. 0, or -1 with err. */
int node_files__prepare(struct node_files *f, struct link *l, uint32_t k,
			struct simnode_replay_options *o, void (*tick)(void *), void *opaque,
			char *err, size_t errlen);

/* After interval k: sends its outputs to the coordinator if they are not
 * shared, and clears them here. 0, or -1 with err. */
int node_files__send_outputs(struct node_files *f, struct link *l, uint32_t k, char *err,
			     size_t errlen);

/* "shared" or "fetched": how the last prepared interval read its recording. */
const char *node_files__mode(const struct node_files *f);

#endif
