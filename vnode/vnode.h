/* simuboost vnode: a uniprocessor x86-64 VMM on /dev/kvm that owns every
 * device in userspace. This is the only header other modules may use. */
#ifndef SIMUBOOST_VNODE_H
#define SIMUBOOST_VNODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- vm.cfg ---------------------------------------------------------- */

struct vnode_config {
	char *path;        /* the config file, for messages */
	uint64_t memory;   /* guest RAM in bytes */
	char *kernel;      /* paths are resolved relative to the config file */
	char *initrd;      /* NULL: none */
	char *cmdline;     /* never NULL */
	char *console_out; /* "stdout", "none" or a file path */
	char *console_in;  /* "none", "stdin" or a file path */
	char *boot;        /* "auto", "pvh", "elf64" or "bzimage" */
	uint64_t interval_ns; /* checkpoint interval, guest time (record) */
};

/* The defaults of every key, for a machine with no vm.cfg (resuming a
 * checkpoint); free with vnode_config__free. */
void vnode_config__init(struct vnode_config *cfg);
/* Parses and validates a vm.cfg. On error returns -1 and a one-line message
 * "FILE:LINE: KEY: problem" in err; nothing is left allocated. */
int vnode_config__load(struct vnode_config *cfg, const char *path, char *err, size_t errlen);
/* Applies one "key=value" override (e.g. from --set) with the same checks. */
int vnode_config__set(struct vnode_config *cfg, const char *assignment, char *err, size_t errlen);
void vnode_config__free(struct vnode_config *cfg);
/* Writes the documented list of keys, for `simuboost help config`. */
void vnode_config__print_reference(FILE *out);

/* ---- running --------------------------------------------------------- */

enum vnode_exit_reason {
	VNODE_EXIT_IO, VNODE_EXIT_MMIO, VNODE_EXIT_HLT, VNODE_EXIT_IRQ_WINDOW,
	VNODE_EXIT_SIGNAL, VNODE_EXIT_SHUTDOWN, VNODE_EXIT_INTERNAL_ERROR,
	VNODE_EXIT_FAIL_ENTRY, VNODE_EXIT_DEBUG, VNODE_EXIT_OTHER,
	VNODE_EXIT__COUNT
};

enum vnode_io_device {
	VNODE_IO_PIC, VNODE_IO_PIT, VNODE_IO_UART, VNODE_IO_DEBUG_EXIT,
	VNODE_IO_POST, VNODE_IO_UNHANDLED, VNODE_IO__COUNT
};

enum vnode_outcome {
	VNODE_GUEST_EXIT,   /* the guest wrote the debug-exit port */
	VNODE_GUEST_HALTED, /* hlt with interrupts off: nothing can wake it */
	VNODE_TIMEOUT,      /* --timeout expired */
	VNODE_STOPPED,      /* SIGINT/SIGTERM */
	VNODE_GUEST_FAULT,  /* triple fault, emulation failure, entry failure */
};

struct vnode_stats {
	enum vnode_outcome outcome;
	int guest_status;        /* debug-exit value, VNODE_GUEST_EXIT only */
	double wall_seconds;     /* from first KVM_RUN to the end */
	uint64_t exits[VNODE_EXIT__COUNT];
	uint64_t io[VNODE_IO__COUNT];
	uint64_t interrupts_injected;
	uint64_t interrupts_by_vector[256];
	uint64_t timer_ticks_coalesced;
	uint64_t console_bytes;
	uint64_t memory_bytes;
	const char *boot_format;
	char fault[512];         /* VNODE_GUEST_FAULT: what happened, with RIP */
};

struct vnode_run_options {
	double timeout_seconds;  /* 0: none */
	bool quiet;              /* no diagnostics on stderr */
};

struct vnode;
/* Creates the VM, loads the guest and its devices. NULL with err on error. */
struct vnode *vnode__create(const struct vnode_config *cfg, char *err, size_t errlen);
/* Runs the guest until it exits, faults, times out or is stopped. Returns 0
 * if the run could be carried out (see stats->outcome), -1 with err if the
 * VMM itself failed. */
int vnode__run(struct vnode *vn, const struct vnode_run_options *opts,
	       struct vnode_stats *stats, char *err, size_t errlen);
void vnode__destroy(struct vnode *vn);

/* ---- recording (`simuboost record`) ---------------------------------- */

struct ckpt_store;

enum vnode_checkpoint_mode {
	VNODE_CHECKPOINT_COW,       /* write-protect, resume, copy behind the guest */
	VNODE_CHECKPOINT_STOP_COPY, /* the baseline: copy while the vCPU waits */
};

/* Passed to the progress callback after each checkpoint is taken. */
struct vnode_checkpoint_event {
	uint32_t index;
	uint64_t guest_time_ns;
	uint64_t downtime_ns;
	uint64_t written_pages;     /* in the regions written since the last one */
	uint32_t committed;         /* checkpoints on disk so far */
};

struct vnode_record_options {
	uint64_t interval_ns;
	enum vnode_checkpoint_mode mode;
	void (*on_checkpoint)(void *opaque, const struct vnode_checkpoint_event *ev);
	void *opaque;
};

struct vnode_record_stats {
	uint32_t checkpoints;       /* taken */
	uint32_t committed;         /* on disk */
	uint64_t *downtime_ns;      /* one per checkpoint taken; malloc'd */
	uint64_t dirty_pages;       /* pages changed, saved by checkpoints after the first */
	uint64_t wp_faults;         /* guest writes that waited for a region's copy */
	uint64_t write_faults;      /* first writes to a region after a checkpoint */
	uint64_t fault_waits;       /* runs a signal ended in a page fault, given time
				     * to finish the instruction before anything else */
	uint64_t events_logged;
	uint64_t interrupts_logged;
};

/* Runs the guest like vnode__run while writing a recording into store:
 * a checkpoint every interval of guest time (checkpoint 0 before the first
 * instruction, a final one when the guest exits) and the nondeterminism log
 * of every interval. A timeout or stop ends the recording after the last
 * committed checkpoint. Returns -1 with err if recording failed (a full
 * disk, say); the checkpoints committed before stay intact. */
int vnode__record(struct vnode *vn, struct ckpt_store *store, const struct vnode_run_options *opts,
		  const struct vnode_record_options *ropts, struct vnode_stats *stats,
		  struct vnode_record_stats *rstats, char *err, size_t errlen);
void vnode_record_stats__free(struct vnode_record_stats *rstats);

/* Creates a VM in the state of checkpoint `index` of a recording: RAM, CPU
 * and devices, at the checkpoint's guest time. cfg supplies the console;
 * its memory and kernel are ignored. vnode__run then resumes the guest. */
struct vnode *vnode__create_from_checkpoint(const struct vnode_config *cfg,
					    struct ckpt_store *store, uint32_t index, char *err,
					    size_t errlen);

const char *vnode_exit_reason__name(enum vnode_exit_reason r);
const char *vnode_io_device__name(enum vnode_io_device d);
const char *vnode_outcome__name(enum vnode_outcome o);
/* Human-readable summary and its JSON twin (malloc'd string). */
void vnode_stats__print(const struct vnode_stats *stats, FILE *out);
char *vnode_stats__json(const struct vnode_stats *stats);

/* ---- CPUID ----------------------------------------------------------- */

/* The `-cpu` argument that makes QEMU TCG present exactly the vnode's CPUID
 * table. Derived from the table; static storage. */
const char *vnode_cpuid__qemu_cpu(void);
/* Prints the table as the test guest does ("cpuid %08x: a b c d"). */
void vnode_cpuid__print(FILE *out);
/* Checks the table against what this host's KVM supports; -1 with err naming
 * the first missing feature. */
int vnode_cpuid__check_host(char *err, size_t errlen);
/* What a vCPU of this host's KVM really presents after KVM_SET_CPUID2 with
 * the table: some KVMs (the PVM-style one of our build machines) replace
 * leaf 1's feature words with the host's. Prints it like vnode_cpuid__print,
 * or with qemu_cpu set, the -cpu argument derived from it. Lists the leaves
 * that differ from the table on `diffs` if not NULL. */
int vnode_cpuid__print_effective(FILE *out, bool qemu_cpu, FILE *diffs, char *err,
				 size_t errlen);

#endif
