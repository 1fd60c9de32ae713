/* simuboost checkpoint store: a recording on disk. This is the only header
 * other modules may use.
 *
 * A recording is a directory holding
 *   - recording.meta       what was recorded (memory size, interval, config),
 *   - NNNNNN.manifest      checkpoint N: CPU state, device state, and guest
 *                          page number -> content hash for the pages dirtied
 *                          in interval N-1 (all non-zero pages for N = 0),
 *   - NNNNNN.pack          the page contents first stored by checkpoint N,
 *                          XXH3-128 addressed, lz4-compressed, stored once,
 *   - NNNNNN.log           the nondeterminism log of interval N (from
 *                          checkpoint N to checkpoint N+1).
 * Every file is versioned, length-checked and checksummed. The manifest is
 * the commit point of a checkpoint: it is written last (write, fsync,
 * rename, fsync of the directory), so a crash leaves every earlier
 * checkpoint intact and readable. Checkpoint N+1's commit also commits the
 * log of interval N.
 *
 * Errors are returned as -1 (or NULL) with a one-line message in err that
 * names the file, the checkpoint and the page, e.g.
 * "checkpoint 17: page 0x3f2: hash mismatch". */
#ifndef SIMUBOOST_CHECKPOINT_H
#define SIMUBOOST_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CKPT_PAGE_SIZE 4096u
#define CKPT_FORMAT_VERSION 4u /* 2: landmarks carry the arithmetic flags; 3: and RF;
				  4: and the raw GPRs and CR3 */

struct ckpt_hash {
	uint64_t lo, hi; /* XXH3-128 of a page's 4096 bytes */
};

/* The content hash of one page (CKPT_PAGE_SIZE bytes). */
struct ckpt_hash ckpt_hash__page(const void *page);

static inline bool ckpt_hash__eq(const struct ckpt_hash *a, const struct ckpt_hash *b)
{
	return a->lo == b->lo && a->hi == b->hi;
}

/* ---- CPU state --------------------------------------------------------- */

enum ckpt_gpr {
	CKPT_RAX, CKPT_RCX, CKPT_RDX, CKPT_RBX, CKPT_RSP, CKPT_RBP, CKPT_RSI, CKPT_RDI,
	CKPT_R8, CKPT_R9, CKPT_R10, CKPT_R11, CKPT_R12, CKPT_R13, CKPT_R14, CKPT_R15,
	CKPT_GPR__COUNT
};

enum ckpt_seg {
	CKPT_ES, CKPT_CS, CKPT_SS, CKPT_DS, CKPT_FS, CKPT_GS, CKPT_LDT, CKPT_TR,
	CKPT_SEG__COUNT
};

/* A segment register with its hidden part, as the CPU caches it. */
struct ckpt_segment {
	uint64_t base;
	uint32_t limit;
	uint16_t selector;
	uint8_t type, present, dpl, db, s, l, g, avl, unusable;
};

struct ckpt_dtable {
	uint64_t base;
	uint16_t limit;
};

struct ckpt_msr {
	uint32_t index;
	uint64_t value;
};

#define CKPT_MAX_MSRS 32

/* The MSRs a checkpoint holds, by index */
#define CKPT_MSR_TSC 0x00000010u
#define CKPT_MSR_SYSENTER_CS 0x00000174u
#define CKPT_MSR_SYSENTER_ESP 0x00000175u
#define CKPT_MSR_SYSENTER_EIP 0x00000176u
#define CKPT_MSR_MISC_ENABLE 0x000001a0u
#define CKPT_MSR_PAT 0x00000277u
#define CKPT_MSR_STAR 0xc0000081u
#define CKPT_MSR_LSTAR 0xc0000082u
#define CKPT_MSR_CSTAR 0xc0000083u
#define CKPT_MSR_SFMASK 0xc0000084u
#define CKPT_MSR_KERNEL_GS_BASE 0xc0000102u

/* The complete architectural state of the one vCPU. */
struct ckpt_cpu_state {
	uint64_t gpr[CKPT_GPR__COUNT];
	uint64_t rip, rflags;
	struct ckpt_segment seg[CKPT_SEG__COUNT];
	struct ckpt_dtable gdt, idt;
	uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
	uint64_t dr[4], dr6, dr7;
	uint32_t msr_count;
	struct ckpt_msr msrs[CKPT_MAX_MSRS]; /* STAR, LSTAR, SYSENTER_*, PAT ... */
	/* x87 and SSE, as FXSAVE lays them out */
	uint16_t fcw, fsw, fop;
	uint8_t ftw;                /* abridged tag word */
	uint64_t fip, fdp;
	uint32_t mxcsr;
	uint32_t mxcsr_mask;        /* what FXSAVE reports on the recording CPU; 0: unknown */
	uint8_t st[8][16];
	uint8_t xmm[16][16];
	/* events in flight */
	uint8_t exception_injected, exception_nr, exception_has_error;
	uint32_t exception_error;
	uint8_t interrupt_injected, interrupt_nr, interrupt_soft;
	uint8_t interrupt_shadow;   /* after sti / mov ss */
	uint8_t nmi_injected, nmi_pending, nmi_masked;
	uint8_t halted;             /* stopped in hlt, waiting for an interrupt */
};

/* FXSAVE image offsets (Intel SDM vol. 1, table 10-2): the layout of the
 * x87/SSE fields above, of KVM's XSAVE legacy region and of QEMU's plugin
 * state. */
#define CKPT_FX_FCW 0
#define CKPT_FX_FSW 2
#define CKPT_FX_FTW 4
#define CKPT_FX_FOP 6
#define CKPT_FX_FIP 8
#define CKPT_FX_FDP 16
#define CKPT_FX_MXCSR 24
#define CKPT_FX_MXCSR_MASK 28
#define CKPT_FX_ST 32
#define CKPT_FX_XMM 160

/* Writes the x87/SSE fields into an FXSAVE image, leaving its other bytes
 * as they are; and reads them back. */
void ckpt_cpu_state__put_fxsave(const struct ckpt_cpu_state *c, uint8_t img[512]);
void ckpt_cpu_state__get_fxsave(struct ckpt_cpu_state *c, const uint8_t img[512]);

/* Prints registers, segments, control registers, MSRs and events. */
void ckpt_cpu_state__print(const struct ckpt_cpu_state *cpu, FILE *out);

/* ---- the recording ----------------------------------------------------- */

struct ckpt_info {
	uint64_t memory_bytes;      /* guest RAM; multiple of CKPT_PAGE_SIZE */
	uint64_t interval_ns;       /* checkpoint interval in guest time */
	const char *mode;           /* "cow" or "stop-copy" */
	const char *cpu_model;      /* QEMU -cpu string that matches the guest's CPUID */
	const char *config_path;    /* the vm.cfg recorded, for reference */
	const char *config_text;    /* its contents */
	const char *created_by;     /* "simuboost 0.1.0" */
};

struct ckpt_store;

/* Creates a new recording in dir, which must not exist or be empty, and
 * commits recording.meta. */
struct ckpt_store *ckpt_store__create(const char *dir, const struct ckpt_info *info, char *err,
				      size_t errlen);
/* Opens a recording for reading. Leftover temporary files of an interrupted
 * commit are ignored. Checkpoints are 0..count-1 with no gaps; a gap ends
 * the recording at the gap. */
struct ckpt_store *ckpt_store__open(const char *dir, char *err, size_t errlen);
void ckpt_store__close(struct ckpt_store *st);
const struct ckpt_info *ckpt_store__info(const struct ckpt_store *st);
uint32_t ckpt_store__count(const struct ckpt_store *st);
const char *ckpt_store__dir(const struct ckpt_store *st);

/* ---- writing a checkpoint (one thread) ----------------------------------- */

/* Manifest flags */
#define CKPT_FINAL 1u /* taken right after the guest's exit-port write; nothing runs after it */

struct ckpt_state {
	uint64_t guest_time_ns;     /* guest time at the checkpoint */
	uint64_t downtime_ns;       /* vCPU stop to resume, as measured */
	uint32_t flags;             /* CKPT_FINAL */
	int32_t exit_status;        /* CKPT_FINAL: the guest's exit status */
	struct ckpt_cpu_state cpu;
	const void *device_state;   /* opaque, versioned by the vnode */
	size_t device_state_len;
};

struct ckpt_txn;

/* Starts checkpoint `index`, which must be ckpt_store__count(). */
struct ckpt_txn *ckpt_txn__begin(struct ckpt_store *st, uint32_t index, char *err,
				 size_t errlen);
/* Adds guest page gpn with its content. Zero pages are recorded as zero and
 * never stored; a content already in the recording is referenced, not
 * stored again. */
int ckpt_txn__add_page(struct ckpt_txn *tx, uint64_t gpn, const void *data, char *err,
		       size_t errlen);
/* The same with the content's hash, ckpt_hash__page(data), known already. */
int ckpt_txn__add_page_hashed(struct ckpt_txn *tx, uint64_t gpn, const void *data,
			      const struct ckpt_hash *hash, char *err, size_t errlen);
/* Copies the state; call once before commit. */
int ckpt_txn__set_state(struct ckpt_txn *tx, const struct ckpt_state *state, char *err,
			size_t errlen);
/* The encoded log of interval index-1 (see ckpt_log_writer__finish), taken
 * over by the transaction. Required for every index > 0. */
int ckpt_txn__set_log(struct ckpt_txn *tx, void *log, size_t len, char *err, size_t errlen);
/* Writes pack, log and manifest atomically and frees tx, whatever the
 * result. On failure nothing of checkpoint `index` remains. */
int ckpt_txn__commit(struct ckpt_txn *tx, char *err, size_t errlen);
void ckpt_txn__abort(struct ckpt_txn *tx);

/* ---- reading ------------------------------------------------------------- */

#define CKPT_PAGE_ZERO 1u /* the page is all zeroes; nothing stored */

struct ckpt_page_ref {
	uint64_t gpn;               /* guest page number: guest RAM offset / 4096 */
	struct ckpt_hash hash;
	uint32_t flags;             /* CKPT_PAGE_ZERO */
	uint32_t pack;              /* checkpoint whose pack holds the content */
	uint64_t offset;            /* record offset in that pack */
	uint32_t stored_len;        /* bytes of the record's payload */
};

struct ckpt_manifest {
	uint32_t index;
	uint64_t guest_time_ns, downtime_ns;
	uint32_t flags;
	int32_t exit_status;
	struct ckpt_cpu_state cpu;
	uint8_t *device_state;
	size_t device_state_len;
	uint64_t page_count;        /* entries, sorted by gpn */
	struct ckpt_page_ref *pages;
	/* statistics of this checkpoint */
	uint64_t zero_pages;        /* entries that are zero pages */
	uint64_t dedup_pages;       /* entries whose content was already stored */
	uint64_t stored_pages;      /* contents stored by this checkpoint */
	uint64_t stored_bytes;      /* their bytes in the pack, after lz4 */
};

int ckpt_manifest__load(struct ckpt_store *st, uint32_t index, struct ckpt_manifest **out,
			char *err, size_t errlen);
/* Decodes and checks a manifest held in memory (what load does after reading
 * the file); `index` is the checkpoint it is expected to be. */
int ckpt_manifest__parse(const void *buf, size_t len, uint32_t index,
			 struct ckpt_manifest **out, char *err, size_t errlen);
void ckpt_manifest__free(struct ckpt_manifest *m);

/* Reads one page into out (4096 bytes), checking its content hash. */
int ckpt_store__read_page(struct ckpt_store *st, const struct ckpt_page_ref *ref, void *out,
			  char *err, size_t errlen);
/* Writes guest RAM as it was at checkpoint index into ram (memory_bytes). */
int ckpt_store__materialize(struct ckpt_store *st, uint32_t index, void *ram, char *err,
			    size_t errlen);

/* Every guest page's reference at one checkpoint, folded from manifests
 * 0..at, for readers that walk the checkpoints in order. */
struct ckpt_pages {
	struct ckpt_store *store;
	uint64_t npages;
	uint32_t at;                 /* the checkpoint the refs describe */
	struct ckpt_page_ref *refs;  /* by gpn; flags CKPT_PAGE_ZERO for zero pages */
};
int ckpt_pages__init(struct ckpt_pages *p, struct ckpt_store *st, uint32_t checkpoint,
		     char *err, size_t errlen);
/* Moves to checkpoint at+1 by applying its manifest. */
int ckpt_pages__advance(struct ckpt_pages *p, char *err, size_t errlen);
/* Page gpn's content at the checkpoint, its hash checked. */
int ckpt_pages__read(struct ckpt_pages *p, uint64_t gpn, void *out, char *err, size_t errlen);
void ckpt_pages__destroy(struct ckpt_pages *p);

/* Checks every file and every page hash of the recording. Each problem is
 * passed to report as one line; returns the number of problems (0: intact),
 * or -1 with err if the check itself could not run. */
long ckpt_store__verify(struct ckpt_store *st, void (*report)(void *opaque, const char *problem),
			void *opaque, char *err, size_t errlen);

/* Writes buf to path as a recording's own files are written: PATH.tmp,
 * fsync, rename, fsync of the directory. A reader finds the old file or the
 * whole new one, and a later file can rely on this one after a crash. For
 * what lives beside a recording (a simulation's schedule and results).
 * The name (after the last /) is at most 251 bytes. */
int ckpt_file__publish(const char *path, const void *buf, size_t len, char *err, size_t errlen);
/* The same for a file that comes in parts, in order: each is written at
 * offset into PATH.tmp (the one at offset 0 starts it afresh), and the last
 * publishes it. */
int ckpt_file__publish_part(const char *path, uint64_t offset, const void *buf, size_t len,
			    bool last, char *err, size_t errlen);

/* ---- export and import ----------------------------------------------------- */

/* How far a long operation is: done of total bytes (total 0: unknown),
 * told now and then to fn. NULL where a function takes one: no word. */
struct ckpt_progress {
	void (*fn)(void *ctx, uint64_t done, uint64_t total);
	void *ctx;
};

/* Writes the whole recording as a tar archive; the compression follows the
 * suffix (.tar, .tar.gz, .tar.xz, .tar.zst, .tar.lz4). Written to a
 * temporary name and renamed. */
int ckpt_archive__export(const char *dir, const char *archive,
			 const struct ckpt_progress *progress, char *err, size_t errlen);
/* Unpacks an archive into dir (which must not exist), refusing absolute
 * paths, "..", links and unknown files, then verifies the recording. On any
 * error dir is not created. */
int ckpt_archive__import(const char *archive, const char *dir,
			 const struct ckpt_progress *progress, char *err, size_t errlen);
/* The same from memory, for the fuzzer. */
int ckpt_archive__import_memory(const void *buf, size_t len, const char *dir, char *err,
				size_t errlen);

/* ---- the nondeterminism log ------------------------------------------------ */

/* A landmark names one dynamic instance of an instruction without a branch
 * counter: the count of synchronous events (port and MMIO accesses) the
 * interval has seen before it, its RIP, and a hash of the GPRs and RFLAGS
 * as they are before it executes. An interrupt is taken, and a
 * checkpoint's stop happens, right before the instruction at the landmark:
 * the landmark is the state the interrupt sees. (DESIGN.md suggests
 * single-stepping the instruction and injecting after it; under the PVM
 * KVM of our build machines a single-step trap in guest user mode is
 * delivered to the guest as #DB instead of exiting, so the landmark names
 * the instruction not yet executed.) With CKPT_LM_HALTED the vCPU was
 * halted: rip follows the hlt, and the event happens while halted. */
#define CKPT_LM_HALTED 1u
/* Bits 1..7: the RFLAGS bits that reg_hash leaves out and the landmark
 * carries, so that a replay matches on the hash and then adopts them:
 * - the arithmetic flags CF, PF, AF, ZF, SF, OF: several instructions
 *   leave some of them undefined, and TCG and the hardware disagree there;
 * - RF: the hardware sets it when an instruction restarts after a fault,
 *   including host page faults that PVM takes for the guest and TCG never
 *   sees, and an interrupt taken before the restart pushes it. */
#define CKPT_LM_RFLAGS_MASK 0xfeu

struct ckpt_landmark {
	uint64_t sync_count;
	uint64_t rip;
	uint64_t reg_hash;
	uint32_t flags;
	/* The GPRs reg_hash covers, raw: a replay compares them inline at the
	 * landmark's instruction, which may be passed many times before its
	 * registers match, and calls out only when they do. The hash still
	 * covers the rest of RFLAGS. Zero on access events. */
	uint64_t gpr[CKPT_GPR__COUNT];
	/* The address space of rip, so that a replay finds the physical
	 * instruction before the guest switches to it. Zero on accesses. */
	uint64_t cr3;
};

/* XXH3-64 of the 16 GPRs and RFLAGS without TF (which single-stepping sets
 * on one side only) and without the bits the landmark carries (see
 * CKPT_LM_RFLAGS_MASK). */
uint64_t ckpt_landmark__reg_hash(const uint64_t gpr[CKPT_GPR__COUNT], uint64_t rflags);
/* The carried RFLAGS bits packed into landmark flag bits, and back. */
uint32_t ckpt_landmark__pack_rflags(uint64_t rflags);
uint64_t ckpt_landmark__unpack_rflags(uint32_t lm_flags);
#define CKPT_RFLAGS_CARRIED 0x108d5ull /* CF PF AF ZF SF OF RF */

enum ckpt_event_kind {
	CKPT_EV_PIO_READ = 1, /* addr = port, size, value */
	CKPT_EV_PIO_WRITE,
	CKPT_EV_MMIO_READ,    /* addr = guest-physical address, size, value */
	CKPT_EV_MMIO_WRITE,
	CKPT_EV_IRQ,          /* value = vector, at = landmark */
	CKPT_EV_CONSOLE_IN,   /* data/size = bytes that reached the UART */
	CKPT_EV_DMA,          /* addr = guest-physical address, data/size */
	CKPT_EV_STOP,         /* at = landmark of the next checkpoint; last event */
	CKPT_EV__COUNT
};

struct ckpt_event {
	enum ckpt_event_kind kind;
	uint64_t guest_time_ns;     /* when, for people and plots; not for replay */
	/* Port and MMIO accesses: at.sync_count is the access's own index in
	 * the interval and at.rip its instruction. IRQ and STOP: the landmark. */
	struct ckpt_landmark at;
	uint64_t addr;
	uint32_t size;              /* access width in bytes, or length of data */
	uint64_t value;
	const uint8_t *data;        /* CONSOLE_IN and DMA */
};

const char *ckpt_event_kind__name(enum ckpt_event_kind kind);

/* Port and MMIO accesses: the synchronous events landmarks count. */
static inline bool ckpt_event_kind__is_access(enum ckpt_event_kind kind)
{
	return kind >= CKPT_EV_PIO_READ && kind <= CKPT_EV_MMIO_WRITE;
}
/* The events that happen at a landmark, which a replay has to find. */
static inline bool ckpt_event_kind__at_landmark(enum ckpt_event_kind kind)
{
	return kind == CKPT_EV_IRQ || kind == CKPT_EV_DMA || kind == CKPT_EV_STOP;
}
/* One readable line (no newline), as `simuboost log show` prints it. */
void ckpt_event__format(const struct ckpt_event *ev, char *out, size_t outlen);

struct ckpt_log_writer;
struct ckpt_log_writer *ckpt_log_writer__new(uint32_t interval);
/* Copies the event (and its data). -1 only when out of memory. */
int ckpt_log_writer__append(struct ckpt_log_writer *w, const struct ckpt_event *ev);
size_t ckpt_log_writer__count(const struct ckpt_log_writer *w);
/* Encodes the log (header, events, checksum) into a malloc'd buffer and
 * frees the writer. */
int ckpt_log_writer__finish(struct ckpt_log_writer *w, void **buf, size_t *len);
void ckpt_log_writer__free(struct ckpt_log_writer *w);

struct ckpt_log;
int ckpt_log__load(struct ckpt_store *st, uint32_t interval, struct ckpt_log **out, char *err,
		   size_t errlen);
/* Decodes and checks an encoded log; `interval` is the one it must be. */
int ckpt_log__parse(const void *buf, size_t len, uint32_t interval, struct ckpt_log **out,
		    char *err, size_t errlen);
size_t ckpt_log__count(const struct ckpt_log *log);
const struct ckpt_event *ckpt_log__event(const struct ckpt_log *log, size_t i);
void ckpt_log__free(struct ckpt_log *log);

#endif
