/* simuboost test guest: PVH entry (32-bit), switch to long mode, interrupt
 * stubs and the common interrupt path. */
#include "abi.h"

/* PVH: XEN_ELFNOTE_PHYS32_ENTRY (18) in a Xen note.  The descriptor is
 * 8 bytes (like Linux); its low 4 bytes are the 32-bit entry address. */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4, 8, 18
	.asciz "Xen"
	.balign 4
	.quad pvh_entry
	.balign 4

/* Entry: 32-bit protected mode, paging off, flat segments,
 * ebx = struct hvm_start_info physical address. */
	.section .text.boot, "ax"
	.code32
	.globl pvh_entry
pvh_entry:
	cli
	cld
	movl %ebx, %esi                 /* keep start_info in esi */
	movl $boot_stack_top, %esp

	/* Clear PML4 and PDPT (the loader zero-fills .bss, but be sure). */
	movl $boot_pml4, %edi
	xorl %eax, %eax
	movl $2048, %ecx
	rep stosl

	/* 4 page directories: identity map of 0..4 GiB with 2 MiB pages,
	 * supervisor RW.  kmain() refines this from the memory map. */
	movl $boot_pd, %edi
	xorl %ecx, %ecx
1:	movl %ecx, %eax
	shll $21, %eax
	orl $0x83, %eax                 /* P | RW | PS */
	movl %eax, (%edi,%ecx,8)
	movl %ecx, %eax
	shrl $11, %eax
	movl %eax, 4(%edi,%ecx,8)
	incl %ecx
	cmpl $2048, %ecx
	jb 1b

	movl $boot_pd + 0x7, %eax             /* P | RW | US: the PDEs decide */
	movl %eax, boot_pdpt
	addl $0x1000, %eax
	movl %eax, boot_pdpt + 8
	addl $0x1000, %eax
	movl %eax, boot_pdpt + 16
	addl $0x1000, %eax
	movl %eax, boot_pdpt + 24
	movl $boot_pdpt + 0x7, %eax
	movl %eax, boot_pml4

	movl $boot_pml4, %eax
	movl %eax, %cr3
	/* set outright: under nested kvm-amd a read showed CR4.MCE set,
	 * which KVM then kept and TCG, whose CPUID (ours) has no MCE, not */
	movl $0x620, %eax               /* PAE | OSFXSR | OSXMMEXCPT */
	movl %eax, %cr4
	movl $0xc0000080, %ecx          /* EFER */
	rdmsr
	orl $0x100, %eax                /* LME */
	wrmsr
	movl %cr0, %eax
	andl $~0xc, %eax                /* clear EM, TS */
	orl $0x80010023, %eax           /* PG | WP | NE | MP | PE */
	movl %eax, %cr0

	lgdt gdt_ptr
	ljmp $KERNEL_CS, $long_entry

	.code64
long_entry:
	movl $KERNEL_DS, %eax
	movl %eax, %ss
	/* Null DS and ES: 64-bit code ignores them, and an iretq to CPL3
	 * must null them anyway, which the PVM KVM of our build machines
	 * does not do (TCG does); null from the start, both sides agree. */
	xorl %eax, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %fs
	movl %eax, %gs
	movq $boot_stack_top, %rsp
	movl %esi, %edi                 /* zero-extends: rdi = start_info */
	call kmain
2:	cli
	hlt
	jmp 2b

/* 256 interrupt stubs, 16 bytes apart: isr_stubs + 16 * vector. */
	.text
	.balign 16
	.globl isr_stubs
isr_stubs:
	.set vec, 0
	.rept 256
	.balign 16
	.if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	.else
	pushq $0                        /* no error code from the CPU */
	.endif
	pushq $vec
	jmp isr_common
	.set vec, vec + 1
	.endr

/* Saves the GPRs as a struct frame, calls trap(frame) and resumes the
 * frame it returns (the same one, or another task's: context switch). */
isr_common:
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, %rdi
	cld
	call trap
	movq %rax, %rsp
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	addq $16, %rsp                  /* vector, error code */
	iretq

	.data
	.balign 16
	.globl gdt
gdt:
	.quad 0
	/* Accessed bits preset (like Linux): loading a segment then writes
	 * nothing here. Hardware sets the bit on a far jump, TCG does not. */
	.quad 0x00af9b000000ffff        /* 0x08 kernel code, 64-bit */
	.quad 0x00cf93000000ffff        /* 0x10 kernel data */
	.quad 0x00cff3000000ffff        /* 0x18 user data, DPL 3 */
	.quad 0x00affb000000ffff        /* 0x20 user code, 64-bit, DPL 3 */
	.quad 0, 0                      /* 0x28 TSS, filled in by kmain() */
gdt_end:
	.balign 8
	.globl gdt_ptr
gdt_ptr:
	.word gdt_end - gdt - 1
	.quad gdt

	.bss
	.balign 4096
	.globl boot_pml4, boot_pdpt, boot_pd
boot_pml4:
	.skip 4096
boot_pdpt:
	.skip 4096
boot_pd:
	.skip 4096 * 4
	.balign 16
boot_stack:
	.skip 16384
boot_stack_top:

	.section .note.GNU-stack, "", @progbits
