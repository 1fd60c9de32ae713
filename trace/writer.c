/* Writing a trace: records are encoded into a chunk buffer; a full chunk
 * is compressed and written; commit adds the index and footer under a
 * temporary name and renames it into place. See format.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lz4.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "format.h"
#include "trace.h"

struct trace_writer {
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	int fd;
	uint32_t interval;
	uint64_t offset;                /* file bytes written */
	uint8_t raw[TRACE_CHUNK_RAW_MAX];
	uint32_t raw_len, chunk_records;
	uint64_t chunk_first;           /* icount at the chunk's start */
	uint64_t next_pc;               /* after the chunk's last instruction, */
	bool have_next;                 /* if it has one */
	uint64_t insns, records, raw_total;
	uint64_t *index;                /* pairs: offset, first icount */
	size_t nchunks, index_cap;
	char *compressed;
	int compressed_cap;
	bool failed;
};

static int fail(struct trace_writer *w, char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s: %s: %s", w->tmp, what, strerror(errno));
	w->failed = true;
	return -1;
}

static int write_bytes(struct trace_writer *w, const void *buf, size_t len, char *err,
		       size_t errlen)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = write(w->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return fail(w, err, errlen, "write");
		}
		p += n;
		len -= (size_t)n;
		w->offset += (uint64_t)n;
	}
	return 0;
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
	w->compressed_cap = LZ4_compressBound(TRACE_CHUNK_RAW_MAX);
	w->compressed = malloc((size_t)w->compressed_cap);
	w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (!w->compressed || w->fd < 0) {
		snprintf(err, errlen, "%s: %s", w->tmp, strerror(w->fd < 0 ? errno : ENOMEM));
		if (w->fd >= 0)
			close(w->fd);
		free(w->compressed);
		free(w);
		return NULL;
	}
	memcpy(hdr, TRACE_MAGIC, 8);
	trace__put32(hdr + 8, TRACE_FORMAT_VERSION);
	trace__put32(hdr + 12, interval);
	trace__put32(hdr + 16, TRACE_CHUNK_RAW_MAX);
	trace__put64(hdr + 24, XXH3_64bits(hdr, 24));
	if (write_bytes(w, hdr, sizeof(hdr), err, errlen) != 0) {
		trace_writer__abort(w);
		return NULL;
	}
	return w;
}

static int flush_chunk(struct trace_writer *w, char *err, size_t errlen)
{
	uint8_t hdr[TRACE_CHUNK_HDR_SIZE];

	if (!w->raw_len)
		return 0;
	int clen = LZ4_compress_default((const char *)w->raw, w->compressed, (int)w->raw_len,
					w->compressed_cap);
	if (clen <= 0) {
		snprintf(err, errlen, "%s: chunk %zu: lz4 compression failed", w->tmp, w->nchunks);
		w->failed = true;
		return -1;
	}
	if (w->nchunks == w->index_cap) {
		size_t cap = w->index_cap ? w->index_cap * 2 : 64;
		uint64_t *idx = realloc(w->index, cap * 2 * sizeof(*idx));
		if (!idx) {
			errno = ENOMEM;
			return fail(w, err, errlen, "chunk index");
		}
		w->index = idx;
		w->index_cap = cap;
	}
	w->index[2 * w->nchunks] = w->offset;
	w->index[2 * w->nchunks + 1] = w->chunk_first;
	w->nchunks++;

	memcpy(hdr, TRACE_CHUNK_MAGIC, 4);
	trace__put32(hdr + 4, w->raw_len);
	trace__put32(hdr + 8, (uint32_t)clen);
	trace__put32(hdr + 12, w->chunk_records);
	trace__put64(hdr + 16, w->chunk_first);
	trace__put64(hdr + 24, w->insns);
	XXH3_state_t st;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, hdr, 32);
	XXH3_64bits_update(&st, w->compressed, (size_t)clen);
	trace__put64(hdr + 32, XXH3_64bits_digest(&st));
	if (write_bytes(w, hdr, sizeof(hdr), err, errlen) != 0 ||
	    write_bytes(w, w->compressed, (size_t)clen, err, errlen) != 0)
		return -1;
	w->raw_total += w->raw_len;
	w->raw_len = 0;
	w->chunk_records = 0;
	w->have_next = false;
	w->chunk_first = w->insns;
	return 0;
}

/* The layout memory and event records share after their type byte. */
static void put_wide(uint8_t *p, uint8_t b1, uint8_t b2, uint64_t x, uint64_t y, uint64_t z)
{
	p[1] = b1;
	p[2] = b2;
	trace__put64(p + 3, x);
	trace__put64(p + 11, y);
	trace__put64(p + 19, z);
}

int trace_writer__append(struct trace_writer *w, const struct trace_record *rec, char *err,
			 size_t errlen)
{
	const char *why = w->failed ? "the writer failed before" : trace__record_problem(rec);
	if (why) {
		snprintf(err, errlen, "%s: record %" PRIu64 ": %s", w->tmp, w->records, why);
		return -1;
	}
	if (w->raw_len + TRACE_RECORD_MAX > TRACE_CHUNK_RAW_MAX &&
	    flush_chunk(w, err, errlen) != 0)
		return -1;
	uint8_t *p = w->raw + w->raw_len;
	p[0] = (uint8_t)rec->kind;
	switch (rec->kind) {
	case TRACE_INSN:
		if (w->have_next && rec->insn.pc == w->next_pc) {
			p[0] = TRACE_REC_NEXT;
			p[1] = (uint8_t)(rec->insn.size | rec->insn.cpl << 4);
			w->raw_len += TRACE_NEXT_SIZE;
		} else {
			trace__put64(p + 1, rec->insn.pc);
			p[9] = rec->insn.size;
			p[10] = rec->insn.cpl;
			w->raw_len += TRACE_INSN_SIZE;
		}
		w->next_pc = rec->insn.pc + rec->insn.size;
		w->have_next = true;
		w->insns++;
		break;
	case TRACE_MEM:
		put_wide(p, rec->mem.size, rec->mem.write, rec->mem.vaddr, rec->mem.paddr,
			 rec->mem.value);
		w->raw_len += TRACE_MEM_SIZE;
		break;
	case TRACE_EVENT:
		put_wide(p, (uint8_t)rec->event.kind, rec->event.size, rec->event.a, rec->event.b,
			 rec->event.c);
		w->raw_len += TRACE_EVENT_SIZE;
		if (rec->event.kind == TRACE_EV_SYSCALL) {
			for (unsigned i = 0; i < 6; i++)
				trace__put64(p + TRACE_EVENT_SIZE + 8 * i, rec->event.args[i]);
			w->raw_len += TRACE_SYSCALL_SIZE - TRACE_EVENT_SIZE;
		}
		break;
	}
	w->chunk_records++;
	w->records++;
	return 0;
}

uint64_t trace_writer__icount(const struct trace_writer *w)
{
	return w->insns;
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
	if (flush_chunk(w, err, errlen) != 0)
		goto out;
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
		fail(w, err, errlen, "fsync");
		goto out;
	}
	if (rename(w->tmp, w->path) != 0) {
		fail(w, err, errlen, "rename");
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
	close(w->fd);
	free(w->index);
	free(w->compressed);
	free(w);
	return rc;
}

void trace_writer__abort(struct trace_writer *w)
{
	if (!w)
		return;
	close(w->fd);
	unlink(w->tmp);
	free(w->index);
	free(w->compressed);
	free(w);
}
