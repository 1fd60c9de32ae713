/* simuboost distribution: the messages between the coordinator, the vnode
 * and the simulation nodes. This is the only header other modules may use.
 *
 * Wire frames (wire.c): the frame every message travels in, and a
 * bounds-checked reader and writer for the fields inside it.
 *
 * A frame (little-endian):
 *   u32 magic "SBWM", u16 version, u16 type, u32 sender, u32 payload length,
 *   u64 sequence number, u64 0 (reserved), the payload,
 *   32-byte HMAC-SHA-256 of everything before it under the run's key.
 * A receiver refuses, and counts by reason, a frame that is short, too long
 * for its length field, of another version, of an unknown type, with a bad
 * MAC (another key, or tampered with), or with a sequence number not above
 * the last one it accepted from that sender (replayed). */
#ifndef SIMUBOOST_DISTRIBUTOR_H
#define SIMUBOOST_DISTRIBUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"

#define WIRE_VERSION 2u /* 2: FILE_REQUEST, FILE_DATA, OUTPUT */
#define WIRE_HEADER_SIZE 32u
#define WIRE_MAC_SIZE 32u
#define WIRE_MAX_PAYLOAD (64u << 20)
#define WIRE_KEY_SIZE 32u

enum wire_type {
	WIRE_HELLO = 1,     /* a node joins: what it is */
	WIRE_WELCOME,       /* the coordinator's answer */
	WIRE_ASSIGN,        /* an interval to simulate */
	WIRE_RESULT,        /* an interval's verdict and outputs */
	WIRE_HAVE,          /* page hashes a peer holds */
	WIRE_PAGE_REQUEST,  /* page hashes wanted */
	WIRE_PAGE_DATA,     /* pages, lz4-compressed, by hash */
	WIRE_HEARTBEAT,
	WIRE_BYE,
	WIRE_FILE_REQUEST,  /* part of a recording's file, for a node without it */
	WIRE_FILE_DATA,     /* the answer */
	WIRE_OUTPUT,        /* a file an interval produced, for the coordinator to keep */
	WIRE_TYPE__COUNT
};

const char *wire_type__name(enum wire_type type);

struct wire_key {
	uint8_t bytes[WIRE_KEY_SIZE];
};

/* The run's key from a shared secret (at least 16 characters), hashed so
 * that any text makes a full-length key. -1 if the secret is too short. */
int wire_key__from_secret(struct wire_key *key, const char *secret);

struct wire_msg {
	enum wire_type type;
	uint32_t sender;
	uint64_t seq;
	const uint8_t *payload;     /* decode: points into the frame */
	uint32_t len;
};

/* The frame of m into out (cap bytes): its size, or 0 if it does not fit
 * or the payload is too long. */
size_t wire__encode(const struct wire_key *key, const struct wire_msg *m, void *out, size_t cap);
static inline size_t wire__frame_size(uint32_t payload_len)
{
	return WIRE_HEADER_SIZE + payload_len + WIRE_MAC_SIZE;
}

/* Why a frame was refused. */
enum wire_verdict {
	WIRE_OK = 0,
	WIRE_SHORT,         /* shorter than a header and a MAC, or than its length */
	WIRE_OVERSIZED,     /* longer than its length says, or above the limit */
	WIRE_BAD_MAGIC,
	WIRE_BAD_VERSION,
	WIRE_UNKNOWN_TYPE,
	WIRE_BAD_MAC,
	WIRE_REPLAYED,
	WIRE_VERDICT__COUNT
};

const char *wire_verdict__name(enum wire_verdict v);

/* Checks a received frame and fills m (its payload points into buf). The
 * sequence number is not judged here: see wire_guard. */
enum wire_verdict wire__decode(const struct wire_key *key, const void *buf, size_t len,
			       struct wire_msg *m);

/* A receiver's memory of the last sequence number accepted per sender, and
 * its counts of frames by verdict. */
#define WIRE_GUARD_SENDERS 1024u
struct wire_guard {
	uint64_t counts[WIRE_VERDICT__COUNT];
	uint32_t nsenders;
	struct {
		uint32_t sender;
		uint64_t last_seq;
	} senders[WIRE_GUARD_SENDERS];
};

void wire_guard__init(struct wire_guard *g);
/* The refused frames among counts, {verdict name: count}, for reports. */
struct json_t *wire__refusals_json(const uint64_t counts[WIRE_VERDICT__COUNT]);
/* wire__decode, then the sequence number: WIRE_OK if the frame is new and
 * authentic. Every frame is counted under its verdict. */
enum wire_verdict wire_guard__accept(struct wire_guard *g, const struct wire_key *key,
				     const void *buf, size_t len, struct wire_msg *m);

/* ---- payload fields ----------------------------------------------------- */

/* Writing: fields appended to a growing buffer; ok turns false (and stays)
 * when memory or the payload limit runs out. */
struct wire_writer {
	uint8_t *buf;
	uint32_t len, cap;
	bool ok;
};
void wire_writer__u8(struct wire_writer *w, uint8_t v);
void wire_writer__u32(struct wire_writer *w, uint32_t v);
void wire_writer__u64(struct wire_writer *w, uint64_t v);
void wire_writer__bytes(struct wire_writer *w, const void *p, uint32_t n);
/* A u32 length, then the bytes. */
void wire_writer__blob(struct wire_writer *w, const void *p, uint32_t n);
void wire_writer__free(struct wire_writer *w);

/* Reading: each getter fails (returns false, and so do all later ones)
 * when the payload has fewer bytes left than it needs. */
struct wire_reader {
	const uint8_t *p;
	uint32_t left;
	bool ok;
};
static inline struct wire_reader wire_reader__of(const struct wire_msg *m)
{
	return (struct wire_reader){ .p = m->payload, .left = m->len, .ok = true };
}
bool wire_reader__u8(struct wire_reader *r, uint8_t *v);
bool wire_reader__u32(struct wire_reader *r, uint32_t *v);
bool wire_reader__u64(struct wire_reader *r, uint64_t *v);
bool wire_reader__bytes(struct wire_reader *r, void *out, uint32_t n);
/* A blob: its bytes stay in the payload; *n is at most max. */
bool wire_reader__blob(struct wire_reader *r, const uint8_t **p, uint32_t *n, uint32_t max);
/* True if every field was there and nothing is left over. */
static inline bool wire_reader__done(const struct wire_reader *r)
{
	return r->ok && r->left == 0;
}

/* ---- links (link.c) --------------------------------------------------------
 * A ZeroMQ socket that speaks wire frames: the coordinator listens (ROUTER)
 * and answers each peer by its sender id; a node connects (DEALER). Every
 * frame received goes through a wire_guard: what it refuses is counted and
 * dropped, and never reaches the caller. */

struct link;
struct link *link__listen(const char *endpoint, const struct wire_key *key, uint32_t self,
			  char *err, size_t errlen);
struct link *link__connect(const char *endpoint, const struct wire_key *key, uint32_t self,
			   char *err, size_t errlen);
/* Sends a message; to: the peer's sender id on a listening link (it must
 * have been heard from), ignored on a connected one. */
int link__send(struct link *l, uint32_t to, enum wire_type type, const void *payload,
	       uint32_t len, char *err, size_t errlen);
/* The next accepted message, waiting up to timeout_ms (-1: forever): 1, 0
 * on timeout, -1 with err. m->payload stays valid until the next call. */
int link__recv(struct link *l, struct wire_msg *m, int timeout_ms, char *err, size_t errlen);
/* Frames received so far, by verdict. */
const struct wire_guard *link__guard(const struct link *l);
/* Where a listening link is bound, a wildcard port resolved
 * ("tcp://10.0.0.2:*" becomes "tcp://10.0.0.2:41234"). */
int link__endpoint(const struct link *l, char *out, size_t len, char *err, size_t errlen);
void link__close(struct link *l);

/* ---- pages between peers (pages.c) ----------------------------------------
 * Guest page contents move by content hash (checkpoint.h's XXH3-128).
 * Every peer keeps the pages it fetched in a page cache and serves them;
 * the vnode's peer (id PAGE_VNODE_ID) serves every page of the recording.
 * The directory of who holds what is implicit: for each hash, the live
 * peers ranked by rendezvous hashing of (hash, peer id); the first is the
 * hash's home. A node asks the home, and a home that lacks the page
 * fetches it from the vnode, once, and keeps it. So the vnode sends each
 * content about once, however many nodes there are. A peer that does not
 * answer is dropped from the ranking and the next one becomes home; the
 * vnode is the last resort. Zero pages never travel (manifests say which
 * pages are zero). Pages travel lz4-compressed in PAGE_DATA, each one's
 * hash checked on arrival.
 *   PAGE_REQUEST: u32 tag, u8 flags (1: fetch through), u32 n, n hashes
 *                 (u64 lo, u64 hi);
 *   PAGE_DATA:    u32 tag, u32 n, n times: hash, u8 status (0: data, then a
 *                 blob of lz4 bytes; 1: not held). */

#define PAGE_VNODE_ID 0u
#define PAGE_MAX_PEERS 64u
#define PAGE_MAX_REQUEST 1024u
#define PAGE_ENDPOINT_MAX 256u

/* Page contents by hash, lz4-compressed in memory, at most max_bytes of
 * them (0: no bound; past it the least recently used go); thread-safe. */
struct page_cache;
struct page_cache *page_cache__new(uint64_t max_bytes);
void page_cache__free(struct page_cache *c);
/* Keeps a page's 4096 bytes, whose hash is h. */
void page_cache__put(struct page_cache *c, const struct ckpt_hash *h, const void *page);
/* 1 with the page, 0 if not held, -1 if what is held is damaged. */
int page_cache__get(struct page_cache *c, const struct ckpt_hash *h, void *page);
/* What it holds now, and how many pages it evicted so far. */
void page_cache__stats(struct page_cache *c, uint64_t *pages, uint64_t *bytes,
			uint64_t *evicted);

struct page_peer {
	uint32_t id;
	char endpoint[PAGE_ENDPOINT_MAX];
};

/* Fetches pages for one peer (self) from the others; thread-safe, one
 * request at a time. What it fetches goes into the cache. */
struct page_client;
struct page_client *page_client__new(const struct wire_key *key, uint32_t self,
				     struct page_cache *cache);
void page_client__free(struct page_client *c);
/* The peers, the vnode among them; replaces the previous list, keeping the
 * connections (and what it learned of liveness) of peers still in it. */
int page_client__set_peers(struct page_client *c, const struct page_peer *peers, unsigned n);
/* Pages h[0..n) into out (n * 4096 bytes): from the cache, the hash's
 * home, or the vnode. -1 with err if some page could not be had. */
int page_client__get(struct page_client *c, const struct ckpt_hash *h, unsigned n,
		     uint8_t *out, char *err, size_t errlen);
struct page_client_stats {
	uint64_t cache_hits;        /* pages found in the cache */
	uint64_t bytes_received;    /* PAGE_DATA payload bytes, all peers */
	uint64_t peers_lost;        /* peers dropped for not answering */
};
/* Its totals, and bytes received per peer through per_peer (optional). */
void page_client__stats(struct page_client *c, struct page_client_stats *s,
			void (*per_peer)(void *ctx, uint32_t peer, uint64_t bytes), void *ctx);

/* Answers PAGE_REQUEST on a thread of its own. */
struct page_server_options {
	const char *endpoint;       /* to bind; a tcp port may be "*" */
	const struct wire_key *key;
	uint32_t self;
	struct page_cache *cache;   /* a node's: what it serves */
	struct page_client *upstream; /* a node's: fetches through to the vnode */
	const char *recording;      /* the vnode's: serves every page of it,
				       following it as it grows */
};
struct page_server;
struct page_server *page_server__start(const struct page_server_options *o, char *err,
				       size_t errlen);
const char *page_server__endpoint(const struct page_server *s);
struct page_server_stats {
	uint64_t sent_bytes, sent_pages, requests;
	uint64_t malformed;                       /* authentic requests that did not parse */
	uint64_t refused[WIRE_VERDICT__COUNT];    /* frames by verdict, [WIRE_OK] accepted */
};
void page_server__stats(struct page_server *s, struct page_server_stats *stats);
void page_server__stop(struct page_server *s, struct page_server_stats *stats);

/* ---- message payloads (message.c) -------------------------------------------
 * Each type's payload is written and parsed here only. A parser returns
 * false for a payload that is short, has bytes left over, or breaks a
 * limit; the caller drops the message, as a refused frame is dropped. */

void msg__hello_write(struct wire_writer *w, const char *pages_endpoint);
/* An empty payload is a node that serves no pages: "" */
bool msg__hello_parse(const struct wire_msg *m, char pages_endpoint[PAGE_ENDPOINT_MAX]);

struct msg_assign {
	uint32_t interval;
	unsigned npeers;
	struct page_peer peers[PAGE_MAX_PEERS];
};
void msg__assign_write(struct wire_writer *w, const struct msg_assign *a);
bool msg__assign_parse(const struct wire_msg *m, struct msg_assign *a);

struct msg_result {
	uint32_t interval;
	bool ran;                   /* false: the node failed to run it */
	const uint8_t *json;        /* the result; parsing points into the message */
	uint32_t len;
};
void msg__result_write(struct wire_writer *w, const struct msg_result *r);
bool msg__result_parse(const struct wire_msg *m, struct msg_result *r);

/* A node whose machine does not hold the recording asks the coordinator
 * for the files it replays from, and sends back what its intervals
 * produced (a node that shares the recording's filesystem does neither):
 *   FILE_REQUEST: u32 tag, blob name, u64 offset. The name is one of the
 *                 recording's own files: recording.meta, NNNNNN.manifest,
 *                 NNNNNN.log (never a path, never a pack), or plugin.N,
 *                 the run's Nth plugin (its analyses, then its QEMU
 *                 plugins, from 0).
 *   FILE_DATA:    u32 tag, u8 status (0: data; 1: no such file), u64 the
 *                 file's size, u64 offset, blob of at most MSG_FILE_CHUNK
 *                 bytes from offset.
 *   OUTPUT:       u32 interval, u8 kind, blob name (a plain file name:
 *                 letters, digits, '.', '-', '_', not starting with '.'),
 *                 u64 the file's size, u64 offset, blob of at most
 *                 MSG_FILE_CHUNK bytes from offset; a file in order, in
 *                 as many as it takes, all sent before the interval's
 *                 RESULT. */
#define MSG_FILE_CHUNK (8u << 20)
#define MSG_NAME_MAX 200u

struct msg_file_request {
	uint32_t tag;
	char name[MSG_NAME_MAX + 1];
	uint64_t offset;
};
void msg__file_request_write(struct wire_writer *w, const struct msg_file_request *q);
bool msg__file_request_parse(const struct wire_msg *m, struct msg_file_request *q);

struct msg_file_data {
	uint32_t tag;
	bool missing;
	uint64_t size, offset;
	const uint8_t *bytes;       /* parsing points into the message */
	uint32_t len;
};
void msg__file_data_write(struct wire_writer *w, const struct msg_file_data *d);
bool msg__file_data_parse(const struct wire_msg *m, struct msg_file_data *d);

enum msg_output_kind {
	MSG_OUTPUT_STATE,           /* an analysis state */
	MSG_OUTPUT_QEMU_LOG,        /* what a plain QEMU plugin printed */
	MSG_OUTPUT_TRACE,           /* an interval's trace */
	MSG_OUTPUT__COUNT
};
struct msg_output {
	uint32_t interval;
	enum msg_output_kind kind;
	char name[MSG_NAME_MAX + 1];
	uint64_t size, offset;      /* the whole file's, and this part's */
	const uint8_t *bytes;       /* parsing points into the message */
	uint32_t len;
};
void msg__output_write(struct wire_writer *w, const struct msg_output *o);
bool msg__output_parse(const struct wire_msg *m, struct msg_output *o);

#define MSG_PAGE_FETCH_THROUGH 1u
#define MSG_PAGE_MAX_LZ4 (CKPT_PAGE_SIZE + CKPT_PAGE_SIZE / 255 + 16) /* LZ4_COMPRESSBOUND */

struct msg_page_request {
	uint32_t tag, n;
	uint8_t flags;
	const uint8_t *hashes;      /* n of 16 bytes, in the message */
};
/* Hashes h[which[i]] (or h[i] if which is NULL) for i < n. */
void msg__page_request_write(struct wire_writer *w, uint32_t tag, uint8_t flags,
			     const struct ckpt_hash *h, const unsigned *which, unsigned n);
bool msg__page_request_parse(const struct wire_msg *m, struct msg_page_request *q);
struct ckpt_hash msg__page_request_hash(const struct msg_page_request *q, uint32_t i);

/* PAGE_DATA: begin, then one add per hash asked (lz4 NULL: not held). */
void msg__page_data_begin(struct wire_writer *w, uint32_t tag, uint32_t n);
void msg__page_data_add(struct wire_writer *w, const struct ckpt_hash *h, const void *lz4,
			uint32_t len);
/* Its head; then msg__page_data_next on rest, n times: 1 with the page's
 * lz4 bytes, 0 if the peer does not hold it, -1 if malformed. */
bool msg__page_data_parse(const struct wire_msg *m, uint32_t *tag, uint32_t *n,
			  struct wire_reader *rest);
int msg__page_data_next(struct wire_reader *r, struct ckpt_hash *h, const uint8_t **lz4,
			uint32_t *len);

/* ---- the schedule (schedule.c) --------------------------------------------
 * Which interval of a run each node simulates: the coordinator's state. An
 * interval is pending, running on one node, or done. A lost node's
 * intervals are pending again, first in line; a result is taken once, so
 * one that arrives late from a node presumed lost, or twice, is dropped. A
 * run that fails (the node's error, not a divergence, which is a result)
 * is retried elsewhere up to SCHED_ATTEMPTS times. The state survives a
 * coordinator restart through sched__save and sched__load. */

#define SCHED_ATTEMPTS 3u

enum sched_state { SCHED_PENDING, SCHED_RUNNING, SCHED_DONE, SCHED_FAILED };

struct sched;
struct sched *sched__new(uint32_t first, uint32_t last);
void sched__free(struct sched *s);
/* Adds intervals up to last (exclusive), pending: a recording that grows.
 * -1 if out of memory (nothing changed that matters). */
int sched__extend(struct sched *s, uint32_t last);
/* How much of interval's pages node holds (higher: better); NULL: none. */
typedef double (*sched_affinity_fn)(void *ctx, uint32_t node, uint32_t interval);
/* An interval for an idle node: the pending one it has the most pages of,
 * the earliest among equals. 1 with *interval, 0 if none is pending. */
int sched__next(struct sched *s, uint32_t node, sched_affinity_fn affinity, void *ctx,
		uint32_t *interval);
/* node's result for interval: ok, or its run failed. 1 if taken, 0 if
 * dropped (not running there: late, twice, or never assigned). */
int sched__done(struct sched *s, uint32_t node, uint32_t interval, bool ok);
/* node is gone: what ran there is pending again. Returns how many. */
unsigned sched__node_lost(struct sched *s, uint32_t node);
/* A finished interval (done or failed) pending again, first in line, its
 * attempts forgotten: its result was lost. 1, or 0 if it was not finished. */
int sched__redo(struct sched *s, uint32_t interval);
enum sched_state sched__state(const struct sched *s, uint32_t interval, uint32_t *node,
			      unsigned *attempts);
/* Intervals in each state. */
void sched__counts(const struct sched *s, unsigned counts[4]);
bool sched__finished(const struct sched *s);
/* On disk, atomically; versioned and checksummed. Loading makes running
 * intervals pending: their nodes are not known to the new coordinator. */
int sched__save(const struct sched *s, const char *path, char *err, size_t errlen);
struct sched *sched__load(const char *path, char *err, size_t errlen);

/* ---- the coordinator (coordinator.c) ---------------------------------------
 * Runs a simulation's schedule over a listening link: a node says HELLO
 * (a blob: where it serves pages, maybe empty) and gets WELCOME with the
 * run's settings (a JSON text the nodes understand), then ASSIGN messages,
 * one interval at a time (u32 interval, u32 n, n peers: u32 id, blob
 * endpoint; the vnode and the nodes not gone), each answered by RESULT
 * (u32 interval, u8 ran, blob: the interval's result as JSON). A pending
 * interval goes to the idle node that ran the intervals nearest it, whose
 * cache holds most of its pages. When every interval is done, each node
 * gets BYE. */

struct coord_options {
	const char *endpoint;
	const struct wire_key *key;
	uint32_t first, last;
	const char *settings;       /* JSON text for WELCOME */
	const char *pages_endpoint; /* the vnode's page server, sent with each ASSIGN */
	struct wire_guard *guard;   /* if set, gets the frames received by verdict */
	/* If set, gets how many authentic messages were dropped: malformed,
	 * from a sender that never said HELLO, or about an interval that was
	 * not the sender's (a late or second result). */
	uint64_t *dropped;
	const char *state_path;     /* the schedule, saved after each result; NULL: none */
	const char *results_dir;    /* each interval's result, NNNNNN.json, with state_path */
	bool resume;                /* start from state_path and results_dir */
	/* Nodes that are gone (a process that ended, a host that went
	 * silent): called while waiting, fills lost[] and returns how many. */
	unsigned (*lost)(void *ctx, uint32_t *lost, unsigned max);
	void (*progress)(void *ctx, unsigned done, unsigned total);
	/* A recording still being made (NULL: last is fixed): called while
	 * waiting, returns how many intervals are committed now (at least
	 * last), and sets *complete once no more will come. */
	uint32_t (*available)(void *ctx, bool *complete);
	void *ctx;
	/* For nodes whose machine does not hold the recording: its directory
	 * (FILE_REQUEST is answered from it; NULL: refused), the run's plugin
	 * files, and where their OUTPUT goes, by kind (NULL: refused). */
	const char *recording;
	const char *const *plugins;  /* plugin.N's files */
	unsigned nplugins;
	const char *output_dirs[MSG_OUTPUT__COUNT];
};

/* The results of every interval, in order ({interval, verdict, ...} as the
 * nodes sent them), or NULL with err. Stops with an error once no node is
 * left while intervals are pending and none joins within idle_s seconds. */
struct json_t *coord__run(const struct coord_options *o, double idle_s, char *err,
			  size_t errlen);

#endif
