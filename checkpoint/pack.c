/* Page packs: content-addressed records, the dedup index over the whole
 * recording, and reading a page back with both hashes checked (the record's
 * own, against the manifest's, and the content's, after decompression). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lz4.h>

#include "store-priv.h"

/* ---- the dedup index ------------------------------------------------------------ */

#define INDEX_MIN_CAP (1u << 12)

static void slots_clear(struct ckpt_index_slot *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		s[i].pack = UINT32_MAX;
}

static void slot_put(struct ckpt_index_slot *slots, size_t mask,
		     const struct ckpt_index_slot *e)
{
	size_t i = (size_t)e->lo & mask;

	while (slots[i].pack != UINT32_MAX)
		i = (i + 1) & mask;
	slots[i] = *e;
}

static int index_rehash(struct ckpt_index *ix, size_t cap, uint32_t drop_pack)
{
	struct ckpt_index_slot *slots = malloc(cap * sizeof(*slots));
	size_t used = 0;

	if (!slots)
		return -1;
	slots_clear(slots, cap);
	if (ix->slots) {
		for (size_t i = 0; i <= ix->mask; i++) {
			const struct ckpt_index_slot *e = &ix->slots[i];

			if (e->pack == UINT32_MAX || e->pack == drop_pack)
				continue;
			slot_put(slots, cap - 1, e);
			used++;
		}
	}
	free(ix->slots);
	ix->slots = slots;
	ix->mask = cap - 1;
	ix->used = used;
	return 0;
}

const struct ckpt_index_slot *ckpt_index__find(const struct ckpt_index *ix,
					       const struct ckpt_hash *h)
{
	size_t i;

	if (!ix->slots)
		return NULL;
	for (i = (size_t)h->lo & ix->mask; ix->slots[i].pack != UINT32_MAX; i = (i + 1) & ix->mask)
		if (ix->slots[i].lo == h->lo && ix->slots[i].hi == h->hi)
			return &ix->slots[i];
	return NULL;
}

int ckpt_index__insert(struct ckpt_index *ix, const struct ckpt_hash *h, uint32_t pack,
		       uint64_t offset, uint32_t stored_len)
{
	struct ckpt_index_slot e = { .lo = h->lo, .hi = h->hi, .offset = offset,
				     .pack = pack, .stored_len = stored_len };

	/* Load factor at most 3/4: linear probing stays short with uniform keys. */
	if (!ix->slots || (ix->used + 1) * 4 > (ix->mask + 1) * 3) {
		size_t cap = ix->slots ? (ix->mask + 1) * 2 : INDEX_MIN_CAP;

		if (index_rehash(ix, cap, UINT32_MAX) < 0)
			return -1;
	}
	slot_put(ix->slots, ix->mask, &e);
	ix->used++;
	return 0;
}

int ckpt_index__drop_pack(struct ckpt_index *ix, uint32_t pack)
{
	/* Deleting from a linear-probe table breaks chains: rebuild without
	 * the pack instead (a failed commit only). */
	if (!ix->slots)
		return 0;
	return index_rehash(ix, ix->mask + 1, pack);
}

void ckpt_index__free(struct ckpt_index *ix)
{
	free(ix->slots);
	memset(ix, 0, sizeof(*ix));
}

/* ---- writing records ------------------------------------------------------------------ */

struct ckpt_hash ckpt_hash__page(const void *page)
{
	XXH128_hash_t h = XXH3_128bits(page, CKPT_PAGE_SIZE);
	return (struct ckpt_hash){ .lo = h.low64, .hi = h.high64 };
}

int ckpt_pack__append(struct ckpt_wfile *w, const struct ckpt_hash *h, const void *page,
		      uint64_t *offset, uint32_t *stored_len, char *err, size_t errlen)
{
	uint8_t *rec = ckpt_wfile__reserve(w, CKPT_REC_HDR_SIZE + CKPT_REC_MAX_PAYLOAD, err,
					   errlen);
	uint32_t enc = CKPT_REC_LZ4;
	int n;

	if (!rec)
		return -1;
	*offset = ckpt_wfile__tell(w);
	/* Compress straight into the write buffer; keep the page raw when lz4
	 * does not make it smaller (random data), so reads skip lz4. */
	n = LZ4_compress_default(page, (char *)rec + CKPT_REC_HDR_SIZE, CKPT_PAGE_SIZE,
				 CKPT_REC_MAX_PAYLOAD);
	if (n <= 0 || (unsigned)n >= CKPT_PAGE_SIZE) {
		memcpy(rec + CKPT_REC_HDR_SIZE, page, CKPT_PAGE_SIZE);
		n = CKPT_PAGE_SIZE;
		enc = CKPT_REC_RAW;
	}
	ckpt__put_le64(rec, h->lo);
	ckpt__put_le64(rec + 8, h->hi);
	ckpt__put_le32(rec + 16, enc);
	ckpt__put_le32(rec + 20, (uint32_t)n);
	ckpt_wfile__advance(w, CKPT_REC_HDR_SIZE + (size_t)n);
	*stored_len = (uint32_t)n;
	return 0;
}

/* ---- reading pages ------------------------------------------------------------------------ */

/* Descriptors the cache may hold: a quarter of the limit, so manifests,
 * logs and the caller's own files always find one. */
static uint32_t fd_budget(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return 256;
	if (rl.rlim_cur / 4 > 256)
		return 256;
	return rl.rlim_cur >= 8 ? (uint32_t)(rl.rlim_cur / 4) : 1;
}

/* Closes one idle cached descriptor (clock order); false if none is idle. */
static bool evict_one(struct ckpt_store *st)
{
	for (uint32_t n = 0; n < st->packs_len; n++) {
		struct ckpt_pack_fd *p = &st->packs[st->packs_clock];

		st->packs_clock = (st->packs_clock + 1) % st->packs_len;
		if (p->fd >= 0 && !p->users) {
			close(p->fd);
			p->fd = -1;
			st->packs_open--;
			return true;
		}
	}
	return false;
}

static int grow_packs(struct ckpt_store *st, uint32_t pack)
{
	uint64_t len = st->packs_len ? st->packs_len : 64;
	struct ckpt_pack_fd *p;

	while (len <= pack)
		len *= 2;
	if (len > UINT32_MAX)
		len = UINT32_MAX;
	p = realloc(st->packs, (size_t)len * sizeof(*p));
	if (!p)
		return -1;
	for (uint64_t i = st->packs_len; i < len; i++)
		p[i] = (struct ckpt_pack_fd){ .fd = -1 };
	st->packs = p;
	st->packs_len = (uint32_t)len;
	return 0;
}

/* A descriptor of pack `pack`, held until pack_put: eviction never closes
 * one that a reader on another thread is using. */
static int pack_get(struct ckpt_store *st, uint32_t pack, char *err, size_t errlen)
{
	char name[CKPT_NAME_MAX];
	struct ckpt_pack_fd *p;
	int fd;

	pthread_mutex_lock(&st->fd_lock);
	if (pack >= st->packs_len && grow_packs(st, pack) < 0) {
		pthread_mutex_unlock(&st->fd_lock);
		return ckpt__errf(err, errlen, "out of memory");
	}
	p = &st->packs[pack];
	if (p->fd < 0) {
		if (!st->packs_budget)
			st->packs_budget = fd_budget();
		while (st->packs_open >= st->packs_budget && evict_one(st))
			;
		ckpt_file__name(name, pack, "pack");
		fd = openat(st->dirfd, name, O_RDONLY | O_CLOEXEC);
		while (fd < 0 && (errno == EMFILE || errno == ENFILE) && evict_one(st))
			fd = openat(st->dirfd, name, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			ckpt__errf(err, errlen, "%s: open: %s", name, strerror(errno));
			pthread_mutex_unlock(&st->fd_lock);
			return -1;
		}
		p->fd = fd;
		st->packs_open++;
	}
	p->users++;
	fd = p->fd;
	pthread_mutex_unlock(&st->fd_lock);
	return fd;
}

static void pack_put(struct ckpt_store *st, uint32_t pack)
{
	pthread_mutex_lock(&st->fd_lock);
	st->packs[pack].users--;
	pthread_mutex_unlock(&st->fd_lock);
}

void ckpt_pack__forget(struct ckpt_store *st, uint32_t pack)
{
	pthread_mutex_lock(&st->fd_lock);
	if (pack < st->packs_len && st->packs[pack].fd >= 0) {
		close(st->packs[pack].fd);
		st->packs[pack].fd = -1;
		st->packs_open--;
	}
	pthread_mutex_unlock(&st->fd_lock);
}

int ckpt_store__openat(struct ckpt_store *st, const char *name, char *err, size_t errlen)
{
	int fd = openat(st->dirfd, name, O_RDONLY | O_CLOEXEC);

	if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
		pthread_mutex_lock(&st->fd_lock);
		do
			fd = openat(st->dirfd, name, O_RDONLY | O_CLOEXEC);
		while (fd < 0 && (errno == EMFILE || errno == ENFILE) && evict_one(st));
		pthread_mutex_unlock(&st->fd_lock);
	}
	if (fd < 0)
		return ckpt__errf(err, errlen, "%s: open: %s", name, strerror(errno));
	return fd;
}

void ckpt_pack__close_all(struct ckpt_store *st)
{
	for (uint32_t i = 0; i < st->packs_len; i++)
		if (st->packs[i].fd >= 0)
			close(st->packs[i].fd);
	free(st->packs);
	st->packs = NULL;
	st->packs_len = st->packs_open = 0;
}

/* The record at ref, decoded into out; err gets the problem alone. */
static int read_record(struct ckpt_store *st, const struct ckpt_page_ref *ref, void *out,
		       char *err, size_t errlen)
{
	uint8_t rec[CKPT_REC_HDR_SIZE + CKPT_REC_MAX_PAYLOAD];
	size_t want = CKPT_REC_HDR_SIZE + ref->stored_len;
	struct ckpt_hash h;
	uint32_t enc, len;
	ssize_t n;
	int fd;

	if (ref->pack >= st->count)
		return ckpt__errf(err, errlen, "refers to pack %" PRIu32 " of a checkpoint not in the "
				  "recording (%" PRIu32 " checkpoints)", ref->pack, st->count);
	if (!ref->stored_len || ref->stored_len > CKPT_REC_MAX_PAYLOAD)
		return ckpt__errf(err, errlen, "stored length %" PRIu32 " is impossible",
				  ref->stored_len);
	fd = pack_get(st, ref->pack, err, errlen);
	if (fd < 0)
		return -1;
	do
		n = pread(fd, rec, want, (off_t)ref->offset);
	while (n < 0 && errno == EINTR);
	pack_put(st, ref->pack);
	if (n < 0)
		return ckpt__errf(err, errlen, "read: %s", strerror(errno));
	if ((size_t)n < want)
		return ckpt__errf(err, errlen, "record truncated (%zd of %zu bytes)", n, want);
	h.lo = ckpt__get_le64(rec);
	h.hi = ckpt__get_le64(rec + 8);
	enc = ckpt__get_le32(rec + 16);
	len = ckpt__get_le32(rec + 20);
	if (!ckpt_hash__eq(&h, &ref->hash))
		return ckpt__errf(err, errlen, "record holds content %016" PRIx64 "%016" PRIx64
				  ", manifest wants %016" PRIx64 "%016" PRIx64,
				  h.hi, h.lo, ref->hash.hi, ref->hash.lo);
	if (len != ref->stored_len)
		return ckpt__errf(err, errlen, "record length %" PRIu32 ", manifest says %" PRIu32,
				  len, ref->stored_len);
	if (enc == CKPT_REC_RAW) {
		if (len != CKPT_PAGE_SIZE)
			return ckpt__errf(err, errlen, "raw record of %" PRIu32 " bytes", len);
		memcpy(out, rec + CKPT_REC_HDR_SIZE, CKPT_PAGE_SIZE);
	} else if (enc == CKPT_REC_LZ4) {
		int d = LZ4_decompress_safe((const char *)rec + CKPT_REC_HDR_SIZE, out, (int)len,
					    CKPT_PAGE_SIZE);
		if (d != (int)CKPT_PAGE_SIZE)
			return ckpt__errf(err, errlen, "lz4 data is corrupt (%s)",
					  d < 0 ? "undecodable" : "wrong size");
	} else {
		return ckpt__errf(err, errlen, "unknown record encoding %" PRIu32, enc);
	}
	h = ckpt_hash__page(out);
	if (!ckpt_hash__eq(&h, &ref->hash))
		return ckpt__errf(err, errlen, "content hash mismatch");
	return 0;
}

int ckpt_pack__read(struct ckpt_store *st, const struct ckpt_page_ref *ref, uint32_t ckpt,
		    void *out, char *err, size_t errlen)
{
	char name[CKPT_NAME_MAX];

	if (ref->flags & CKPT_PAGE_ZERO) {
		memset(out, 0, CKPT_PAGE_SIZE);
		return 0;
	}
	if (read_record(st, ref, out, err, errlen) == 0)
		return 0;
	ckpt_file__name(name, ref->pack, "pack");
	return ckpt__errprefix(err, errlen, "checkpoint %" PRIu32 ": page 0x%" PRIx64
			       ": %s at offset %" PRIu64 ": ", ckpt, ref->gpn, name, ref->offset);
}

int ckpt_store__read_page(struct ckpt_store *st, const struct ckpt_page_ref *ref, void *out,
			  char *err, size_t errlen)
{
	/* The referencing checkpoint is not in the ref: name the pack's. */
	return ckpt_pack__read(st, ref, ref->pack, out, err, errlen);
}

/* ---- verifying a whole pack ------------------------------------------------------------------ */

#define VERIFY_CHUNK (1u << 20)

int ckpt_pack__verify_file(struct ckpt_store *st, uint32_t pack, uint64_t records,
			   struct ckpt_verify *v, char *err, size_t errlen)
{
	uint8_t hdr[CKPT_ENV_SIZE], rh[CKPT_REC_HDR_SIZE];
	char name[CKPT_NAME_MAX], why[256];
	uint64_t plen, sum, off, end, nrec = 0;
	XXH3_state_t *xxh;
	struct stat sb;
	uint8_t *buf;
	int fd;

	ckpt_file__name(name, pack, "pack");
	fd = ckpt_store__openat(st, name, why, sizeof(why));
	if (fd < 0) {
		ckpt_verify__problem(v, "checkpoint %" PRIu32 ": %s", pack, why);
		return 0;
	}
	if (fstat(fd, &sb) < 0 || pread(fd, hdr, sizeof(hdr), 0) < 0) {
		ckpt_verify__problem(v, "%s: %s", name, strerror(errno));
		close(fd);
		return 0;
	}
	if (ckpt_env__check_header(hdr, (uint64_t)sb.st_size, name, CKPT_KIND_PACK, pack, &plen,
				   &sum, why, sizeof(why)) < 0) {
		ckpt_verify__problem(v, "%s", why);
		close(fd);
		return 0;
	}
	buf = malloc(VERIFY_CHUNK);
	xxh = XXH3_createState();
	if (!buf || !xxh) {
		free(buf);
		XXH3_freeState(xxh);
		close(fd);
		return ckpt__errf(err, errlen, "out of memory");
	}
	XXH3_64bits_reset(xxh);
	for (off = 0; off < plen;) {
		size_t want = plen - off < VERIFY_CHUNK ? (size_t)(plen - off) : VERIFY_CHUNK;
		ssize_t n = pread(fd, buf, want, (off_t)(CKPT_ENV_SIZE + off));

		if (n <= 0) {
			ckpt_verify__problem(v, "%s: read: %s", name,
					     n < 0 ? strerror(errno) : "unexpected end of file");
			break;
		}
		XXH3_64bits_update(xxh, buf, (size_t)n);
		off += (uint64_t)n;
	}
	if (off == plen && XXH3_64bits_digest(xxh) != sum)
		ckpt_verify__problem(v, "%s: checksum mismatch: stored 0x%016" PRIx64
				     ", computed 0x%016" PRIx64, name, sum, XXH3_64bits_digest(xxh));
	XXH3_freeState(xxh);
	free(buf);

	/* Record chain: every header in bounds, the last one ending the file. */
	end = CKPT_ENV_SIZE + plen;
	for (off = CKPT_ENV_SIZE; off < end; nrec++) {
		uint32_t len;

		if (end - off < CKPT_REC_HDR_SIZE ||
		    pread(fd, rh, sizeof(rh), (off_t)off) != (ssize_t)sizeof(rh)) {
			ckpt_verify__problem(v, "%s: record at offset %" PRIu64 " is truncated", name,
					     off);
			break;
		}
		len = ckpt__get_le32(rh + 20);
		if (len == 0 || len > CKPT_REC_MAX_PAYLOAD ||
		    len > end - off - CKPT_REC_HDR_SIZE) {
			ckpt_verify__problem(v, "%s: record at offset %" PRIu64
					     " has an impossible length %" PRIu32, name, off, len);
			break;
		}
		off += CKPT_REC_HDR_SIZE + len;
	}
	if (off == end && records != UINT64_MAX && nrec != records)
		ckpt_verify__problem(v, "%s: %" PRIu64 " records, manifest %06" PRIu32
				     ".manifest says %" PRIu64 " stored pages", name, nrec, pack,
				     records);
	close(fd);
	return 0;
}
