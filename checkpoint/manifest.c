/* Checkpoint manifests and the transaction that writes one.
 *
 * Manifest payload (inside the envelope, little-endian):
 *   header   u32 index, u64 guest_time_ns, u64 downtime_ns, u32 flags,
 *            i32 exit_status, u64 zero_pages, u64 dedup_pages,
 *            u64 stored_pages, u64 stored_bytes, u64 page_count
 *   cpu      struct ckpt_cpu_state field by field in declaration order,
 *            with only msr_count MSRs
 *   device   u64 length, bytes
 *   pages    page_count entries of 44 bytes, gpn strictly increasing:
 *            u64 gpn, u64 hash.lo, u64 hash.hi, u32 flags, u32 pack,
 *            u64 offset, u32 stored_len
 * One field list (the codec functions below) serves both directions, so
 * encoder and parser cannot drift apart. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store-priv.h"

#define PAGE_ENTRY_SIZE 44u

/* ---- the field codec --------------------------------------------------------------- */

struct codec {
	struct ckpt_wbuf *w;        /* encoding, or */
	struct ckpt_rbuf *r;        /* decoding */
};

static void c_u8(struct codec *c, uint8_t *v)
{
	if (c->w)
		ckpt_wbuf__u8(c->w, *v);
	else
		*v = ckpt_rbuf__u8(c->r);
}

static void c_u16(struct codec *c, uint16_t *v)
{
	if (c->w)
		ckpt_wbuf__u16(c->w, *v);
	else
		*v = ckpt_rbuf__u16(c->r);
}

static void c_u32(struct codec *c, uint32_t *v)
{
	if (c->w)
		ckpt_wbuf__u32(c->w, *v);
	else
		*v = ckpt_rbuf__u32(c->r);
}

static void c_i32(struct codec *c, int32_t *v)
{
	uint32_t u = (uint32_t)*v;

	c_u32(c, &u);
	*v = (int32_t)u;
}

static void c_u64(struct codec *c, uint64_t *v)
{
	if (c->w)
		ckpt_wbuf__u64(c->w, *v);
	else
		*v = ckpt_rbuf__u64(c->r);
}

static void c_bytes(struct codec *c, void *v, size_t n)
{
	const uint8_t *p;

	if (c->w) {
		ckpt_wbuf__bytes(c->w, v, n);
	} else if ((p = ckpt_rbuf__bytes(c->r, n))) {
		memcpy(v, p, n);
	}
}

static void c_segment(struct codec *c, struct ckpt_segment *s)
{
	c_u64(c, &s->base);
	c_u32(c, &s->limit);
	c_u16(c, &s->selector);
	c_u8(c, &s->type);
	c_u8(c, &s->present);
	c_u8(c, &s->dpl);
	c_u8(c, &s->db);
	c_u8(c, &s->s);
	c_u8(c, &s->l);
	c_u8(c, &s->g);
	c_u8(c, &s->avl);
	c_u8(c, &s->unusable);
}

static void c_dtable(struct codec *c, struct ckpt_dtable *d)
{
	c_u64(c, &d->base);
	c_u16(c, &d->limit);
}

/* -1: msr_count out of range (the only value the parser must trust). */
static int c_cpu(struct codec *c, struct ckpt_cpu_state *cpu)
{
	for (int i = 0; i < CKPT_GPR__COUNT; i++)
		c_u64(c, &cpu->gpr[i]);
	c_u64(c, &cpu->rip);
	c_u64(c, &cpu->rflags);
	for (int i = 0; i < CKPT_SEG__COUNT; i++)
		c_segment(c, &cpu->seg[i]);
	c_dtable(c, &cpu->gdt);
	c_dtable(c, &cpu->idt);
	c_u64(c, &cpu->cr0);
	c_u64(c, &cpu->cr2);
	c_u64(c, &cpu->cr3);
	c_u64(c, &cpu->cr4);
	c_u64(c, &cpu->cr8);
	c_u64(c, &cpu->efer);
	c_u64(c, &cpu->apic_base);
	for (int i = 0; i < 4; i++)
		c_u64(c, &cpu->dr[i]);
	c_u64(c, &cpu->dr6);
	c_u64(c, &cpu->dr7);
	c_u32(c, &cpu->msr_count);
	if (cpu->msr_count > CKPT_MAX_MSRS)
		return -1;
	for (uint32_t i = 0; i < cpu->msr_count; i++) {
		c_u32(c, &cpu->msrs[i].index);
		c_u64(c, &cpu->msrs[i].value);
	}
	c_u16(c, &cpu->fcw);
	c_u16(c, &cpu->fsw);
	c_u16(c, &cpu->fop);
	c_u8(c, &cpu->ftw);
	c_u64(c, &cpu->fip);
	c_u64(c, &cpu->fdp);
	c_u32(c, &cpu->mxcsr);
	c_u32(c, &cpu->mxcsr_mask);
	c_bytes(c, cpu->st, sizeof(cpu->st));
	c_bytes(c, cpu->xmm, sizeof(cpu->xmm));
	c_u8(c, &cpu->exception_injected);
	c_u8(c, &cpu->exception_nr);
	c_u8(c, &cpu->exception_has_error);
	c_u32(c, &cpu->exception_error);
	c_u8(c, &cpu->interrupt_injected);
	c_u8(c, &cpu->interrupt_nr);
	c_u8(c, &cpu->interrupt_soft);
	c_u8(c, &cpu->interrupt_shadow);
	c_u8(c, &cpu->nmi_injected);
	c_u8(c, &cpu->nmi_pending);
	c_u8(c, &cpu->nmi_masked);
	c_u8(c, &cpu->halted);
	return 0;
}

static void c_header(struct codec *c, struct ckpt_manifest *m)
{
	c_u32(c, &m->index);
	c_u64(c, &m->guest_time_ns);
	c_u64(c, &m->downtime_ns);
	c_u32(c, &m->flags);
	c_i32(c, &m->exit_status);
	c_u64(c, &m->zero_pages);
	c_u64(c, &m->dedup_pages);
	c_u64(c, &m->stored_pages);
	c_u64(c, &m->stored_bytes);
	c_u64(c, &m->page_count);
}

static void c_page(struct codec *c, struct ckpt_page_ref *p)
{
	c_u64(c, &p->gpn);
	c_u64(c, &p->hash.lo);
	c_u64(c, &p->hash.hi);
	c_u32(c, &p->flags);
	c_u32(c, &p->pack);
	c_u64(c, &p->offset);
	c_u32(c, &p->stored_len);
}

/* ---- encoding ----------------------------------------------------------------------- */

int ckpt_manifest__encode(const struct ckpt_manifest *m, void **buf, size_t *len)
{
	struct ckpt_manifest mm = *m;
	struct ckpt_cpu_state cpu = m->cpu;
	struct ckpt_wbuf b = { 0 };
	struct codec c = { .w = &b };
	uint8_t hdr[CKPT_ENV_SIZE] = { 0 };
	uint64_t dlen = m->device_state_len;

	/* One allocation in the common case: the size is known but for MSRs. */
	b.cap = CKPT_ENV_SIZE + 4096 + m->device_state_len + m->page_count * PAGE_ENTRY_SIZE;
	b.p = malloc(b.cap);
	if (!b.p)
		return -1;
	ckpt_wbuf__bytes(&b, hdr, sizeof(hdr));
	c_header(&c, &mm);
	if (c_cpu(&c, &cpu) < 0) {
		free(b.p);
		return -1;
	}
	c_u64(&c, &dlen);
	ckpt_wbuf__bytes(&b, m->device_state, m->device_state_len);
	for (uint64_t i = 0; i < m->page_count; i++)
		c_page(&c, &m->pages[i]);
	if (b.oom) {
		free(b.p);
		return -1;
	}
	ckpt_env__encode(b.p, CKPT_KIND_MANIFEST, m->index, b.len - CKPT_ENV_SIZE,
			 XXH3_64bits(b.p + CKPT_ENV_SIZE, b.len - CKPT_ENV_SIZE));
	*buf = b.p;
	*len = b.len;
	return 0;
}

/* ---- parsing --------------------------------------------------------------------------- */

void ckpt_manifest__free(struct ckpt_manifest *m)
{
	if (!m)
		return;
	free(m->device_state);
	free(m->pages);
	free(m);
}

static int check_pages(const struct ckpt_manifest *m, const char *name, char *err,
		       size_t errlen)
{
	uint64_t zero = 0, own = 0;

	for (uint64_t i = 0; i < m->page_count; i++) {
		const struct ckpt_page_ref *p = &m->pages[i];

		if (i && p->gpn <= m->pages[i - 1].gpn)
			return ckpt__errf(err, errlen, "%s: page 0x%" PRIx64 ": entries not sorted "
					  "by page number or duplicated", name, p->gpn);
		if (p->flags & ~CKPT_PAGE_ZERO)
			return ckpt__errf(err, errlen, "%s: page 0x%" PRIx64 ": unknown flags 0x%"
					  PRIx32, name, p->gpn, p->flags);
		if (p->flags & CKPT_PAGE_ZERO) {
			if (p->pack || p->offset || p->stored_len)
				return ckpt__errf(err, errlen, "%s: page 0x%" PRIx64 ": zero page "
						  "with a stored location", name, p->gpn);
			zero++;
			continue;
		}
		if (p->pack > m->index)
			return ckpt__errf(err, errlen, "%s: page 0x%" PRIx64 ": refers to pack %"
					  PRIu32 ", later than the checkpoint", name, p->gpn,
					  p->pack);
		if (!p->stored_len || p->stored_len > CKPT_REC_MAX_PAYLOAD ||
		    p->offset < CKPT_ENV_SIZE)
			return ckpt__errf(err, errlen, "%s: page 0x%" PRIx64 ": impossible location "
					  "(offset %" PRIu64 ", %" PRIu32 " bytes)", name, p->gpn,
					  p->offset, p->stored_len);
		own += p->pack == m->index;
	}
	if (zero != m->zero_pages)
		return ckpt__errf(err, errlen, "%s: %" PRIu64 " zero pages listed, header says %"
				  PRIu64, name, zero, m->zero_pages);
	/* Every entry is exactly one of zero, already stored, newly stored. */
	if (m->dedup_pages > m->page_count - zero ||
	    m->stored_pages != m->page_count - zero - m->dedup_pages || m->stored_pages > own)
		return ckpt__errf(err, errlen, "%s: statistics do not match the %" PRIu64
				  " entries (zero %" PRIu64 ", dedup %" PRIu64 ", stored %" PRIu64 ")",
				  name, m->page_count, m->zero_pages, m->dedup_pages,
				  m->stored_pages);
	return 0;
}

int ckpt_manifest__parse(const void *buf, size_t len, uint32_t index,
			 struct ckpt_manifest **out, char *err, size_t errlen)
{
	char name[CKPT_NAME_MAX];
	struct ckpt_manifest *m;
	const uint8_t *payload, *dev;
	size_t plen;
	struct ckpt_rbuf r;
	struct codec c = { .r = &r };
	uint64_t dlen;

	*out = NULL;
	ckpt_file__name(name, index, "manifest");
	if (ckpt_env__check(buf, len, name, CKPT_KIND_MANIFEST, index, &payload, &plen, err,
			    errlen) < 0)
		return -1;
	r = (struct ckpt_rbuf){ .p = payload, .len = plen };
	m = calloc(1, sizeof(*m));
	if (!m)
		return ckpt__errf(err, errlen, "%s: out of memory", name);
	c_header(&c, m);
	if (r.short_)
		goto truncated;
	if (m->index != index) {
		ckpt__errf(err, errlen, "%s: wrong index: payload says checkpoint %" PRIu32, name,
			   m->index);
		goto fail;
	}
	if (m->flags & ~CKPT_FINAL) {
		ckpt__errf(err, errlen, "%s: unknown flags 0x%" PRIx32, name, m->flags);
		goto fail;
	}
	if (c_cpu(&c, &m->cpu) < 0) {
		ckpt__errf(err, errlen, "%s: %" PRIu32 " MSRs, at most %d are supported", name,
			   m->cpu.msr_count, CKPT_MAX_MSRS);
		goto fail;
	}
	dlen = ckpt_rbuf__u64(&r);
	if (r.short_)
		goto truncated;
	/* Lengths are checked against what is left before any allocation: a
	 * hostile length cannot make us allocate more than the file's size. */
	if (dlen > ckpt_rbuf__left(&r)) {
		ckpt__errf(err, errlen, "%s: device state of %" PRIu64 " bytes, only %zu left",
			   name, dlen, ckpt_rbuf__left(&r));
		goto fail;
	}
	dev = ckpt_rbuf__bytes(&r, (size_t)dlen);
	if (dlen) {
		m->device_state = malloc((size_t)dlen);
		if (!m->device_state)
			goto oom;
		memcpy(m->device_state, dev, (size_t)dlen);
	}
	m->device_state_len = (size_t)dlen;
	if (m->page_count > ckpt_rbuf__left(&r) / PAGE_ENTRY_SIZE) {
		ckpt__errf(err, errlen, "%s: %" PRIu64 " page entries need %s bytes, only %zu left",
			   name, m->page_count,
			   m->page_count > UINT64_MAX / PAGE_ENTRY_SIZE ? "more than 2^64" : "more",
			   ckpt_rbuf__left(&r));
		goto fail;
	}
	if (m->page_count * PAGE_ENTRY_SIZE != ckpt_rbuf__left(&r)) {
		ckpt__errf(err, errlen, "%s: %zu bytes of garbage after the %" PRIu64 " page entries",
			   name, ckpt_rbuf__left(&r) - (size_t)m->page_count * PAGE_ENTRY_SIZE,
			   m->page_count);
		goto fail;
	}
	if (m->page_count) {
		m->pages = malloc((size_t)m->page_count * sizeof(*m->pages));
		if (!m->pages)
			goto oom;
	}
	for (uint64_t i = 0; i < m->page_count; i++) {
		memset(&m->pages[i], 0, sizeof(m->pages[i]));
		c_page(&c, &m->pages[i]);
	}
	if (check_pages(m, name, err, errlen) < 0)
		goto fail;
	*out = m;
	return 0;
truncated:
	ckpt__errf(err, errlen, "%s: truncated payload (%zu bytes)", name, plen);
	goto fail;
oom:
	ckpt__errf(err, errlen, "%s: out of memory", name);
fail:
	ckpt_manifest__free(m);
	return -1;
}

int ckpt_manifest__load(struct ckpt_store *st, uint32_t index, struct ckpt_manifest **out,
			char *err, size_t errlen)
{
	char name[CKPT_NAME_MAX];
	void *buf;
	size_t len;
	int rc;

	*out = NULL;
	if (index >= st->count)
		return ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": not in the recording (%"
				  PRIu32 " checkpoints)", index, st->count);
	ckpt_file__name(name, index, "manifest");
	if (ckpt_store__read_file(st, name, &buf, &len, err, errlen) < 0)
		return -1;
	rc = ckpt_manifest__parse(buf, len, index, out, err, errlen);
	free(buf);
	return rc;
}

/* ---- the transaction ---------------------------------------------------------------------- */

#define PACK_BUFFER (4u << 20)

struct ckpt_txn {
	struct ckpt_store *st;
	uint32_t index;
	struct ckpt_page_ref *pages;
	size_t npages, cap;
	bool sorted;
	uint64_t *seen;             /* gpn bitmap: a gpn may come once */
	struct ckpt_wfile pack;
	bool pack_open;
	bool has_state;
	struct ckpt_state state;    /* device_state points to our copy */
	void *log;
	size_t log_len;
	bool has_log;
	uint64_t zero, dedup, stored, stored_bytes;
	/* An I/O error in add_page poisons the transaction; commit repeats it. */
	char broken[256];
};

static void txn_free(struct ckpt_txn *tx)
{
	tx->st->txn = NULL;
	free(tx->pages);
	free(tx->seen);
	free((void *)tx->state.device_state);
	free(tx->log);
	free(tx);
}

struct ckpt_txn *ckpt_txn__begin(struct ckpt_store *st, uint32_t index, char *err,
				 size_t errlen)
{
	struct ckpt_txn *tx;

	if (st->txn) {
		ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": checkpoint %" PRIu32
			   " is still being written", index, st->txn->index);
		return NULL;
	}
	if (index != st->count) {
		ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": out of order, the recording has %"
			   PRIu32 " checkpoints so the next is %" PRIu32, index, st->count,
			   st->count);
		return NULL;
	}
	if (!st->index_ready && ckpt_store__build_index(st, err, errlen) < 0) {
		ckpt__errprefix(err, errlen, "checkpoint %" PRIu32 ": reading the recording: ",
				index);
		return NULL;
	}
	tx = calloc(1, sizeof(*tx));
	if (tx) {
		tx->cap = 1024;
		tx->pages = malloc(tx->cap * sizeof(*tx->pages));
		tx->seen = calloc((size_t)(st->npages + 63) / 64, sizeof(uint64_t));
	}
	if (!tx || !tx->pages || !tx->seen) {
		if (tx) {
			free(tx->pages);
			free(tx->seen);
		}
		free(tx);
		ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": out of memory", index);
		return NULL;
	}
	tx->st = st;
	tx->index = index;
	tx->sorted = true;
	tx->pack.fd = -1;
	st->txn = tx;
	return tx;
}

static bool page_is_zero(const uint8_t *p)
{
	/* p[i] == p[i+8] for all i and a zero first word: all zero. memcmp is
	 * vectorised; only pages whose hash is the zero page's get here. */
	static const uint8_t zero8[8];

	return memcmp(p, zero8, 8) == 0 && memcmp(p, p + 8, CKPT_PAGE_SIZE - 8) == 0;
}

static int txn_broken(struct ckpt_txn *tx, char *err, size_t errlen)
{
	snprintf(tx->broken, sizeof(tx->broken), "%s", err && errlen ? err : "I/O error");
	return -1;
}

int ckpt_txn__add_page(struct ckpt_txn *tx, uint64_t gpn, const void *data, char *err,
		       size_t errlen)
{
	struct ckpt_hash h = ckpt_hash__page(data);

	return ckpt_txn__add_page_hashed(tx, gpn, data, &h, err, errlen);
}

int ckpt_txn__add_page_hashed(struct ckpt_txn *tx, uint64_t gpn, const void *data,
			      const struct ckpt_hash *hash, char *err, size_t errlen)
{
	struct ckpt_store *st = tx->st;
	struct ckpt_page_ref *ref;
	const struct ckpt_index_slot *slot;
	struct ckpt_hash h = *hash;

	if (tx->broken[0])
		return ckpt__errf(err, errlen, "%s", tx->broken);
	if (gpn >= st->npages)
		return ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": page 0x%" PRIx64
				  ": beyond guest memory (0x%" PRIx64 " pages)", tx->index, gpn,
				  st->npages);
	if (tx->seen[gpn / 64] & (1ull << (gpn % 64)))
		return ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": page 0x%" PRIx64
				  ": added twice", tx->index, gpn);
	if (tx->npages == tx->cap) {
		struct ckpt_page_ref *p = realloc(tx->pages, 2 * tx->cap * sizeof(*p));

		if (!p)
			return ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": out of memory",
					  tx->index);
		tx->pages = p;
		tx->cap *= 2;
	}
	ref = &tx->pages[tx->npages];
	*ref = (struct ckpt_page_ref){ .gpn = gpn, .hash = h };
	if (ckpt_hash__eq(&h, &st->zero_hash) && page_is_zero(data)) {
		ref->flags = CKPT_PAGE_ZERO;
		tx->zero++;
	} else if ((slot = ckpt_index__find(&st->index, &h))) {
		ref->pack = slot->pack;
		ref->offset = slot->offset;
		ref->stored_len = slot->stored_len;
		tx->dedup++;
	} else {
		if (!tx->pack_open) {
			char name[CKPT_NAME_MAX];

			ckpt_file__name(name, tx->index, "pack");
			if (ckpt_wfile__open(&tx->pack, st->dirfd, name, CKPT_KIND_PACK, tx->index,
					     PACK_BUFFER, err, errlen) < 0)
				return txn_broken(tx, err, errlen);
			tx->pack_open = true;
		}
		ref->pack = tx->index;
		if (ckpt_pack__append(&tx->pack, &h, data, &ref->offset, &ref->stored_len, err,
				      errlen) < 0)
			return txn_broken(tx, err, errlen);
		if (ckpt_index__insert(&st->index, &h, tx->index, ref->offset,
				       ref->stored_len) < 0) {
			ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": out of memory for the page "
				   "index", tx->index);
			return txn_broken(tx, err, errlen);
		}
		tx->stored++;
		tx->stored_bytes += ref->stored_len;
	}
	if (tx->npages && gpn < tx->pages[tx->npages - 1].gpn)
		tx->sorted = false;
	tx->seen[gpn / 64] |= 1ull << (gpn % 64);
	tx->npages++;
	return 0;
}

int ckpt_txn__set_state(struct ckpt_txn *tx, const struct ckpt_state *state, char *err,
			size_t errlen)
{
	void *dev = NULL;

	if (tx->has_state)
		return ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": state set twice", tx->index);
	if (state->cpu.msr_count > CKPT_MAX_MSRS)
		return ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": %" PRIu32
				  " MSRs, at most %d are supported", tx->index,
				  state->cpu.msr_count, CKPT_MAX_MSRS);
	if (state->flags & ~CKPT_FINAL)
		return ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": unknown flags 0x%" PRIx32,
				  tx->index, state->flags);
	if (state->device_state_len) {
		dev = malloc(state->device_state_len);
		if (!dev)
			return ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": out of memory",
					  tx->index);
		memcpy(dev, state->device_state, state->device_state_len);
	}
	tx->state = *state;
	tx->state.device_state = dev;
	tx->has_state = true;
	return 0;
}

int ckpt_txn__set_log(struct ckpt_txn *tx, void *log, size_t len, char *err, size_t errlen)
{
	/* Taken over even when refused, so the caller never has to guess. */
	if (tx->index == 0) {
		free(log);
		return ckpt__errf(err, errlen, "checkpoint 0: no interval precedes it, so no log");
	}
	if (tx->has_log) {
		free(log);
		return ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": log set twice", tx->index);
	}
	tx->log = log;
	tx->log_len = len;
	tx->has_log = true;
	return 0;
}

static int cmp_gpn(const void *a, const void *b)
{
	const struct ckpt_page_ref *x = a, *y = b;

	return x->gpn < y->gpn ? -1 : x->gpn > y->gpn;
}

static int write_manifest(struct ckpt_txn *tx, char *err, size_t errlen)
{
	char name[CKPT_NAME_MAX];
	struct ckpt_manifest m = {
		.index = tx->index,
		.guest_time_ns = tx->state.guest_time_ns,
		.downtime_ns = tx->state.downtime_ns,
		.flags = tx->state.flags,
		.exit_status = tx->state.exit_status,
		.cpu = tx->state.cpu,
		.device_state = (uint8_t *)tx->state.device_state,
		.device_state_len = tx->state.device_state_len,
		.page_count = tx->npages,
		.pages = tx->pages,
		.zero_pages = tx->zero,
		.dedup_pages = tx->dedup,
		.stored_pages = tx->stored,
		.stored_bytes = tx->stored_bytes,
	};
	struct iovec iov;
	void *buf;
	size_t len;
	int rc;

	ckpt_file__name(name, tx->index, "manifest");
	if (!tx->sorted)
		qsort(tx->pages, tx->npages, sizeof(*tx->pages), cmp_gpn);
	if (ckpt_manifest__encode(&m, &buf, &len) < 0)
		return ckpt__errf(err, errlen, "%s: out of memory", name);
	iov = (struct iovec){ .iov_base = buf, .iov_len = len };
	rc = ckpt_file__write_atomic(tx->st->dirfd, name, &iov, 1, err, errlen);
	free(buf);
	return rc;
}

/* Nothing of checkpoint `index` may survive a failed commit. */
static void remove_checkpoint(struct ckpt_txn *tx)
{
	static const char *const ext[] = { "manifest", "pack", "manifest.tmp", "pack.tmp" };
	struct ckpt_store *st = tx->st;
	char name[CKPT_NAME_MAX];

	ckpt_wfile__discard(&tx->pack);
	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		ckpt_file__name(name, tx->index, ext[i]);
		unlinkat(st->dirfd, name, 0);
	}
	if (tx->has_log) {
		ckpt_file__name(name, tx->index - 1, "log");
		unlinkat(st->dirfd, name, 0);
		ckpt_file__name(name, tx->index - 1, "log.tmp");
		unlinkat(st->dirfd, name, 0);
	}
	ckpt_pack__forget(st, tx->index);
	/* Out of memory here leaves stale entries pointing at a removed pack;
	 * stop deduplicating rather than reference missing contents. */
	if (ckpt_index__drop_pack(&st->index, tx->index) < 0) {
		ckpt_index__free(&st->index);
		st->index_ready = false;
	}
}

int ckpt_txn__commit(struct ckpt_txn *tx, char *err, size_t errlen)
{
	struct ckpt_store *st = tx->st;
	char name[CKPT_NAME_MAX];

	if (tx->broken[0]) {
		ckpt__errf(err, errlen, "%s", tx->broken);
		goto fail;
	}
	if (tx->index != st->count) {
		/* Not ours to remove: those names may be committed checkpoints. */
		ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": out of order, the recording has %"
			   PRIu32 " checkpoints", tx->index, st->count);
		ckpt_wfile__discard(&tx->pack);
		ckpt_index__free(&st->index);
		st->index_ready = false;
		txn_free(tx);
		return -1;
	}
	if (!tx->has_state) {
		ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": no CPU and device state was set",
			   tx->index);
		goto fail;
	}
	if (tx->index > 0 && !tx->has_log) {
		ckpt__errf(err, errlen, "checkpoint %" PRIu32 ": the log of interval %" PRIu32
			   " is missing", tx->index, tx->index - 1);
		goto fail;
	}
	if (tx->pack_open) {
		tx->pack_open = false;
		if (ckpt_wfile__finish(&tx->pack, err, errlen) < 0)
			goto fail;
	}
	if (tx->has_log) {
		struct iovec iov = { .iov_base = tx->log, .iov_len = tx->log_len };

		ckpt_file__name(name, tx->index - 1, "log");
		if (ckpt_file__write_atomic(st->dirfd, name, &iov, 1, err, errlen) < 0)
			goto fail;
	}
	if (write_manifest(tx, err, errlen) < 0)
		goto fail;
	st->count++;
	txn_free(tx);
	return 0;
fail:
	remove_checkpoint(tx);
	txn_free(tx);
	return -1;
}

void ckpt_txn__abort(struct ckpt_txn *tx)
{
	if (!tx)
		return;
	ckpt_wfile__discard(&tx->pack);
	if (tx->pack_open && ckpt_index__drop_pack(&tx->st->index, tx->index) < 0) {
		ckpt_index__free(&tx->st->index);
		tx->st->index_ready = false;
	}
	txn_free(tx);
}
