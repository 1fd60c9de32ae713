/* Internal: the vnode object shared by kvm.c (VM and vCPU setup), cpu.c
 * (register state, guest page walks) and run.c (the exit loop). */
#ifndef SIMUBOOST_VNODE_VM_H
#define SIMUBOOST_VNODE_VM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "checkpoint.h"
#include "devices.h"
#include "guest-mem.h"
#include "loader.h"
#include "vnode.h"

struct vnode {
	int kvm_fd, vm_fd, vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
	struct guest_mem mem;
	struct boot_entry entry;

	struct pic *pic;
	struct pit *pit;
	struct uart *uart;
	int console_out_fd, console_in_fd;
	bool close_console_out, close_console_in;
	bool console_in_eof;

	/* KVM_GET_STATS_FD of the vCPU and where its page-fault counters are
	 * in it (kvm__faults_unfinished); -1 where the KVM has none */
	int stats_fd;
	uint64_t pf_offset[5];
	uint64_t pf_span_start;
	size_t pf_span_len;

	bool halted;            /* in hlt, waiting for an interrupt */
	uint64_t start_time_ns; /* guest time at which the next run starts */
};

/* kvm.c */
#define PF_SPAN_MAX 512 /* bytes of statistics read for the page-fault counters */
/* Guest RAM first, the VM on it second: a guest image is loaded (and a bad
 * one refused) before /dev/kvm is opened. */
int kvm__alloc_mem(struct vnode *vn, uint64_t memory, char *err, size_t errlen);
int kvm__create_vm(struct vnode *vn, char *err, size_t errlen);
int kvm__create_vcpu(struct vnode *vn, char *err, size_t errlen);
void kvm__destroy(struct vnode *vn);
/* The vCPU's page faults so far that KVM took and did not finish: not
 * fixed, emulated, spurious or passed to the guest. One that a signal cut
 * short has walked the guest's page tables, setting accessed and dirty
 * bits, and left its instruction unexecuted. -1 if the KVM keeps no such
 * counters. */
int kvm__faults_unfinished(struct vnode *vn, uint64_t *out);

/* cpu.c */
int cpu__set_boot_state(struct vnode *vn, char *err, size_t errlen);
/* One line naming RIP, CPL and mode, for fault messages. */
void cpu__describe(struct vnode *vn, char *out, size_t outlen);
/* Reads up to len bytes at guest-virtual rip; returns bytes read. */
size_t cpu__read_code(struct vnode *vn, uint64_t rip, uint8_t *out, size_t len);

/* cpu-state.c */
int cpu__save_state(struct vnode *vn, struct ckpt_cpu_state *cpu, char *err, size_t errlen);
int cpu__load_state(struct vnode *vn, const struct ckpt_cpu_state *cpu, char *err, size_t errlen);
/* Is an event injected but not yet delivered (the KVM_RUN after
 * KVM_INTERRUPT ended on a signal before entering the guest)? */
int cpu__event_in_flight(struct vnode *vn, bool *in_flight, char *err, size_t errlen);
/* RIP, or the landmark fields read from the vCPU (rip, reg_hash, the GPRs, CR3
 * and the carried RFLAGS bits; sync_count and CKPT_LM_HALTED are the caller's). */
int cpu__landmark(struct vnode *vn, uint64_t *rip, struct ckpt_landmark *lm, char *err,
		  size_t errlen);

#endif
