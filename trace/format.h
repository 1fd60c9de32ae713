/* The trace file layout, shared by the writer and the reader. Little-endian.
 *
 *   header (32)  "SBTRACE\0", u32 version, u32 interval, u32 chunk size
 *                limit, u32 0, u64 XXH3-64 of bytes 0..24
 *   chunks       each: "SBTC", u32 raw length, u32 compressed length,
 *                u32 records, u64 first icount (instructions before the
 *                chunk), u64 end icount, u64 XXH3-64 of the chunk header's
 *                first 32 bytes and the compressed bytes; then the records,
 *                lz4-compressed
 *   index        "SBTI", u32 0, u64 chunk count N, N x (u64 file offset,
 *                u64 first icount), u64 XXH3-64 of the index before it
 *   footer (48)  "SBTF", u32 version, u64 index offset, u64 instructions,
 *                u64 records, u64 raw bytes, u64 XXH3-64 of bytes 0..40
 *
 * Records, back to back in a chunk's raw bytes, never across chunks:
 *   insn   u8 1, u64 pc, u8 size, u8 cpl                          (11)
 *   next   u8 4, u8 size | cpl << 4                               (2)
 *          an instruction right after the chunk's previous one: pc =
 *          its pc + its size
 *   event  u8 3, u8 kind, u8 size, u64 a, u64 b, u64 c              (27)
 *          kind syscall: then 6 x u64 args                          (75)
 *   block  u8 6, u64 pc, u16 n, n x u8 size | cpl << 4           (11 + n)
 *          not a record: defines the chunk's next block (ids from 0),
 *          n instructions that follow one another from pc
 *   run    u8 7, varint id                                          (2..4)
 *          the instructions of block id, all of them
 *   part   u8 8, varint id, varint from, varint count             (4..10)
 *          its instructions from..from+count-1
 *   mem    u8 0x80 | flags, [varint advance - 7], varint vaddr delta,
 *          [value]                                                 (2..21)
 *          flags: bits 0-1 log2 of the size, bit 2 a store, bit 3 the
 *          value is omitted: it is the one the chunk's last access in the
 *          vaddr's value slot had, at the same vaddr; bits 4-6 the
 *          advance, 7: more, in the varint. vaddr: zigzag LEB128 of the
 *          difference to the chunk's previous access's vaddr (to 0 for its
 *          first). value: size bytes. paddr: vaddr + the chunk's distance.
 *   dist   u8 9, u64 distance                                       (9)
 *          not a record: paddr - vaddr of the access after it, and of
 *          those after that until the next (0 at a chunk's start)
 * A run or part stands for its instructions' records, one after the other;
 * the first comes at the run record, and each access after it comes
 * `advance` instructions of the run after the record before it (the
 * access before, or the run's first instruction). The instructions of the
 * run that no access passed come before the next record that is not an
 * access, or at the chunk's end. An access without a run before it in its
 * chunk has advance 0 and belongs to the instruction before it, in this
 * chunk or the one before. A value slot is trace__value_slot(vaddr), of
 * TRACE_VALUE_SLOTS, each {vaddr, value} of the last access there, all
 * {0, 0} at a chunk's start. Varints are LEB128, integers little-endian.
 * Format 3's records were instructions one by one and memory records
 * "u8 5, u8 flags, ..."; format 2's were of fixed size (11/27/75). Neither
 * is read any more.
 * A record's icount is not stored: it follows from the instruction
 * records before it. */
#ifndef SIMUBOOST_TRACE_FORMAT_H
#define SIMUBOOST_TRACE_FORMAT_H

#include <stdint.h>
#include <string.h>

#include "trace.h"

#define TRACE_MAGIC "SBTRACE\0"
#define TRACE_HDR_SIZE 32u
#define TRACE_CHUNK_MAGIC "SBTC"
#define TRACE_CHUNK_HDR_SIZE 40u
#define TRACE_INDEX_MAGIC "SBTI"
#define TRACE_INDEX_ENTRY 16u
#define TRACE_FOOTER_MAGIC "SBTF"
#define TRACE_FOOTER_SIZE 48u
/* Large enough for lz4 to find a loop's repetitions, small enough that a
 * seek decompresses little. */
#define TRACE_CHUNK_RAW_MAX (256u * 1024u)

#define TRACE_INSN_SIZE 11u
#define TRACE_REC_NEXT 4u /* the compact instruction record */
#define TRACE_NEXT_SIZE 2u
#define TRACE_EVENT_SIZE 27u
#define TRACE_SYSCALL_SIZE 75u
#define TRACE_REC_BLOCK 6u
#define TRACE_BLOCK_HDR 11u
#define TRACE_BLOCK_MAX 4096u /* instructions in a block */
#define TRACE_REC_RUN 7u
#define TRACE_REC_PART 8u
#define TRACE_RUN_MAX 10u /* a part: 1 + a 3-byte id (under 2^21) + 2 x 3 */
#define TRACE_REC_MEM 0x80u /* the memory record's flag byte */
#define TRACE_REC_DISTANCE 9u
#define TRACE_DISTANCE_SIZE 9u
#define TRACE_MEM_MAX 30u /* a distance + 1 + a 2-byte advance + a 10-byte varint + 8 */
#define TRACE_VALUE_SLOTS 4096u
#define TRACE_RECORD_MAX 75u /* one record appended alone */

/* The file is little-endian, and so is every host we build for. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian hosts only");

static inline void trace__put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void trace__put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint32_t trace__get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t trace__get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

struct trace_value_slot {
	uint64_t vaddr, value;
};

static inline unsigned trace__value_slot(uint64_t vaddr)
{
	return (unsigned)((vaddr * 0x9e3779b97f4a7c15ull) >> 52); /* 12 bits: 4096 */
}

/* Why an instruction or a memory access is not a valid record, or NULL. */
static inline const char *trace__insn_problem(uint8_t size, uint8_t cpl)
{
	if (size < 1 || size > 15)
		return "instruction size not 1..15";
	if (cpl > 3)
		return "privilege level above 3";
	return NULL;
}

static inline const char *trace__mem_problem(uint8_t size, uint64_t value)
{
	if (size != 1 && size != 2 && size != 4 && size != 8)
		return "memory access size not 1, 2, 4 or 8";
	if (size < 8 && value >> (8 * size))
		return "memory value wider than its access";
	return NULL;
}

/* Why rec is not a valid record, or NULL: the writer refuses it, the
 * reader reports it. */
static inline const char *trace__record_problem(const struct trace_record *rec)
{
	switch (rec->kind) {
	case TRACE_INSN:
		return trace__insn_problem(rec->insn.size, rec->insn.cpl);
	case TRACE_MEM:
		return trace__mem_problem(rec->mem.size, rec->mem.value);
	case TRACE_EVENT:
		if (rec->event.kind < TRACE_EV_INTERRUPT || rec->event.kind >= TRACE_EV__COUNT)
			return "unknown event kind";
		if (rec->event.size > 8)
			return "event access size above 8";
		return NULL;
	}
	return "unknown record kind";
}

#endif
