/* simuboost test guest: layout and ABI shared by the kernel (entry.S,
 * kernel.c) and the user runtime (usys.c).  Usable from assembly. */
#ifndef SIMUBOOST_GUEST_ABI_H
#define SIMUBOOST_GUEST_ABI_H

/* Physical = virtual (identity map with 2 MiB pages). */
#define KERNEL_BASE 0x100000   /* kernel image: supervisor-only, 0..4 MiB */
#define USER_BASE 0x400000     /* user image (text, data, stacks): 4..8 MiB */
#define USER_IMAGE_END 0x800000
#define WS_BASE 0x800000       /* memwrite working set from 8 MiB up */
#define LARGE_PAGE 0x200000

/* GDT selectors. */
#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER_DS 0x1b           /* GDT index 3, RPL 3 */
#define USER_CS 0x23           /* GDT index 4, RPL 3 */
#define TSS_SEL 0x28           /* GDT index 5 (16 bytes) */

/* System calls: `ud2` from CPL3, rax = number, rdi/rsi = arguments, result
 * in rax; every other register (GPRs and SSE state) is preserved. The #UD
 * handler recognises the ud2 and resumes after it.
 *
 * Why not int 0x80 or SYSCALL: under the PVM-style KVM of our build
 * machines, guest user mode runs natively on the host's descriptor tables,
 * so `int n` from CPL3 arrives in the guest as #UD and SYSCALL jumps to
 * LSTAR without leaving CPL3. Exceptions and external interrupts from CPL3
 * are delivered through the guest IDT on every platform, and taking the
 * same #UD path under KVM and under QEMU TCG keeps both runs identical,
 * which exact replay needs. */
#define SYSCALL_VECTOR 6 /* #UD */
#define SYSCALL_INSN_LEN 2 /* 0f 0b */
#define SYS_WRITE 0   /* write(buf, len) -> len or -1 */
#define SYS_YIELD 1   /* yield() -> 0 */
#define SYS_EXIT 2    /* exit(result), does not return */
#define SYS_GETTICKS 3 /* getticks() -> timer ticks since boot */
#define SYS_DEVREAD 4 /* devread(port) -> value, or -1 for other ports */
#define SYS_WRITE_MAX 4096

#define MAX_TASKS 16
#define USER_STACK_SIZE 0x20000
#define KSTACK_SIZE 0x4000

#define EXIT_OK 0
#define EXIT_PANIC 0x7e

#ifndef __ASSEMBLER__
#include <stdint.h>

#include "workloads.h"

/* Saved by isr_common (entry.S), lowest address first. */
struct frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vec, err;
	uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

/* entry.S */
extern uint64_t boot_pml4[512];
extern uint64_t boot_pd[2048];
extern uint64_t gdt[7];
extern uint8_t isr_stubs[];

/* kernel.c, called from entry.S */
void kmain(uint32_t start_info_paddr);
struct frame *trap(struct frame *f);

/* usys.c, in the user region */
extern struct wl_params user_params;
extern uint8_t user_stacks[MAX_TASKS][USER_STACK_SIZE];
void user_task_entry(const struct wl_params *p, uint64_t id, void *ws)
	__attribute__((noreturn));
#endif

#endif
