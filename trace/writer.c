/* Writing a trace: appended records wait in a stage; a full stage is
 * queued for the writer's thread, which encodes its records into chunks
 * and compresses, checksums and writes each full chunk, while the caller
 * fills the next stage (encoding, lz4 and write() would otherwise take
 * most of a traced replay's time). A third thread, the syncer, flushes the
 * file as it grows. Commit hands the last stage over, waits for the
 * threads, adds the index and footer under a temporary name, syncs and
 * renames the file into place. See format.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lz4.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "format.h"
#include "trace.h"

/* A chunk's records, encoded, and what its header says. */
struct chunk {
	uint8_t *raw;
	uint32_t raw_len, records;
	uint64_t first, end;            /* icounts at its start and end */
};

/* The encoder's state in the chunk being filled. */
struct enc {
	uint8_t *raw;                   /* the chunk's bytes, */
	uint32_t len;                   /* how many */
	uint32_t records, insns;        /* added since enc_begin */
	uint64_t serial;                /* the chunk's, unique: the blocks it defines carry it */
	uint32_t nblocks;               /* how many */
	uint32_t run_left;              /* the last run's instructions after its last access */
	uint64_t next_pc;               /* after the chunk's last instruction, */
	bool have_next;                 /* if it has one */
	uint64_t mem_vaddr, mem_delta;  /* the chunk's last access: vaddr, paddr - vaddr */
	struct trace_value_slot *values; /* the writer's */
};

/* Appended records waiting for the thread: batches of runs with their
 * accesses, and records alone, in order. Small, as an analysis that wants
 * records one by one makes every record one item. */
struct stage {
	struct item {
		enum { ITEM_BATCH, ITEM_INSN, ITEM_MEM, ITEM_EVENT } kind;
		uint8_t size, cpl;      /* an instruction's */
		unsigned nruns, nacc;   /* the stage's next runs and accesses: a batch's,
					 * or a memory record's one access */
		union {
			uint64_t pc;    /* an instruction's */
			uint64_t insns; /* a batch's, in its runs */
		};
	} *items;
	struct trace_block_run *runs;
	struct trace_access *acc;
	struct trace_record *events; /* an event item's is the next */
	unsigned nitems, nruns, nacc, nevents;
	unsigned items_cap, runs_cap, acc_cap, events_cap;
};

/* A stage goes to the thread once it holds this many accesses (256 KiB),
 * runs or items: a hand-over, a lock and a wake-up, for every replay
 * batch of 512 accesses would be a good part of encoding it. */
#define STAGE_ACCESSES 8192u
#define STAGE_RUNS 4096u
#define STAGE_ITEMS 8192u
/* Stages in all: one filled, the others queued for the thread. The
 * caller's and the thread's speeds vary along a replay (pure computation,
 * then many new values to encode); with one stage queued each waited for
 * the other, the caller a tenth of a traced replay. */
#define STAGE_QUEUE 8u
/* The syncer thread flushes the file to the disk every this many bytes
 * written. A replay's trace is large (0.7 GB for a second of guest time),
 * and one fsync of it all at commit took half a second of a 3.4 s traced
 * replay: on these virtual machines the flush goes on to the host's disk. */
#define SYNC_BYTES (64u << 20)

struct trace_writer {
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	int fd;
	uint32_t interval;
	bool failed;
	/* The caller appends to stages[filling]; the `queued` stages before
	 * it (in a ring) wait for the thread, the oldest first. */
	struct stage stages[STAGE_QUEUE];
	unsigned filling;               /* the caller's own */
	uint64_t staged_insns, staged_records; /* appended so far */
	pthread_t thread;
	bool thread_running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned queued;                /* under lock, with what follows */
	bool stop, aborting, thread_failed;
	char thread_err[512];
	/* the syncer: fdatasync when asked, while the thread goes on writing */
	pthread_t syncer;
	bool syncer_running;
	pthread_cond_t sync_cond;
	bool sync_wanted, sync_stop;    /* under lock, */
	int sync_errno;                 /* with its first failure */
	uint64_t sync_asked;            /* the thread's: the offset it last asked at */
	/* the thread's side until it is joined: the chunk, the file and the index */
	struct chunk fill;              /* the chunk being encoded into */
	struct enc at;                  /* its encoder's state (raw and len: fill's) */
	struct trace_value_slot values[TRACE_VALUE_SLOTS]; /* its last value at each vaddr slot */
	uint64_t insns, records, raw_total; /* encoded so far */
	uint64_t item_records;          /* records of the items encoded, as staged_records counts */
	uint64_t offset;                /* file bytes written */
	uint64_t *index;                /* pairs: offset, first icount */
	size_t nchunks, index_cap;
	char *compressed;
	int compressed_cap;
};

static int write_bytes(struct trace_writer *w, const void *buf, size_t len, char *err,
		       size_t errlen)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = write(w->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "%s: write: %s", w->tmp, n ? strerror(errno) : "no space");
			return -1;
		}
		p += n;
		len -= (size_t)n;
		w->offset += (uint64_t)n;
	}
	return 0;
}

/* Compresses c, indexes it and writes it (the thread). */
static int write_chunk(struct trace_writer *w, const struct chunk *c, char *err, size_t errlen)
{
	uint8_t hdr[TRACE_CHUNK_HDR_SIZE];

	/* Acceleration 6: on a replay's trace (format 4) 1.7 times as fast as
	 * the default, 1309 against 788 MiB/s, for 3% more bytes (ratio 1.37
	 * against 1.42); 2 gave 1069 MiB/s. The writer's thread is as busy as
	 * the replay's. */
	int clen = LZ4_compress_fast((const char *)c->raw, w->compressed, (int)c->raw_len,
				     w->compressed_cap, 6);
	if (clen <= 0) {
		snprintf(err, errlen, "%s: chunk %zu: lz4 compression failed", w->tmp, w->nchunks);
		return -1;
	}
	if (w->nchunks == w->index_cap) {
		size_t cap = w->index_cap ? w->index_cap * 2 : 64;
		uint64_t *idx = realloc(w->index, cap * 2 * sizeof(*idx));
		if (!idx) {
			snprintf(err, errlen, "%s: chunk index: out of memory", w->tmp);
			return -1;
		}
		w->index = idx;
		w->index_cap = cap;
	}
	w->index[2 * w->nchunks] = w->offset;
	w->index[2 * w->nchunks + 1] = c->first;
	w->nchunks++;

	memcpy(hdr, TRACE_CHUNK_MAGIC, 4);
	trace__put32(hdr + 4, c->raw_len);
	trace__put32(hdr + 8, (uint32_t)clen);
	trace__put32(hdr + 12, c->records);
	trace__put64(hdr + 16, c->first);
	trace__put64(hdr + 24, c->end);
	XXH3_state_t st;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, hdr, 32);
	XXH3_64bits_update(&st, w->compressed, (size_t)clen);
	trace__put64(hdr + 32, XXH3_64bits_digest(&st));
	if (write_bytes(w, hdr, sizeof(hdr), err, errlen) != 0 ||
	    write_bytes(w, w->compressed, (size_t)clen, err, errlen) != 0)
		return -1;
	if (w->offset - w->sync_asked >= SYNC_BYTES) {
		pthread_mutex_lock(&w->lock);
		w->sync_wanted = true;
		pthread_cond_signal(&w->sync_cond);
		pthread_mutex_unlock(&w->lock);
		w->sync_asked = w->offset;
	}
	return 0;
}

/* Flushes what the thread wrote so far, when it asks: commit's fsync
 * then has little left. A failure is kept for commit: a second fsync
 * after one failed may succeed with the data lost. */
static void *syncer_thread(void *arg)
{
	struct trace_writer *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->sync_wanted && !w->sync_stop)
			pthread_cond_wait(&w->sync_cond, &w->lock);
		if (w->sync_stop)
			break;
		w->sync_wanted = false;
		pthread_mutex_unlock(&w->lock);
		int rc = fdatasync(w->fd);
		pthread_mutex_lock(&w->lock);
		if (rc != 0 && !w->sync_errno)
			w->sync_errno = errno;
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* A block is defined in the chunk that carries its serial: unique over
 * the process, as blocks go from one writer to the next (a replay's
 * intervals), and a writer may take the place of one freed. */
static uint64_t new_serial(void)
{
	static _Atomic uint64_t serials;
	return atomic_fetch_add(&serials, 1) + 1;
}

/* Writes the filled chunk and starts the next one (the thread). */
static int end_chunk(struct trace_writer *w, char *err, size_t errlen)
{
	if (!w->fill.raw_len)
		return 0;
	w->fill.end = w->insns;
	int rc = write_chunk(w, &w->fill, err, errlen);
	w->raw_total += w->fill.raw_len;
	w->fill = (struct chunk){ .raw = w->fill.raw, .first = w->insns };
	w->at = (struct enc){ .serial = new_serial() };
	memset(w->values, 0, sizeof(w->values));
	return rc;
}

static int encode_stage(struct trace_writer *w, const struct stage *st, char *err,
			size_t errlen);

static void *writer_thread(void *arg)
{
	struct trace_writer *w = arg;
	char err[512];
	int rc;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->queued && !w->stop)
			pthread_cond_wait(&w->cond, &w->lock);
		if (!w->queued)
			break;
		/* the caller leaves queued stages alone */
		struct stage *job = &w->stages[(w->filling + STAGE_QUEUE - w->queued) % STAGE_QUEUE];
		bool skip = w->thread_failed || w->aborting;
		pthread_mutex_unlock(&w->lock);
		rc = skip ? 0 : encode_stage(w, job, err, sizeof(err));
		job->nitems = job->nruns = job->nacc = job->nevents = 0;
		pthread_mutex_lock(&w->lock);
		if (rc != 0) {
			w->thread_failed = true;
			memcpy(w->thread_err, err, sizeof(err));
		}
		w->queued--;
		pthread_cond_broadcast(&w->cond);
	}
	/* stopped: the last chunk */
	bool skip = w->thread_failed || w->aborting;
	pthread_mutex_unlock(&w->lock);
	if (!skip && end_chunk(w, err, sizeof(err)) != 0) {
		pthread_mutex_lock(&w->lock);
		w->thread_failed = true;
		memcpy(w->thread_err, err, sizeof(err));
		pthread_mutex_unlock(&w->lock);
	}
	return NULL;
}

/* Queues the stage being filled for the thread, and goes on to the next
 * one once the thread has emptied it. */
static int hand_over(struct trace_writer *w, char *err, size_t errlen)
{
	int rc = 0;

	if (!w->stages[w->filling].nitems)
		return 0;
	pthread_mutex_lock(&w->lock);
	while (w->queued == STAGE_QUEUE - 1)
		pthread_cond_wait(&w->cond, &w->lock);
	if (w->thread_failed) {
		snprintf(err, errlen, "%s", w->thread_err);
		w->failed = true;
		rc = -1;
	} else {
		w->queued++;
		w->filling = (w->filling + 1) % STAGE_QUEUE;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return rc;
}

/* Room in the stage for one more item of nruns runs, nacc accesses and
 * nevents events. */
static int stage_room(struct stage *st, unsigned nruns, unsigned nacc, unsigned nevents)
{
#define GROW(arr, cap, want)                                                            \
	if ((want) > st->cap) {                                                         \
		unsigned c = st->cap ? 2 * st->cap : 64;                                \
		while (c < (want))                                                      \
			c *= 2;                                                         \
		void *more = realloc(st->arr, c * sizeof(*st->arr));                    \
		if (!more)                                                              \
			return -1;                                                      \
		st->arr = more;                                                         \
		st->cap = c;                                                            \
	}
	GROW(items, items_cap, st->nitems + 1)
	GROW(runs, runs_cap, st->nruns + nruns)
	GROW(acc, acc_cap, st->nacc + nacc)
	GROW(events, events_cap, st->nevents + nevents)
#undef GROW
	return 0;
}

static void stage_free(struct stage *st)
{
	free(st->items);
	free(st->runs);
	free(st->acc);
	free(st->events);
}

/* Waits for the thread to write what it was given, and ends it. */
static void stop_thread(struct trace_writer *w)
{
	if (w->thread_running) {
		pthread_mutex_lock(&w->lock);
		w->stop = true;
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
		w->thread_running = false;
	}
	if (w->syncer_running) { /* after the thread, which asks it */
		pthread_mutex_lock(&w->lock);
		w->sync_stop = true;
		pthread_cond_signal(&w->sync_cond);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->syncer, NULL);
		w->syncer_running = false;
	}
}

static void destroy(struct trace_writer *w)
{
	stop_thread(w);
	if (w->fd >= 0)
		close(w->fd);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	pthread_cond_destroy(&w->sync_cond);
	free(w->fill.raw);
	for (unsigned i = 0; i < STAGE_QUEUE; i++)
		stage_free(&w->stages[i]);
	free(w->index);
	free(w->compressed);
	free(w);
}

struct trace_writer *trace_writer__create(const char *path, uint32_t interval, char *err,
					  size_t errlen)
{
	struct trace_writer *w = calloc(1, sizeof(*w));
	uint8_t hdr[TRACE_HDR_SIZE] = { 0 };

	if (!w || strlen(path) >= sizeof(w->path)) {
		snprintf(err, errlen, "%s: %s", path, w ? "path too long" : "out of memory");
		free(w);
		return NULL;
	}
	strcpy(w->path, path);
	snprintf(w->tmp, sizeof(w->tmp), "%s.tmp", path);
	w->interval = interval;
	w->at.serial = new_serial();
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	pthread_cond_init(&w->sync_cond, NULL);
	w->compressed_cap = LZ4_compressBound(TRACE_CHUNK_RAW_MAX);
	w->compressed = malloc((size_t)w->compressed_cap);
	w->fill.raw = malloc(TRACE_CHUNK_RAW_MAX);
	w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (!w->compressed || !w->fill.raw || w->fd < 0) {
		snprintf(err, errlen, "%s: %s", w->tmp, strerror(w->fd < 0 ? errno : ENOMEM));
		destroy(w);
		return NULL;
	}
	memcpy(hdr, TRACE_MAGIC, 8);
	trace__put32(hdr + 8, TRACE_FORMAT_VERSION);
	trace__put32(hdr + 12, interval);
	trace__put32(hdr + 16, TRACE_CHUNK_RAW_MAX);
	trace__put64(hdr + 24, XXH3_64bits(hdr, 24));
	int rc = write_bytes(w, hdr, sizeof(hdr), err, errlen);
	if (rc == 0 && (rc = pthread_create(&w->syncer, NULL, syncer_thread, w)) != 0)
		snprintf(err, errlen, "%s: thread: %s", w->tmp, strerror(rc));
	w->syncer_running = rc == 0;
	if (rc == 0 && (rc = pthread_create(&w->thread, NULL, writer_thread, w)) != 0)
		snprintf(err, errlen, "%s: thread: %s", w->tmp, strerror(rc));
	w->thread_running = rc == 0;
	if (rc != 0) {
		trace_writer__abort(w);
		return NULL;
	}
	return w;
}

/* An event record after its type byte. */
static void put_wide(uint8_t *p, uint8_t b1, uint8_t b2, uint64_t x, uint64_t y, uint64_t z)
{
	p[1] = b1;
	p[2] = b2;
	trace__put64(p + 3, x);
	trace__put64(p + 11, y);
	trace__put64(p + 19, z);
}

static bool failed_before(const struct trace_writer *w, char *err, size_t errlen)
{
	if (w->failed)
		snprintf(err, errlen, "%s: record %" PRIu64 ": the writer failed before", w->tmp,
			 w->staged_records);
	return w->failed;
}

/* Room in the chunk for one more record (the thread). */
static int room(struct trace_writer *w, char *err, size_t errlen)
{
	if (w->fill.raw_len + TRACE_RECORD_MAX > TRACE_CHUNK_RAW_MAX)
		return end_chunk(w, err, errlen);
	return 0;
}

/* Refuses record number `record` (from the trace's first) for why. */
static int bad_record(const struct trace_writer *w, uint64_t record, const char *why, char *err,
		      size_t errlen)
{
	snprintf(err, errlen, "%s: record %" PRIu64 ": %s", w->tmp, record, why);
	return -1;
}

/* The encoder's state, out of the writer for a run of records: kept in
 * registers, as stores through the chunk's bytes could alias w. */
static struct enc enc_begin(const struct trace_writer *w)
{
	struct enc e = w->at;
	e.raw = w->fill.raw;
	e.len = w->fill.raw_len;
	e.values = (struct trace_value_slot *)w->values;
	e.records = e.insns = 0;
	return e;
}

/* Puts the state back, with the records and instructions added. */
static void enc_end(struct trace_writer *w, const struct enc *e)
{
	w->at = *e;
	w->fill.raw_len = e->len;
	w->fill.records += e->records;
	w->records += e->records;
	w->insns += e->insns;
}

/* Ends the chunk: the state goes back, and comes out for the next one.
 * By value: a state whose address is taken stays in memory, reloaded after
 * every byte stored through its raw pointer. */
static struct enc next_chunk(struct trace_writer *w, struct enc e, int *rc, char *err,
			     size_t errlen)
{
	enc_end(w, &e);
	*rc = end_chunk(w, err, errlen);
	return enc_begin(w);
}

static inline void put_varint(uint8_t *p, uint32_t *n, uint64_t v)
{
	do {
		p[(*n)++] = (uint8_t)((v & 0x7f) | (v > 0x7f) << 7);
		v >>= 7;
	} while (v);
}

/* The encoders: records into the chunk, which has room for them. */
static inline void enc_insn(struct enc *e, uint64_t pc, uint8_t size, uint8_t cpl)
{
	uint8_t *p = e->raw + e->len;
	if (e->have_next && pc == e->next_pc) {
		p[0] = TRACE_REC_NEXT;
		p[1] = (uint8_t)(size | cpl << 4);
		e->len += TRACE_NEXT_SIZE;
	} else {
		p[0] = TRACE_INSN;
		trace__put64(p + 1, pc);
		p[9] = size;
		p[10] = cpl;
		e->len += TRACE_INSN_SIZE;
	}
	e->next_pc = pc + size;
	e->have_next = true;
	e->run_left = 0;
	e->records++;
	e->insns++;
}

/* An access `advance` instructions of the chunk's last run after the
 * record before it, at p, against the chunk's state: its last access's
 * vaddr and distance to the paddr, the last value at each vaddr slot
 * (format.h). Returns where the next record goes. */
static inline uint8_t *put_mem(uint8_t *p, uint32_t advance, uint64_t vaddr, uint64_t paddr,
			       uint64_t value, unsigned size, bool write, uint64_t *last_vaddr,
			       uint64_t *distance, struct trace_value_slot *values)
{
	if (paddr - vaddr != *distance) {
		*distance = paddr - vaddr;
		p[0] = TRACE_REC_DISTANCE;
		trace__put64(p + 1, *distance);
		p += TRACE_DISTANCE_SIZE;
	}
	struct trace_value_slot *slot = &values[trace__value_slot(vaddr)];
	bool repeated = slot->vaddr == vaddr && slot->value == value;
	slot->vaddr = vaddr;
	slot->value = value;
	uint64_t d = vaddr - *last_vaddr, zz = d << 1 ^ (uint64_t)((int64_t)d >> 63);
	*last_vaddr = vaddr;
	p[0] = (uint8_t)(TRACE_REC_MEM | __builtin_ctz(size) | write << 2 | repeated << 3 |
			 (advance < 7 ? advance : 7) << 4);
	uint32_t n = 1;
	if (advance >= 7)
		put_varint(p, &n, advance - 7);
	put_varint(p, &n, zz);
	if (repeated)
		return p + n;
	trace__put64(p + n, value); /* the chunk has room for 8 */
	return p + n + size;
}

static inline void enc_mem(struct enc *e, uint32_t advance, uint64_t vaddr, uint64_t paddr,
			   uint64_t value, unsigned size, bool write)
{
	uint8_t *end = put_mem(e->raw + e->len, advance, vaddr, paddr, value, size, write,
			       &e->mem_vaddr, &e->mem_delta, e->values);
	e->len = (uint32_t)(end - e->raw);
	e->records++;
}

/* A record alone (the thread). */
static int encode_record(struct trace_writer *w, const struct trace_record *rec, char *err,
			 size_t errlen)
{
	if (room(w, err, errlen) != 0)
		return -1;
	switch (rec->kind) {
	case TRACE_INSN:
	case TRACE_MEM: {
		struct enc e = enc_begin(w);
		if (rec->kind == TRACE_INSN) {
			enc_insn(&e, rec->insn.pc, rec->insn.size, rec->insn.cpl);
		} else { /* after the last instruction appended, the run's last */
			enc_mem(&e, e.run_left, rec->mem.vaddr, rec->mem.paddr, rec->mem.value,
				rec->mem.size, rec->mem.write);
			e.run_left = 0;
		}
		enc_end(w, &e);
		break;
	}
	case TRACE_EVENT: {
		uint8_t *p = w->fill.raw + w->fill.raw_len;
		p[0] = TRACE_EVENT;
		put_wide(p, (uint8_t)rec->event.kind, rec->event.size, rec->event.a, rec->event.b,
			 rec->event.c);
		w->fill.raw_len += TRACE_EVENT_SIZE;
		if (rec->event.kind == TRACE_EV_SYSCALL) {
			for (unsigned i = 0; i < 6; i++)
				trace__put64(p + TRACE_EVENT_SIZE + 8 * i, rec->event.args[i]);
			w->fill.raw_len += TRACE_SYSCALL_SIZE - TRACE_EVENT_SIZE;
		}
		w->fill.records++;
		w->records++;
		w->at.run_left = 0; /* a run ends before any other record */
		break;
	}
	}
	return 0;
}

struct trace_block {
	unsigned n;
	struct trace_insn *insn;
	uint8_t *def;           /* its definition (format.h) */
	uint64_t serial;        /* the chunk that defines it, */
	uint32_t id;            /* as which */
};

struct trace_block *trace_block__new(const struct trace_insn *insns, unsigned n, char *err,
				     size_t errlen)
{
	if (n < 1 || n > TRACE_BLOCK_MAX) {
		snprintf(err, errlen, "block of %u instructions, not 1..%u", n, TRACE_BLOCK_MAX);
		return NULL;
	}
	for (unsigned i = 0; i < n; i++) {
		const char *why = trace__insn_problem(insns[i].size, insns[i].cpl);
		if (!why && i && insns[i].pc != insns[i - 1].pc + insns[i - 1].size)
			why = "not where the one before ends";
		if (why) {
			snprintf(err, errlen, "block at 0x%" PRIx64 ": instruction %u: %s",
				 insns[0].pc, i, why);
			return NULL;
		}
	}
	struct trace_block *b = malloc(sizeof(*b));
	uint8_t *def = malloc(TRACE_BLOCK_HDR + n);
	struct trace_insn *copy = malloc(n * sizeof(*copy));
	if (!b || !def || !copy) {
		snprintf(err, errlen, "block: out of memory");
		free(b);
		free(def);
		free(copy);
		return NULL;
	}
	memcpy(copy, insns, n * sizeof(*copy));
	def[0] = TRACE_REC_BLOCK;
	trace__put64(def + 1, insns[0].pc);
	def[9] = (uint8_t)n;
	def[10] = (uint8_t)(n >> 8);
	for (unsigned i = 0; i < n; i++)
		def[TRACE_BLOCK_HDR + i] = (uint8_t)(insns[i].size | insns[i].cpl << 4);
	*b = (struct trace_block){ .n = n, .insn = copy, .def = def };
	return b;
}

void trace_block__free(struct trace_block *b)
{
	if (!b)
		return;
	free(b->insn);
	free(b->def);
	free(b);
}

/* Instructions from..to-1 of b, its definition first if the chunk has
 * none. */
static inline void enc_run(struct enc *e, struct trace_block *b, unsigned from, unsigned to)
{
	if (b->serial != e->serial) {
		memcpy(e->raw + e->len, b->def, TRACE_BLOCK_HDR + b->n);
		e->len += TRACE_BLOCK_HDR + b->n;
		b->serial = e->serial;
		b->id = e->nblocks++;
	}
	uint8_t *p = e->raw + e->len;
	uint32_t n = 1;
	if (from == 0 && to == b->n) {
		p[0] = TRACE_REC_RUN;
		put_varint(p, &n, b->id);
	} else {
		p[0] = TRACE_REC_PART;
		put_varint(p, &n, b->id);
		put_varint(p, &n, from);
		put_varint(p, &n, to - from);
	}
	e->len += n;
	e->records += to - from;
	e->insns += to - from;
	e->next_pc = b->insn[to - 1].pc + b->insn[to - 1].size;
	e->have_next = true;
}

/* Accesses a..end-1 of the run whose instruction `last` has the record
 * before, into a chunk with room for them all; returns the instruction of
 * the last. The hottest loop of a traced replay: its state in locals. */
static inline unsigned enc_accesses(struct enc *e, const struct trace_access *a,
				    const struct trace_access *end, uint64_t base, unsigned last)
{
	uint8_t *out = e->raw + e->len;
	uint64_t mem_vaddr = e->mem_vaddr, mem_delta = e->mem_delta;
	struct trace_value_slot *values = e->values;
	e->records += (uint32_t)(end - a);
	for (; a < end; a++) {
		unsigned idx = (unsigned)(a->insn - base);
		out = put_mem(out, idx - last, a->vaddr, a->paddr, a->value, a->size, a->write,
			      &mem_vaddr, &mem_delta, values);
		last = idx;
	}
	e->len = (uint32_t)(out - e->raw);
	e->mem_vaddr = mem_vaddr;
	e->mem_delta = mem_delta;
	return last;
}

/* Why runs are refused (the record number in *at), or NULL; their
 * instructions in *insns. */
static const char *runs_problem(const struct trace_block_run *runs, unsigned nruns, uint64_t *at,
				uint64_t *insns)
{
	*insns = 0;
	for (unsigned r = 0; r < nruns; r++) {
		if (runs[r].from > runs[r].to || runs[r].to > runs[r].block->n) {
			*at = *insns;
			return "instructions outside their block";
		}
		*insns += runs[r].to - runs[r].from;
	}
	return NULL;
}

/* Why the accesses after `total` instructions are refused (the record
 * number among them in *at), or NULL. */
static const char *accesses_problem(const struct trace_access *acc, unsigned m, uint64_t total,
				    uint64_t *at)
{
	for (unsigned k = 0; k < m; k++) {
		/* The caller's thread wrote them, on another core, whence each
		 * line comes: waiting for them was 15% of this thread's encoding
		 * samples, 3% with them asked for 4 KiB ahead (into the next
		 * batch: a prefetch never faults). */
		__builtin_prefetch((const void *)((uintptr_t)(acc + k) + 128 * sizeof(*acc)));
		const char *why = acc[k].insn >= total ? "memory access before its instruction" :
				  k && acc[k].insn < acc[k - 1].insn ? "memory accesses out of order" :
				  trace__mem_problem(acc[k].size, acc[k].value);
		if (why) {
			*at = (acc[k].insn < total ? acc[k].insn + 1 : total) + k;
			return why;
		}
	}
	return NULL;
}

/* A batch of runs with their accesses (the thread). */
static int encode_blocks(struct trace_writer *w, const struct trace_block_run *runs,
			 unsigned nruns, const struct trace_access *acc, unsigned m, char *err,
			 size_t errlen)
{
	struct enc e = enc_begin(w);
	uint64_t next = 0; /* the runs' instructions before this one's */
	unsigned k = 0;
	for (unsigned r = 0; r < nruns; r++) {
		struct trace_block *b = runs[r].block;
		unsigned i = runs[r].from, to = runs[r].to;
		uint64_t base = next - i; /* the number of b's instruction 0, modulo 2^64 */
		while (i < to) {
			/* instructions i..j-1, with their accesses k..kend-1 */
			unsigned j = to, kend = k;
			while (kend < m && acc[kend].insn - base < to)
				kend++;
			size_t def = b->serial == e.serial ? 0 : TRACE_BLOCK_HDR + b->n;
			bool fits = e.len + def + TRACE_RUN_MAX + (size_t)(kend - k) * TRACE_MEM_MAX <=
				    TRACE_CHUNK_RAW_MAX;
			if (!fits && e.len) {
				int rc;
				e = next_chunk(w, e, &rc, err, errlen);
				if (rc != 0)
					return -1;
				continue;
			}
			if (!fits) { /* more than a chunk: the instructions whose accesses fit, one at least */
				size_t room = TRACE_CHUNK_RAW_MAX - def - TRACE_RUN_MAX;
				unsigned kk = k;
				while (kk < kend && acc[kk].insn - base < i + 1)
					kk++;
				for (j = i + 1; j < to; j++) {
					unsigned kj = kk;
					while (kj < kend && acc[kj].insn - base < j + 1)
						kj++;
					if ((size_t)(kj - k) * TRACE_MEM_MAX > room)
						break;
					kk = kj;
				}
				kend = kk;
			}
			enc_run(&e, b, i, j);
			unsigned last = i; /* the instruction of the record before */
			if (fits) {
				last = enc_accesses(&e, acc + k, acc + kend, base, last);
				k = kend;
			}
			for (; k < kend; k++) {
				/* only the accesses of one instruction can fill a chunk,
				 * and those after it there have no run before them */
				if (e.len + TRACE_MEM_MAX > TRACE_CHUNK_RAW_MAX) {
					int rc;
					e = next_chunk(w, e, &rc, err, errlen);
					if (rc != 0)
						return -1;
				}
				unsigned idx = (unsigned)(acc[k].insn - base);
				enc_mem(&e, idx - last, acc[k].vaddr, acc[k].paddr, acc[k].value,
					acc[k].size, acc[k].write);
				last = idx;
			}
			e.run_left = j - 1 - last;
			next += j - i;
			i = j;
		}
	}
	enc_end(w, &e);
	return 0;
}

/* A batch after checking its accesses: here rather than in
 * trace_writer__append_blocks, on the replay's busy thread. */
static int encode_batch(struct trace_writer *w, const struct trace_block_run *runs,
			unsigned nruns, uint64_t insns, const struct trace_access *acc, unsigned m,
			char *err, size_t errlen)
{
	uint64_t at;
	const char *why = accesses_problem(acc, m, insns, &at);
	if (why)
		return bad_record(w, w->item_records + at, why, err, errlen);
	return encode_blocks(w, runs, nruns, acc, m, err, errlen);
}

static int encode_stage(struct trace_writer *w, const struct stage *st, char *err,
			size_t errlen)
{
	unsigned r = 0, k = 0, e = 0;
	for (unsigned i = 0; i < st->nitems; i++) {
		const struct item *it = &st->items[i];
		const struct trace_access *a = st->acc ? st->acc + k : NULL; /* none yet: NULL */
		struct trace_record rec = { .kind = TRACE_INSN,
					    .insn = { .pc = it->pc, .size = it->size, .cpl = it->cpl } };
		int rc;
		switch (it->kind) {
		case ITEM_BATCH:
			rc = encode_batch(w, st->runs + r, it->nruns, it->insns, a, it->nacc, err,
					  errlen);
			break;
		case ITEM_MEM:
			rec = (struct trace_record){ .kind = TRACE_MEM,
						     .mem = { .vaddr = a->vaddr, .paddr = a->paddr,
							      .value = a->value, .size = a->size,
							      .write = a->write } };
			rc = encode_record(w, &rec, err, errlen);
			break;
		case ITEM_EVENT:
			rc = encode_record(w, &st->events[e++], err, errlen);
			break;
		default:
			rc = encode_record(w, &rec, err, errlen);
			break;
		}
		if (rc != 0)
			return -1;
		r += it->nruns;
		k += it->nacc;
		w->item_records += it->kind == ITEM_BATCH ? it->insns + it->nacc : 1;
	}
	return 0;
}

/* The stage's next item, with room for nruns runs and nacc accesses, or
 * NULL with err; hands the stage over once it is full. */
static struct item *stage_item(struct trace_writer *w, unsigned nruns, unsigned nacc,
			       unsigned nevents, char *err, size_t errlen)
{
	struct stage *st = &w->stages[w->filling];
	if (st->nitems >= STAGE_ITEMS || st->nruns >= STAGE_RUNS || st->nacc >= STAGE_ACCESSES) {
		if (hand_over(w, err, errlen) != 0)
			return NULL;
		st = &w->stages[w->filling];
	}
	if (stage_room(st, nruns, nacc, nevents) != 0) {
		snprintf(err, errlen, "%s: record %" PRIu64 ": out of memory", w->tmp,
			 w->staged_records);
		w->failed = true;
		return NULL;
	}
	struct item *it = &st->items[st->nitems++];
	it->nruns = nruns;
	it->nacc = nacc;
	st->nruns += nruns;
	st->nacc += nacc;
	return it;
}

int trace_writer__append(struct trace_writer *w, const struct trace_record *rec, char *err,
			 size_t errlen)
{
	const char *why = trace__record_problem(rec);
	if (why)
		return bad_record(w, w->staged_records, why, err, errlen);
	if (failed_before(w, err, errlen))
		return -1;
	bool mem = rec->kind == TRACE_MEM, event = rec->kind == TRACE_EVENT;
	struct item *it = stage_item(w, 0, mem, event, err, errlen);
	if (!it)
		return -1;
	struct stage *st = &w->stages[w->filling];
	it->kind = mem ? ITEM_MEM : event ? ITEM_EVENT : ITEM_INSN;
	if (mem)
		st->acc[st->nacc - 1] = (struct trace_access){ .vaddr = rec->mem.vaddr,
							       .paddr = rec->mem.paddr,
							       .value = rec->mem.value,
							       .size = rec->mem.size,
							       .write = rec->mem.write };
	else if (event)
		st->events[st->nevents++] = *rec;
	else {
		it->size = rec->insn.size;
		it->cpl = rec->insn.cpl;
		it->pc = rec->insn.pc;
	}
	w->staged_records++;
	w->staged_insns += rec->kind == TRACE_INSN;
	return 0;
}

int trace_writer__append_blocks(struct trace_writer *w, const struct trace_block_run *runs,
				unsigned nruns, const struct trace_access *acc, unsigned m,
				char *err, size_t errlen)
{
	uint64_t at, insns;
	const char *why = runs_problem(runs, nruns, &at, &insns);
	if (!why && m && !insns) {
		why = "memory access before its instruction";
		at = 0;
	}
	if (why)
		return bad_record(w, w->staged_records + at, why, err, errlen);
	if (failed_before(w, err, errlen))
		return -1;
	if (!nruns)
		return 0;
	struct item *it = stage_item(w, nruns, m, 0, err, errlen);
	if (!it)
		return -1;
	it->kind = ITEM_BATCH;
	it->insns = insns;
	struct stage *st = &w->stages[w->filling];
	memcpy(st->runs + st->nruns - nruns, runs, nruns * sizeof(*runs));
	if (m)
		memcpy(st->acc + st->nacc - m, acc, m * sizeof(*acc));
	w->staged_records += insns + m;
	w->staged_insns += insns;
	return 0;
}

uint64_t trace_writer__icount(const struct trace_writer *w)
{
	return w->staged_insns;
}

static int sync_dir(const char *path)
{
	char copy[PATH_MAX];
	snprintf(copy, sizeof(copy), "%s", path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int trace_writer__commit(struct trace_writer *w, char *err, size_t errlen)
{
	uint8_t head[16], foot[TRACE_FOOTER_SIZE], sum[8];
	int rc = -1;

	if (w->failed) {
		snprintf(err, errlen, "%s: the writer failed before", w->tmp);
		goto out;
	}
	if (hand_over(w, err, errlen) != 0)
		goto out;
	stop_thread(w); /* which encodes and writes what is left */
	if (w->thread_failed) {
		snprintf(err, errlen, "%s", w->thread_err);
		goto out;
	}
	if (w->sync_errno) {
		snprintf(err, errlen, "%s: fdatasync: %s", w->tmp, strerror(w->sync_errno));
		goto out;
	}
	uint64_t index_offset = w->offset;
	memcpy(head, TRACE_INDEX_MAGIC, 4);
	trace__put32(head + 4, 0);
	trace__put64(head + 8, w->nchunks);
	XXH3_state_t st;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, head, sizeof(head));
	/* The index entries as the file holds them (little-endian). */
	XXH3_64bits_update(&st, w->index, w->nchunks * TRACE_INDEX_ENTRY);
	trace__put64(sum, XXH3_64bits_digest(&st));
	if (write_bytes(w, head, sizeof(head), err, errlen) != 0 ||
	    write_bytes(w, w->index, w->nchunks * TRACE_INDEX_ENTRY, err, errlen) != 0 ||
	    write_bytes(w, sum, sizeof(sum), err, errlen) != 0)
		goto out;
	memcpy(foot, TRACE_FOOTER_MAGIC, 4);
	trace__put32(foot + 4, TRACE_FORMAT_VERSION);
	trace__put64(foot + 8, index_offset);
	trace__put64(foot + 16, w->insns);
	trace__put64(foot + 24, w->records);
	trace__put64(foot + 32, w->raw_total);
	trace__put64(foot + 40, XXH3_64bits(foot, 40));
	if (write_bytes(w, foot, sizeof(foot), err, errlen) != 0)
		goto out;
	if (fsync(w->fd) != 0) {
		snprintf(err, errlen, "%s: fsync: %s", w->tmp, strerror(errno));
		goto out;
	}
	if (rename(w->tmp, w->path) != 0) {
		snprintf(err, errlen, "%s: rename: %s", w->path, strerror(errno));
		goto out;
	}
	if (sync_dir(w->path) != 0) {
		snprintf(err, errlen, "%s: fsync of its directory: %s", w->path, strerror(errno));
		goto out_committed;
	}
	rc = 0;
	goto out_committed;
out:
	unlink(w->tmp);
out_committed:
	destroy(w);
	return rc;
}

void trace_writer__abort(struct trace_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->aborting = true;
	pthread_mutex_unlock(&w->lock);
	stop_thread(w);
	unlink(w->tmp);
	destroy(w);
}
