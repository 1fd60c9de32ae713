/* Reading a trace: the file is mapped; open checks the header, footer and
 * index; each chunk is checked (checksum, lz4 length, records, icounts)
 * when the reader reaches it. See format.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lz4.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "format.h"
#include "trace.h"

struct trace_reader {
	char name[256];
	const uint8_t *file;
	size_t len;
	bool mapped;
	struct trace_info info;
	const uint8_t *index;           /* the entries, in the file */
	/* the chunk being read */
	uint64_t chunk;                 /* its number; info.chunks at the end */
	uint8_t *raw;                   /* TRACE_CHUNK_RAW_MAX, and 8 to spare: a value is
					 * read as 8 bytes */
	uint32_t raw_len, pos, records_left;
	uint64_t icount;                /* instructions before the next record */
	uint64_t chunk_end_icount;
	uint64_t next_pc;               /* after the chunk's last instruction, */
	bool have_next;                 /* if it had one */
	uint64_t mem_vaddr, mem_delta;  /* the chunk's last access: vaddr, paddr - vaddr */
	struct trace_value_slot *values; /* the chunk's last at each slot, TRACE_VALUE_SLOTS */
	struct block {                  /* the chunk's blocks, as defined */
		const uint8_t *insns;   /* each instruction's size | cpl << 4 */
		uint64_t pc;
		uint32_t n;
	} *blocks;
	uint32_t nblocks, blocks_cap;
	/* the run being read */
	const uint8_t *run_insn;        /* its next instruction, */
	uint64_t run_pc;                /* at this pc */
	uint32_t run_left;              /* instructions of it after the last record */
	uint32_t before;                /* of those, to come before the record at pos */
	bool head_seen;                 /* the access at pos: its advance is in before */
	uint32_t head_len;              /* its flag byte and advance */
	bool held;                      /* seek read this record, next returns it */
	struct trace_record held_rec;
};

static uint64_t index_offset(const struct trace_reader *r, uint64_t i)
{
	return trace__get64(r->index + i * TRACE_INDEX_ENTRY);
}

static uint64_t index_icount(const struct trace_reader *r, uint64_t i)
{
	return trace__get64(r->index + i * TRACE_INDEX_ENTRY + 8);
}

/* Under libFuzzer, mismatches pass so that mutations reach what is behind
 * the checksums (see tests/fuzz/fuzz_trace.c). */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define SUM_OK(stored, computed) ((void)(stored), (void)(computed), true)
#else
#define SUM_OK(stored, computed) ((stored) == (computed))
#endif

#define BAD(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)

static int check_frame(struct trace_reader *r, char *err, size_t errlen)
{
	const uint8_t *f = r->file;
	const char *n = r->name;

	if (r->len < TRACE_HDR_SIZE + TRACE_FOOTER_SIZE)
		BAD("%s: %zu bytes, too short for a trace (truncated?)", n, r->len);
	if (memcmp(f, TRACE_MAGIC, 8) != 0)
		BAD("%s: not a simuboost trace (bad magic)", n);
	if (!SUM_OK(trace__get64(f + 24), XXH3_64bits(f, 24)))
		BAD("%s: header checksum mismatch", n);
	if (trace__get32(f + 8) != TRACE_FORMAT_VERSION)
		BAD("%s: format version %" PRIu32 ", this simuboost reads %u", n,
		    trace__get32(f + 8), TRACE_FORMAT_VERSION);
	if (trace__get32(f + 16) != TRACE_CHUNK_RAW_MAX || trace__get32(f + 20) != 0)
		BAD("%s: header: chunk size %" PRIu32 ", expected %u", n, trace__get32(f + 16),
		    TRACE_CHUNK_RAW_MAX);
	r->info.interval = trace__get32(f + 12);

	const uint8_t *foot = f + r->len - TRACE_FOOTER_SIZE;
	if (memcmp(foot, TRACE_FOOTER_MAGIC, 4) != 0)
		BAD("%s: no footer: the trace is truncated or was never committed", n);
	if (!SUM_OK(trace__get64(foot + 40), XXH3_64bits(foot, 40)))
		BAD("%s: footer checksum mismatch", n);
	if (trace__get32(foot + 4) != TRACE_FORMAT_VERSION)
		BAD("%s: footer version %" PRIu32 " differs from the header's", n,
		    trace__get32(foot + 4));
	uint64_t ioff = trace__get64(foot + 8);
	r->info.instructions = trace__get64(foot + 16);
	r->info.records = trace__get64(foot + 24);
	r->info.raw_bytes = trace__get64(foot + 32);
	r->info.file_bytes = r->len;

	uint64_t index_room = r->len - TRACE_FOOTER_SIZE;
	if (ioff < TRACE_HDR_SIZE || ioff > index_room || index_room - ioff < 24)
		BAD("%s: index offset %" PRIu64 " outside the file", n, ioff);
	const uint8_t *idx = f + ioff;
	uint64_t nchunks = trace__get64(idx + 8);
	if (memcmp(idx, TRACE_INDEX_MAGIC, 4) != 0 || trace__get32(idx + 4) != 0)
		BAD("%s: index at %" PRIu64 ": bad magic", n, ioff);
	if (nchunks > (index_room - ioff - 24) / TRACE_INDEX_ENTRY ||
	    16 + nchunks * TRACE_INDEX_ENTRY + 8 != index_room - ioff)
		BAD("%s: index: %" PRIu64 " chunks do not fit its %" PRIu64 " bytes", n, nchunks,
		    index_room - ioff);
	size_t ilen = 16 + (size_t)nchunks * TRACE_INDEX_ENTRY;
	if (!SUM_OK(trace__get64(idx + ilen), XXH3_64bits(idx, ilen)))
		BAD("%s: index checksum mismatch", n);
	r->index = idx + 16;
	r->info.chunks = nchunks;
	uint64_t prev_off = 0, prev_icount = 0;
	for (uint64_t i = 0; i < nchunks; i++) {
		uint64_t off = index_offset(r, i), ic = index_icount(r, i);
		if (off < (i ? prev_off + TRACE_CHUNK_HDR_SIZE : TRACE_HDR_SIZE) ||
		    off > ioff - TRACE_CHUNK_HDR_SIZE || (i == 0 && off != TRACE_HDR_SIZE))
			BAD("%s: index: chunk %" PRIu64 " at offset %" PRIu64 " out of order or "
			    "outside the chunks", n, i, off);
		if (ic < prev_icount || ic > r->info.instructions || (i == 0 && ic != 0))
			BAD("%s: index: chunk %" PRIu64 " starts at instruction %" PRIu64
			    ", out of order", n, i, ic);
		prev_off = off;
		prev_icount = ic;
	}
	if (nchunks == 0 && (ioff != TRACE_HDR_SIZE || r->info.instructions || r->info.records))
		BAD("%s: no chunks, yet %" PRIu64 " records", n, r->info.records);
	return 0;
}

/* Loads chunk i into raw[]: header fields, checksum, decompressed length. */
static int load_chunk(struct trace_reader *r, uint64_t i, char *err, size_t errlen)
{
	const char *n = r->name;
	uint64_t off = index_offset(r, i);
	uint64_t end = i + 1 < r->info.chunks ? index_offset(r, i + 1)
					      : (uint64_t)(r->index - 16 - r->file);
	const uint8_t *h = r->file + off;

	if (memcmp(h, TRACE_CHUNK_MAGIC, 4) != 0)
		BAD("%s: chunk %" PRIu64 " (offset %" PRIu64 "): bad magic", n, i, off);
	uint32_t raw_len = trace__get32(h + 4), clen = trace__get32(h + 8);
	uint32_t records = trace__get32(h + 12);
	if (clen != end - off - TRACE_CHUNK_HDR_SIZE)
		BAD("%s: chunk %" PRIu64 ": %" PRIu32 " compressed bytes, its slot holds %" PRIu64, n,
		    i, clen, end - off - TRACE_CHUNK_HDR_SIZE);
	XXH3_state_t st;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, h, 32);
	XXH3_64bits_update(&st, h + TRACE_CHUNK_HDR_SIZE, clen);
	if (!SUM_OK(trace__get64(h + 32), XXH3_64bits_digest(&st)))
		BAD("%s: chunk %" PRIu64 " (offset %" PRIu64 "): checksum mismatch", n, i, off);
	if (raw_len == 0 || raw_len > TRACE_CHUNK_RAW_MAX || records == 0)
		BAD("%s: chunk %" PRIu64 ": %" PRIu32 " raw bytes, %" PRIu32 " records", n, i,
		    raw_len, records);
	if (trace__get64(h + 16) != index_icount(r, i))
		BAD("%s: chunk %" PRIu64 ": starts at instruction %" PRIu64 ", the index says %" PRIu64,
		    n, i, trace__get64(h + 16), index_icount(r, i));
	int got = LZ4_decompress_safe((const char *)h + TRACE_CHUNK_HDR_SIZE, (char *)r->raw,
				      (int)clen, (int)raw_len);
	if (got != (int)raw_len)
		BAD("%s: chunk %" PRIu64 ": lz4 data does not decompress to its %" PRIu32 " bytes",
		    n, i, raw_len);
	r->chunk = i;
	r->raw_len = raw_len;
	r->pos = 0;
	r->records_left = records;
	r->icount = index_icount(r, i);
	r->chunk_end_icount = trace__get64(h + 24);
	r->have_next = false;
	r->mem_vaddr = r->mem_delta = 0;
	memset(r->values, 0, TRACE_VALUE_SLOTS * sizeof(*r->values));
	r->nblocks = r->run_left = r->before = 0;
	r->head_seen = false;
	uint64_t next = i + 1 < r->info.chunks ? index_icount(r, i + 1) : r->info.instructions;
	if (r->chunk_end_icount != next)
		BAD("%s: chunk %" PRIu64 ": ends at instruction %" PRIu64 ", the next starts at %" PRIu64,
		    n, i, r->chunk_end_icount, next);
	return 0;
}

static void reader_free(struct trace_reader *r)
{
	free(r->raw);
	free(r->values);
	free(r->blocks);
	free(r);
}

/* The chunk's buffers are not zeroed: a chunk fills what it uses (opening
 * a reader is the fuzzer's every input). */
static struct trace_reader *reader_new(const char *name)
{
	struct trace_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->raw = malloc(TRACE_CHUNK_RAW_MAX + 8);
	r->values = malloc(TRACE_VALUE_SLOTS * sizeof(*r->values));
	if (!r->raw || !r->values) {
		reader_free(r);
		return NULL;
	}
	snprintf(r->name, sizeof(r->name), "%s", name);
	return r;
}

/* Positions at the first chunk once the frame is good. */
static struct trace_reader *reader_start(struct trace_reader *r, char *err, size_t errlen)
{
	if (check_frame(r, err, errlen) != 0 || trace_reader__seek(r, 0, err, errlen) != 0) {
		trace_reader__close(r);
		return NULL;
	}
	return r;
}

struct trace_reader *trace_reader__open_memory(const void *buf, size_t len, const char *name,
					       char *err, size_t errlen)
{
	struct trace_reader *r = reader_new(name);
	if (!r) {
		snprintf(err, errlen, "%s: out of memory", name);
		return NULL;
	}
	r->file = buf;
	r->len = len;
	return reader_start(r, err, errlen);
}

struct trace_reader *trace_reader__open(const char *path, char *err, size_t errlen)
{
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: %s", path,
			 S_ISREG(sb.st_mode) ? strerror(errno) : "not a regular file");
		close(fd);
		return NULL;
	}
	struct trace_reader *r = reader_new(path);
	void *map = sb.st_size ? mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0)
			       : MAP_FAILED;
	close(fd);
	if (!r || map == MAP_FAILED) {
		snprintf(err, errlen, "%s: %s", path,
			 !r ? "out of memory" : sb.st_size ? strerror(errno) : "empty file");
		if (map != MAP_FAILED)
			munmap(map, (size_t)sb.st_size);
		if (r)
			reader_free(r);
		return NULL;
	}
	r->file = map;
	r->len = (size_t)sb.st_size;
	r->mapped = true;
	return reader_start(r, err, errlen);
}

const struct trace_info *trace_reader__info(const struct trace_reader *r)
{
	return &r->info;
}

#define AT "%s: chunk %" PRIu64 " offset %u: "

/* A LEB128 varint at p[*n] of at most `bytes` bytes, or -1 if cut by the
 * chunk's end (left bytes) or longer. */
static int get_varint(const uint8_t *p, uint32_t left, uint32_t *n, uint64_t *v,
		      unsigned bytes)
{
	*v = 0;
	for (unsigned shift = 0; shift < 7 * bytes; shift += 7) {
		if (*n >= left)
			return -1;
		uint8_t b = p[(*n)++];
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return -1;
}

/* The run's next instruction. */
static int next_of_run(struct trace_reader *r, struct trace_record *rec, char *err,
		       size_t errlen)
{
	if (!r->records_left)
		BAD(AT "a run goes on past the chunk's records", r->name, r->chunk, r->pos);
	uint8_t b = *r->run_insn++;
	rec->kind = TRACE_INSN;
	rec->icount = r->icount++;
	rec->insn.pc = r->run_pc;
	rec->insn.size = b & 15;
	rec->insn.cpl = b >> 4;
	r->run_pc += rec->insn.size;
	r->next_pc = r->run_pc;
	r->records_left--;
	return 1;
}

/* A block definition at p: into the chunk's table. */
static int define_block(struct trace_reader *r, const uint8_t *p, uint32_t left, char *err,
			size_t errlen)
{
	uint32_t n = left < TRACE_BLOCK_HDR ? 0 : p[9] | (uint32_t)p[10] << 8;
	if (left < TRACE_BLOCK_HDR || left - TRACE_BLOCK_HDR < n)
		BAD(AT "block definition cut by the chunk's end", r->name, r->chunk, r->pos);
	if (n < 1 || n > TRACE_BLOCK_MAX)
		BAD(AT "block of %u instructions", r->name, r->chunk, r->pos, n);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t b = p[TRACE_BLOCK_HDR + i];
		const char *why = trace__insn_problem(b & 15, b >> 4);
		if (why)
			BAD(AT "block instruction %u: %s", r->name, r->chunk, r->pos, i, why);
	}
	if (r->nblocks == r->blocks_cap) { /* a chunk's bytes bound them */
		uint32_t cap = r->blocks_cap ? 2 * r->blocks_cap : 64;
		struct block *more = realloc(r->blocks, cap * sizeof(*more));
		if (!more)
			BAD(AT "out of memory for %u blocks", r->name, r->chunk, r->pos, cap);
		r->blocks = more;
		r->blocks_cap = cap;
	}
	r->blocks[r->nblocks].insns = p + TRACE_BLOCK_HDR;
	r->blocks[r->nblocks].pc = trace__get64(p + 1);
	r->blocks[r->nblocks].n = n;
	r->nblocks++;
	r->pos += TRACE_BLOCK_HDR + n;
	return 0;
}

/* A run or part at p: its first instruction into rec. */
static int start_run(struct trace_reader *r, const uint8_t *p, uint32_t left,
		     struct trace_record *rec, char *err, size_t errlen)
{
	uint32_t len = 1;
	uint64_t id, from = 0, count = 0;
	if (get_varint(p, left, &len, &id, 5) != 0 ||
	    (p[0] == TRACE_REC_PART && (get_varint(p, left, &len, &from, 5) != 0 ||
					get_varint(p, left, &len, &count, 5) != 0)))
		BAD(AT "run record cut or overlong", r->name, r->chunk, r->pos);
	if (id >= r->nblocks)
		BAD(AT "run of block %" PRIu64 ", the chunk defines %u", r->name, r->chunk, r->pos,
		    id, r->nblocks);
	uint32_t n = r->blocks[id].n;
	if (p[0] == TRACE_REC_RUN)
		count = n;
	if (count < 1 || from >= n || count > n - from)
		BAD(AT "run of instructions %" PRIu64 "..%" PRIu64 " of a block of %u", r->name,
		    r->chunk, r->pos, from, from + count - 1, n);
	r->run_insn = r->blocks[id].insns;
	r->run_pc = r->blocks[id].pc;
	for (uint64_t i = 0; i < from; i++)
		r->run_pc += *r->run_insn++ & 15;
	r->run_left = (uint32_t)count - 1;
	r->have_next = true;
	r->pos += len;
	return next_of_run(r, rec, err, errlen);
}

/* An access at p, after its flag byte and advance (head bytes). */
static int read_mem(struct trace_reader *r, const uint8_t *p, uint32_t left, uint32_t head,
		    struct trace_record *rec, char *err, size_t errlen)
{
	uint64_t zz;
	uint32_t need = head;
	if (get_varint(p, left, &need, &zz, 10) != 0) /* a vaddr's 64 bits */
		BAD(AT "memory record cut or overlong", r->name, r->chunk, r->pos);
	rec->kind = TRACE_MEM;
	rec->icount = r->icount ? r->icount - 1 : 0;
	rec->mem.size = (uint8_t)(1u << (p[0] & 3));
	rec->mem.write = p[0] >> 2 & 1;
	rec->mem.vaddr = r->mem_vaddr + (zz >> 1 ^ -(zz & 1));
	rec->mem.paddr = rec->mem.vaddr + r->mem_delta;
	struct trace_value_slot *slot = &r->values[trace__value_slot(rec->mem.vaddr)];
	if (p[0] & 8) {
		if (slot->vaddr != rec->mem.vaddr)
			BAD(AT "a repeated value, but the last access in its slot was at 0x%" PRIx64,
			    r->name, r->chunk, r->pos, slot->vaddr);
		rec->mem.value = slot->value;
		if (trace__mem_problem(rec->mem.size, rec->mem.value))
			BAD(AT "a repeated value wider than its access", r->name, r->chunk, r->pos);
	} else {
		if (left - need < rec->mem.size)
			BAD(AT "record cut by the chunk's end", r->name, r->chunk, r->pos);
		/* 8 bytes cut to size: a zeroed word then filled by bytes stalls
		 * whoever reads it whole */
		rec->mem.value = trace__get64(p + need) &
				 (~0ull >> (64 - 8 * rec->mem.size));
		need += rec->mem.size;
		slot->value = rec->mem.value;
	}
	slot->vaddr = rec->mem.vaddr;
	r->mem_vaddr = rec->mem.vaddr;
	r->pos += need;
	r->records_left--;
	return 1;
}

int trace_reader__next(struct trace_reader *r, struct trace_record *rec, char *err, size_t errlen)
{
	if (r->held) {
		*rec = r->held_rec;
		r->held = false;
		return 1;
	}
	for (;;) {
		if (r->before) {
			r->before--;
			return next_of_run(r, rec, err, errlen);
		}
		bool end = r->pos == r->raw_len;
		const uint8_t *p = r->raw + r->pos;
		if (r->run_left && (end || (!(p[0] & TRACE_REC_MEM) && p[0] != TRACE_REC_DISTANCE))) {
			/* the run's rest first */
			r->before = r->run_left;
			r->run_left = 0;
			continue;
		}
		if (end || !r->records_left) {
			if (r->chunk < r->info.chunks) {
				if (!end)
					BAD("%s: chunk %" PRIu64 ": %u bytes after its last record",
					    r->name, r->chunk, r->raw_len - r->pos);
				if (r->records_left)
					BAD("%s: chunk %" PRIu64 ": %u records fewer than its header says",
					    r->name, r->chunk, r->records_left);
				if (r->icount != r->chunk_end_icount)
					BAD("%s: chunk %" PRIu64 ": holds %" PRIu64 " instructions, its "
					    "header says %" PRIu64, r->name, r->chunk,
					    r->icount - index_icount(r, r->chunk),
					    r->chunk_end_icount - index_icount(r, r->chunk));
			}
			if (r->chunk + 1 >= r->info.chunks) {
				r->chunk = r->info.chunks;
				return 0;
			}
			if (load_chunk(r, r->chunk + 1, err, errlen) != 0)
				return -1;
			continue;
		}
		uint32_t left = r->raw_len - r->pos;
		if (p[0] & TRACE_REC_MEM) {
			uint32_t head = 1;
			if (r->head_seen) {
				head = r->head_len;
				r->head_seen = false;
			} else {
				uint64_t advance = p[0] >> 4 & 7;
				if (advance == 7) {
					uint64_t more;
					if (get_varint(p, left, &head, &more, 5) != 0)
						BAD(AT "memory record cut or overlong", r->name,
						    r->chunk, r->pos);
					advance += more;
				}
				if (advance > r->run_left)
					BAD(AT "access %" PRIu64 " instructions on, its run has %u",
					    r->name, r->chunk, r->pos, advance, r->run_left);
				if (advance) { /* the run's instructions before it first */
					r->run_left -= (uint32_t)advance;
					r->before = (uint32_t)advance;
					r->head_seen = true;
					r->head_len = head;
					continue;
				}
			}
			return read_mem(r, p, left, head, rec, err, errlen);
		}
		/* Most of the rest: an instruction that follows the one before,
		 * the short way, with the same checks as the long one. */
		if (p[0] == TRACE_REC_NEXT && left >= TRACE_NEXT_SIZE && r->have_next &&
		    (p[1] & 15) >= 1 && (p[1] >> 4) <= 3) {
			rec->kind = TRACE_INSN;
			rec->icount = r->icount++;
			rec->insn.pc = r->next_pc;
			rec->insn.size = p[1] & 15;
			rec->insn.cpl = p[1] >> 4;
			r->next_pc += rec->insn.size;
			r->pos += TRACE_NEXT_SIZE;
			r->records_left--;
			return 1;
		}
		if (p[0] == TRACE_REC_DISTANCE) {
			if (left < TRACE_DISTANCE_SIZE)
				BAD(AT "record cut by the chunk's end", r->name, r->chunk, r->pos);
			r->mem_delta = trace__get64(p + 1);
			r->pos += TRACE_DISTANCE_SIZE;
			continue;
		}
		if (p[0] == TRACE_REC_BLOCK) {
			if (define_block(r, p, left, err, errlen) != 0)
				return -1;
			continue;
		}
		if (p[0] == TRACE_REC_RUN || p[0] == TRACE_REC_PART)
			return start_run(r, p, left, rec, err, errlen);
		uint32_t need = p[0] == TRACE_INSN ? TRACE_INSN_SIZE :
				p[0] == TRACE_REC_NEXT ? TRACE_NEXT_SIZE :
				p[0] != TRACE_EVENT ? 0 :
				left >= 2 && p[1] == TRACE_EV_SYSCALL ? TRACE_SYSCALL_SIZE :
				TRACE_EVENT_SIZE;
		if (!need)
			BAD(AT "unknown record type %u", r->name, r->chunk, r->pos, p[0]);
		if (left < need)
			BAD(AT "record cut by the chunk's end", r->name, r->chunk, r->pos);
		if (p[0] == TRACE_REC_NEXT) {
			if (!r->have_next)
				BAD(AT "a next-instruction record without one before it", r->name,
				    r->chunk, r->pos);
			rec->kind = TRACE_INSN;
			rec->insn.pc = r->next_pc;
			rec->insn.size = p[1] & 15;
			rec->insn.cpl = p[1] >> 4;
		} else {
			rec->kind = (enum trace_kind)p[0];
			if (rec->kind == TRACE_INSN) {
				rec->insn.pc = trace__get64(p + 1);
				rec->insn.size = p[9];
				rec->insn.cpl = p[10];
			}
		}
		if (rec->kind == TRACE_INSN) {
			rec->icount = r->icount++;
			r->next_pc = rec->insn.pc + rec->insn.size;
			r->have_next = true;
		} else {
			rec->icount = r->icount ? r->icount - 1 : 0;
			rec->event.kind = (enum trace_event_kind)p[1];
			rec->event.size = p[2];
			rec->event.a = trace__get64(p + 3);
			rec->event.b = trace__get64(p + 11);
			rec->event.c = trace__get64(p + 19);
			for (unsigned i = 0; i < 6; i++)
				rec->event.args[i] = rec->event.kind == TRACE_EV_SYSCALL ?
						     trace__get64(p + TRACE_EVENT_SIZE + 8 * i) : 0;
		}
		const char *why = trace__record_problem(rec);
		if (why)
			BAD(AT "%s", r->name, r->chunk, r->pos, why);
		r->pos += need;
		r->records_left--;
		return 1;
	}
}

int trace_reader__seek(struct trace_reader *r, uint64_t icount, char *err, size_t errlen)
{
	r->records_left = 0;
	r->raw_len = r->pos = 0;
	r->chunk = r->info.chunks;
	r->icount = r->info.instructions;
	r->run_left = r->before = 0;
	r->head_seen = r->held = false;
	if (r->info.chunks == 0 || (icount && icount >= r->info.instructions))
		return 0;
	/* The first chunk that ends after instruction icount holds it. */
	uint64_t lo = 0, hi = r->info.chunks - 1;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (index_icount(r, mid + 1) > icount)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (load_chunk(r, icount ? lo : 0, err, errlen) != 0)
		return -1;
	/* Skip the records before it, and hold its own for next. */
	while (icount) {
		int rc = trace_reader__next(r, &r->held_rec, err, errlen);
		if (rc <= 0)
			return rc < 0 ? -1 : 0;
		if (r->held_rec.kind == TRACE_INSN && r->held_rec.icount == icount) {
			r->held = true;
			break;
		}
	}
	return 0;
}

void trace_reader__close(struct trace_reader *r)
{
	if (!r)
		return;
	if (r->mapped)
		munmap((void *)r->file, r->len);
	reader_free(r);
}
