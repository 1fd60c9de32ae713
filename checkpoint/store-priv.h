/* Shared inside checkpoint/ only: the store's internals, the file machinery
 * (atomic writes, the common envelope, little-endian codecs) and the page
 * pack. log.c and archive.c may use the file helpers; nothing outside
 * checkpoint/ includes this (tests do, to reach the encoders).
 *
 * Every file of a recording except the logs (whose format is log.c's)
 * starts with the 32-byte envelope, all little-endian:
 *
 *   0  magic "SBCK"
 *   4  u32 format version (CKPT_FORMAT_VERSION)
 *   8  u32 kind (enum ckpt_file_kind)
 *  12  u32 checkpoint index (0 for recording.meta)
 *  16  u64 payload length (the file is exactly 32 + this)
 *  24  u64 XXH3-64 of the payload
 *  32  payload */
#ifndef SIMUBOOST_CHECKPOINT_STORE_PRIV_H
#define SIMUBOOST_CHECKPOINT_STORE_PRIV_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <xxhash.h>

#include "checkpoint.h"

/* ---- errors ---------------------------------------------------------------- */

/* Formats err and returns -1. */
int ckpt__errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Puts context in front of the message already in err ("checkpoint 3: " + it). */
int ckpt__errprefix(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- file names and the envelope ------------------------------------------- */

#define CKPT_META_NAME "recording.meta"
#define CKPT_NAME_MAX 48
#define CKPT_ENV_SIZE 32u
#define CKPT_ENV_MAGIC "SBCK"

enum ckpt_file_kind {
	CKPT_KIND_META = 1,
	CKPT_KIND_MANIFEST = 2,
	CKPT_KIND_PACK = 3,
	CKPT_KIND_LOG = 4, /* for log.c, should it use the envelope */
};

/* "000017.pack": the file of checkpoint index with extension ext. */
void ckpt_file__name(char out[CKPT_NAME_MAX], uint32_t index, const char *ext);
const char *ckpt_file__kind_name(uint32_t kind);

void ckpt_env__encode(uint8_t hdr[CKPT_ENV_SIZE], uint32_t kind, uint32_t index,
		      uint64_t payload_len, uint64_t checksum);
/* Checks a whole file held in memory: magic, version, kind, index, length
 * and checksum, each refused with its own message naming `name`. */
int ckpt_env__check(const void *buf, size_t len, const char *name, uint32_t kind,
		    uint32_t index, const uint8_t **payload, size_t *payload_len, char *err,
		    size_t errlen);
/* The header alone (for files too large to checksum in memory); *payload_len
 * is what it claims, already compared with file_size. */
int ckpt_env__check_header(const uint8_t hdr[CKPT_ENV_SIZE], uint64_t file_size,
			   const char *name, uint32_t kind, uint32_t index, uint64_t *payload_len,
			   uint64_t *checksum, char *err, size_t errlen);

/* ---- whole files ------------------------------------------------------------- */

/* Writes NAME.tmp, fsyncs it, renames it to NAME and fsyncs the directory.
 * On error the temporary is gone and err says "NAME: write: <strerror>". */
int ckpt_file__write_atomic(int dirfd, const char *name, const struct iovec *iov, int iovcnt,
			    char *err, size_t errlen);
/* The same with the envelope in front of payload. */
int ckpt_file__write_env(int dirfd, const char *name, uint32_t kind, uint32_t index,
			 const void *payload, size_t len, char *err, size_t errlen);
/* Reads a whole file into a malloc'd buffer. */
int ckpt_file__read(int dirfd, const char *name, void **buf, size_t *len, char *err,
		    size_t errlen);
/* fstat of an open descriptor that must be a regular file; on failure it
 * closes fd. */
int ckpt_file__stat_regular(int fd, const char *name, struct stat *sb, char *err,
			    size_t errlen);
/* The same from an open descriptor, which it closes. */
int ckpt_file__read_fd(int fd, const char *name, void **buf, size_t *len, char *err,
		       size_t errlen);
/* Reads a file and checks its envelope; *payload points into *buf. */
int ckpt_file__load(int dirfd, const char *name, uint32_t kind, uint32_t index, void **buf,
		    const uint8_t **payload, size_t *payload_len, char *err, size_t errlen);

/* A file written in a stream through a buffer, with the envelope, as
 * NAME.tmp until ckpt_wfile__finish publishes it. Written with O_DIRECT
 * where the filesystem takes it, in whole blocks from an aligned buffer:
 * through the page cache, the kernel's copying and writeback cost a
 * recording about a core of the build machines at 256 MiB/s. */
struct ckpt_wfile {
	int dirfd, fd;
	bool direct;
	char name[CKPT_NAME_MAX];
	uint32_t kind, index;
	uint8_t *buf;               /* begins at file offset `written` */
	size_t used, cap;
	uint64_t written;           /* file bytes written, the envelope's room included */
	XXH3_state_t *xxh;
};

int ckpt_wfile__open(struct ckpt_wfile *w, int dirfd, const char *name, uint32_t kind,
		     uint32_t index, size_t bufsize, char *err, size_t errlen);
/* Room for n (<= the buffer size) contiguous bytes; ckpt_wfile__advance
 * then says how many of them were used. */
void *ckpt_wfile__reserve(struct ckpt_wfile *w, size_t n, char *err, size_t errlen);
static inline void ckpt_wfile__advance(struct ckpt_wfile *w, size_t n)
{
	w->used += n;
}
/* File offset of the next byte. */
static inline uint64_t ckpt_wfile__tell(const struct ckpt_wfile *w)
{
	return w->written + w->used;
}
/* Flushes, writes the envelope, publishes. Discards on failure. */
int ckpt_wfile__finish(struct ckpt_wfile *w, char *err, size_t errlen);
/* Closes and removes the temporary. Safe on a never-opened (zeroed) wfile. */
void ckpt_wfile__discard(struct ckpt_wfile *w);

/* ---- little-endian codecs ----------------------------------------------------- */

/* A growing output buffer; `oom` sticks after the first failed allocation. */
struct ckpt_wbuf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};

void ckpt_wbuf__bytes(struct ckpt_wbuf *b, const void *data, size_t n);
void ckpt_wbuf__u8(struct ckpt_wbuf *b, uint8_t v);
void ckpt_wbuf__u16(struct ckpt_wbuf *b, uint16_t v);
void ckpt_wbuf__u32(struct ckpt_wbuf *b, uint32_t v);
void ckpt_wbuf__u64(struct ckpt_wbuf *b, uint64_t v);

/* A bounded input; reading past the end yields zeroes and sets `short_`. */
struct ckpt_rbuf {
	const uint8_t *p;
	size_t len, pos;
	bool short_;
};

static inline size_t ckpt_rbuf__left(const struct ckpt_rbuf *b)
{
	return b->len - b->pos;
}
const uint8_t *ckpt_rbuf__bytes(struct ckpt_rbuf *b, size_t n);
uint8_t ckpt_rbuf__u8(struct ckpt_rbuf *b);
uint16_t ckpt_rbuf__u16(struct ckpt_rbuf *b);
uint32_t ckpt_rbuf__u32(struct ckpt_rbuf *b);
uint64_t ckpt_rbuf__u64(struct ckpt_rbuf *b);

static inline void ckpt__put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void ckpt__put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t ckpt__get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static inline uint64_t ckpt__get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* ---- the pack ------------------------------------------------------------------ */

/* A record: u64 hash.lo, u64 hash.hi, u32 encoding, u32 payload length,
 * then the payload (the page raw, or its lz4 block when that is smaller). */
#define CKPT_REC_HDR_SIZE 24u
#define CKPT_REC_RAW 0u
#define CKPT_REC_LZ4 1u
/* LZ4_COMPRESSBOUND(4096); a record payload is never larger. */
#define CKPT_REC_MAX_PAYLOAD (CKPT_PAGE_SIZE + CKPT_PAGE_SIZE / 255 + 16)

/* Where a content lives: the dedup index of the whole recording. Open
 * addressing with linear probing on hash.lo (XXH3 output is uniform). */
struct ckpt_index_slot {
	uint64_t lo, hi, offset;
	uint32_t pack;              /* UINT32_MAX: empty */
	uint32_t stored_len;
};

struct ckpt_index {
	struct ckpt_index_slot *slots;
	size_t mask;                /* capacity - 1; capacity is 0 or a power of 2 */
	size_t used;
};

const struct ckpt_index_slot *ckpt_index__find(const struct ckpt_index *ix,
					       const struct ckpt_hash *h);
int ckpt_index__insert(struct ckpt_index *ix, const struct ckpt_hash *h, uint32_t pack,
		       uint64_t offset, uint32_t stored_len);
/* Forgets every content of one pack (a failed commit). */
int ckpt_index__drop_pack(struct ckpt_index *ix, uint32_t pack);
void ckpt_index__free(struct ckpt_index *ix);

/* Appends one record for page (hash h) to the pack being written. */
int ckpt_pack__append(struct ckpt_wfile *w, const struct ckpt_hash *h, const void *page,
		      uint64_t *offset, uint32_t *stored_len, char *err, size_t errlen);
/* Reads a page for the manifest of checkpoint `ckpt` (named in errors). */
int ckpt_pack__read(struct ckpt_store *st, const struct ckpt_page_ref *ref, uint32_t ckpt,
		    void *out, char *err, size_t errlen);
/* Closes the cached descriptor of a pack (its file is being removed). */
void ckpt_pack__forget(struct ckpt_store *st, uint32_t pack);
void ckpt_pack__close_all(struct ckpt_store *st);

struct ckpt_pack_fd {
	int fd;                     /* -1: not open */
	uint32_t users;             /* reads in flight */
};

/* Problems found by ckpt_store__verify, one line each. */
struct ckpt_verify {
	void (*report)(void *opaque, const char *problem);
	void *opaque;
	long problems;
};

void ckpt_verify__problem(struct ckpt_verify *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Envelope checksum and record structure of pack `pack`, which must hold
 * `records` records (UINT64_MAX: unknown); -1 only if the check could not
 * run. */
int ckpt_pack__verify_file(struct ckpt_store *st, uint32_t pack, uint64_t records,
			   struct ckpt_verify *v, char *err, size_t errlen);

/* ---- the store ------------------------------------------------------------------- */

struct ckpt_store {
	char *dir;
	int dirfd;
	struct ckpt_info info;      /* strings owned */
	uint32_t count;
	uint64_t npages;            /* memory_bytes / CKPT_PAGE_SIZE */
	struct ckpt_hash zero_hash; /* XXH3-128 of a zero page */

	/* Readers may run on several threads: pack descriptors open lazily,
	 * at most packs_budget at a time. */
	pthread_mutex_t fd_lock;
	struct ckpt_pack_fd *packs; /* by pack index */
	uint32_t packs_len, packs_open, packs_budget, packs_clock;

	/* Writer only. */
	struct ckpt_index index;
	bool index_ready;           /* false after open until the first txn */
	struct ckpt_txn *txn;       /* at most one */
};

/* Opens a file of the recording for reading; when descriptors run out,
 * cached pack descriptors are closed to make room. Use these rather than
 * ckpt_file__read(st->dirfd, ...) for files of an open store. */
int ckpt_store__openat(struct ckpt_store *st, const char *name, char *err, size_t errlen);
int ckpt_store__read_file(struct ckpt_store *st, const char *name, void **buf, size_t *len,
			  char *err, size_t errlen);
/* Reads the manifests 0..count-1 into the dedup index (to append to an
 * opened recording). */
int ckpt_store__build_index(struct ckpt_store *st, char *err, size_t errlen);

/* ---- manifests ---------------------------------------------------------------------- */

/* Encodes a whole manifest file (envelope included). Pages must be sorted
 * by gpn. -1 only when out of memory. */
int ckpt_manifest__encode(const struct ckpt_manifest *m, void **buf, size_t *len);

#endif
