/* simuboost test guest: the kernel (CPL0).
 *
 * Kept deliberately tiny: on the vnode host, kernel mode is emulated at about
 * 2e6 instructions/s, so everything here is boot setup, the timer ISR, the
 * int 0x80 system calls and the context switch.  The work happens in CPL3
 * tasks (usys.c, workloads.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "abi.h"
#include "params.h"
#include "workloads.h"

/* ---- port I/O ----------------------------------------------------------- */

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

/* ---- serial console (16550 at 0x3f8, polled) ------------------------------ */

#define COM1 0x3f8

static void serial_init(void)
{
	outb(COM1 + 1, 0x00); /* IER: no interrupts */
	outb(COM1 + 3, 0x80); /* LCR: DLAB */
	outb(COM1 + 0, 0x01); /* 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* 8N1 */
	outb(COM1 + 4, 0x03); /* MCR: DTR | RTS, OUT2 off (no IRQ) */
}

static void putc_serial(char c)
{
	while (!(inb(COM1 + 5) & 0x20))
		;
	outb(COM1, (uint8_t)c);
}

static void puts_n(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		putc_serial(s[i]);
}

static void puts_serial(const char *s)
{
	while (*s)
		putc_serial(*s++);
}

/* Local formatters: the kernel must not call user-region (SSE) code. */
static size_t k_fmt_u64(char *dst, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		dst[i] = tmp[n - 1 - i];
	return n;
}

static size_t k_fmt_hex(char *dst, uint64_t v, unsigned digits)
{
	for (unsigned i = 0; i < digits; i++)
		dst[i] = "0123456789abcdef"[(v >> (4 * (digits - 1 - i))) & 0xf];
	return digits;
}

/* Minimal printf: %s %c %d %u %x with optional '0', width and 'l'. */
static void kvprintf(const char *fmt, va_list ap)
{
	char buf[24];
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			putc_serial(*fmt);
			continue;
		}
		fmt++;
		char pad = ' ';
		unsigned width = 0;
		int is_long = 0;
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (unsigned)(*fmt++ - '0');
		if (*fmt == 'l') {
			is_long = 1;
			fmt++;
		}
		size_t n = 0;
		switch (*fmt) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			puts_serial(s ? s : "(null)");
			continue;
		}
		case 'c':
			putc_serial((char)va_arg(ap, int));
			continue;
		case 'd': {
			int64_t v = is_long ? va_arg(ap, int64_t) : va_arg(ap, int);
			uint64_t u = (uint64_t)v;
			if (v < 0) {
				putc_serial('-');
				u = -u;
			}
			n = k_fmt_u64(buf, u);
			break;
		}
		case 'u':
			n = k_fmt_u64(buf, is_long ? va_arg(ap, uint64_t) : va_arg(ap, unsigned));
			break;
		case 'x': {
			uint64_t v = is_long ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
			unsigned digits = 1;
			while (digits < 16 && (v >> (4 * digits)))
				digits++;
			n = k_fmt_hex(buf, v, digits);
			break;
		}
		case '%':
			putc_serial('%');
			continue;
		default:
			putc_serial('?');
			continue;
		}
		for (size_t i = n; i < width; i++)
			putc_serial(pad);
		puts_n(buf, n);
	}
}

__attribute__((format(printf, 1, 2))) static void kprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kvprintf(fmt, ap);
	va_end(ap);
}

/* ---- exit ---------------------------------------------------------------- */

/* isa-debug-exit at 0xf4 (QEMU exits with (code << 1) | 1; the vnode with
 * code).  If nothing is there, halt forever. */
__attribute__((noreturn)) static void guest_exit(uint32_t code)
{
	outl(0xf4, code);
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* ---- descriptor tables ----------------------------------------------------- */

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));

struct idt_gate {
	uint16_t off_lo;
	uint16_t sel;
	uint8_t ist;
	uint8_t type;
	uint16_t off_mid;
	uint32_t off_hi;
	uint32_t reserved;
} __attribute__((packed));

struct table_ptr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

static struct tss tss __attribute__((aligned(16)));
static struct idt_gate idt[256] __attribute__((aligned(16)));
static uint8_t df_stack[4096] __attribute__((aligned(16)));

static void set_gate(unsigned vec, unsigned dpl, unsigned ist)
{
	uint64_t off = (uint64_t)(uintptr_t)isr_stubs + 16 * vec;
	idt[vec].off_lo = (uint16_t)off;
	idt[vec].sel = KERNEL_CS;
	idt[vec].ist = (uint8_t)ist;
	idt[vec].type = (uint8_t)(0x8e | (dpl << 5)); /* present interrupt gate */
	idt[vec].off_mid = (uint16_t)(off >> 16);
	idt[vec].off_hi = (uint32_t)(off >> 32);
	idt[vec].reserved = 0;
}

static void tables_init(void)
{
	uint64_t base = (uint64_t)(uintptr_t)&tss;
	uint64_t limit = sizeof(tss) - 1;

	tss.iomap_base = sizeof(tss); /* no I/O bitmap: CPL3 has no port access */
	tss.ist[0] = (uint64_t)(uintptr_t)(df_stack + sizeof(df_stack));
	gdt[5] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ULL << 40) |
		 (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	gdt[6] = base >> 32;
	__asm__ volatile("ltr %w0" : : "r"(TSS_SEL));

	for (unsigned v = 0; v < 256; v++)
		set_gate(v, 0, v == 8 ? 1 : 0);
	struct table_ptr p = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };
	__asm__ volatile("lidt %0" : : "m"(p));
}

/* ---- 8259 PIC and 8254 PIT --------------------------------------------------- */

static void pic_init(void)
{
	outb(0x20, 0x11); /* ICW1: edge, cascade, ICW4 */
	outb(0xa0, 0x11);
	outb(0x21, 0x20); /* ICW2: vectors 0x20.. */
	outb(0xa1, 0x28); /* and 0x28.. */
	outb(0x21, 0x04); /* ICW3: slave on IRQ2 */
	outb(0xa1, 0x02);
	outb(0x21, 0x01); /* ICW4: 8086 mode */
	outb(0xa1, 0x01);
	outb(0x21, 0xfa); /* unmask IRQ0 and IRQ2 only */
	outb(0xa1, 0xff);
}

static void pit_init(uint32_t hz)
{
	uint32_t div = (1193182 + hz / 2) / hz;
	outb(0x43, 0x34); /* channel 0, lobyte/hibyte, mode 2, binary */
	outb(0x40, (uint8_t)div);
	outb(0x40, (uint8_t)(div >> 8));
}

/* ---- memory map ------------------------------------------------------------ */

struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};

struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

#define HVM_START_MAGIC 0x336ec578
#define FOUR_GIB 0x100000000ULL

static uint64_t user_top; /* end of usable user memory (2 MiB aligned) */
static uint64_t mem_mib;  /* RAM size reported in the first line */

static void memory_init(const struct hvm_start_info *si)
{
	uint64_t top = 64ULL << 20, total = 64ULL << 20;

	if (si && si->version >= 1 && si->memmap_entries > 0 && si->memmap_paddr) {
		const struct hvm_memmap_entry *m =
			(const struct hvm_memmap_entry *)(uintptr_t)si->memmap_paddr;
		total = 0;
		top = 0;
		for (uint32_t i = 0; i < si->memmap_entries; i++) {
			if (m[i].type != 1)
				continue;
			total += m[i].size;
			/* The RAM range that holds the user image. */
			if (m[i].addr <= USER_BASE && m[i].addr + m[i].size > USER_BASE)
				top = m[i].addr + m[i].size;
		}
	}
	if (top > FOUR_GIB)
		top = FOUR_GIB;
	top &= ~(uint64_t)(LARGE_PAGE - 1);
	if (top < USER_IMAGE_END) {
		kprintf("simuboost-guest: error: RAM ends at 0x%lx, need 0x%x\n", top,
			USER_IMAGE_END);
		guest_exit(EXIT_PANIC);
	}
	user_top = top;
	mem_mib = (total + (1 << 20) - 1) >> 20;

	/* 0..USER_BASE stays supervisor-only; user image and working set are
	 * user-accessible; nothing above the usable RAM is mapped. */
	for (uint64_t j = USER_BASE / LARGE_PAGE; j < 2048; j++) {
		uint64_t addr = j * LARGE_PAGE;
		boot_pd[j] = addr < user_top ? (addr | 0x87) : 0; /* P|RW|US|PS */
	}
	uint64_t cr3;
	__asm__ volatile("mov %%cr3, %0; mov %0, %%cr3" : "=r"(cr3) : : "memory");
}

/* ---- tasks ------------------------------------------------------------------ */

enum task_state { T_UNUSED, T_RUNNABLE, T_DEAD };

struct task {
	uint8_t fx[512] __attribute__((aligned(16))); /* FXSAVE area */
	struct frame *frame;                           /* while not running */
	uint64_t result;
	uint32_t state;
};

#define IDLE MAX_TASKS /* the boot context: kmain's sti;hlt loop */

static struct task tasks[MAX_TASKS + 1];
static uint8_t kstacks[MAX_TASKS][KSTACK_SIZE] __attribute__((aligned(16)));
static uint8_t fx_template[512] __attribute__((aligned(16)));
static uint32_t ntasks;
static uint32_t cur = IDLE;
static uint32_t last_user = MAX_TASKS - 1;
static volatile uint32_t live_tasks;
static volatile uint64_t ticks;
static uint32_t slice_ticks, quantum;

/* spaces=1: every task runs in an address space of its own, copies of the
 * boot page tables, and memwrite's tasks find their shares of the working
 * set all at WS_BASE: one virtual page, as many physical ones as tasks,
 * and a CR3 load at every switch between tasks. What a replay's trace
 * must get right about physical addresses; the results are the same. */
static uint64_t task_pml4[MAX_TASKS][512] __attribute__((aligned(4096)));
static uint64_t task_pdpt[MAX_TASKS][512] __attribute__((aligned(4096)));
static uint64_t task_pd[MAX_TASKS][2048] __attribute__((aligned(4096)));
static uint64_t task_cr3[MAX_TASKS + 1]; /* 0: the boot tables */

/* Task id's address space; its working set pointer for the task. */
static uint64_t space_create(uint32_t id)
{
	uint64_t ws = WS_BASE;
	for (uint32_t j = 0; j < 2048; j++)
		task_pd[id][j] = boot_pd[j];
	for (uint32_t k = 0; k < 4; k++)
		task_pdpt[id][k] = (uint64_t)(uintptr_t)&task_pd[id][k * 512] | 7;
	task_pml4[id][0] = (uint64_t)(uintptr_t)task_pdpt[id] | 7;
	if (user_params.workload == WL_MEMWRITE) {
		/* the share's 2 MiB pages (kmain checked that they are whole)
		 * at WS_BASE; the task adds its share's offset to ws */
		uint64_t pb, pe;
		wl_share(((uint64_t)user_params.ws_mib << 20) / 4096, user_params.tasks, id, &pb,
			 &pe);
		for (uint64_t off = 0; off < (pe - pb) * 4096; off += LARGE_PAGE)
			task_pd[id][(WS_BASE + off) / LARGE_PAGE] =
				(WS_BASE + pb * 4096 + off) | 0x87; /* P|RW|US|PS */
		ws = WS_BASE - pb * 4096;
	}
	task_cr3[id] = (uint64_t)(uintptr_t)task_pml4[id];
	return ws;
}

static void *kstack_top(uint32_t id)
{
	return kstacks[id] + KSTACK_SIZE;
}

static void task_create(uint32_t id)
{
	struct task *t = &tasks[id];
	struct frame *f = (struct frame *)kstack_top(id) - 1;
	uint64_t *fq = (uint64_t *)f;

	for (size_t i = 0; i < sizeof(*f) / 8; i++)
		fq[i] = 0;
	f->rip = (uint64_t)(uintptr_t)user_task_entry;
	f->cs = USER_CS;
	f->rflags = 0x202; /* IF */
	f->rsp = (uint64_t)(uintptr_t)(user_stacks[id] + USER_STACK_SIZE) - 8;
	f->ss = USER_DS;
	f->rdi = (uint64_t)(uintptr_t)&user_params;
	f->rsi = id;
	f->rdx = user_params.spaces ? space_create(id) : WS_BASE;
	for (size_t i = 0; i < sizeof(t->fx) / 8; i++)
		((uint64_t *)t->fx)[i] = ((const uint64_t *)fx_template)[i];
	t->frame = f;
	t->result = 0;
	t->state = T_RUNNABLE;
	live_tasks++;
}

/* Round-robin: saves f as the current context and returns the next one. */
static struct frame *schedule(struct frame *f)
{
	uint32_t next = IDLE;

	for (uint32_t i = 1; i <= ntasks; i++) {
		uint32_t id = (last_user + i) % ntasks;
		if (tasks[id].state == T_RUNNABLE) {
			next = id;
			break;
		}
	}
	slice_ticks = 0;
	tasks[cur].frame = f;
	if (next == cur)
		return f;
	if (cur != IDLE && tasks[cur].state == T_RUNNABLE)
		__asm__ volatile("fxsave %0" : "=m"(tasks[cur].fx));
	if (next != IDLE) {
		__asm__ volatile("fxrstor %0" : : "m"(tasks[next].fx));
		tss.rsp[0] = (uint64_t)(uintptr_t)kstack_top(next);
		last_user = next;
	}
	if (task_cr3[cur] != task_cr3[next]) {
		uint64_t cr3 = task_cr3[next] ? task_cr3[next] : (uint64_t)(uintptr_t)boot_pml4;
		__asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
	}
	cur = next;
	return tasks[next].frame;
}

/* ---- traps ------------------------------------------------------------------ */

static const char *const exc_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS",
	"#NP", "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
	"#22", "#23", "#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31",
};

__attribute__((noreturn)) static void panic_frame(const struct frame *f)
{
	uint64_t cr2;
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	kprintf("panic: vector %lu (%s) err=0x%lx rip=0x%lx cr2=0x%lx cs=0x%lx rsp=0x%lx task=%d\n",
		f->vec, f->vec < 32 ? exc_names[f->vec] : "unexpected interrupt", f->err,
		f->rip, cr2, f->cs, f->rsp, cur == IDLE ? -1 : (int)cur);
	guest_exit(EXIT_PANIC);
}

static int user_range_ok(uint64_t buf, uint64_t len)
{
	return len <= SYS_WRITE_MAX && buf >= USER_BASE && buf < user_top &&
	       len <= user_top - buf;
}

/* The system calls that touch devices run with interrupts enabled, so that
 * timer interrupts land in kernel mode too (after a port access, where KVM
 * offers interrupt windows): a replay has to hit those as well. The timer
 * only counts such a tick (see trap): the kernel is not preemptible. */
static void device_work_begin(void)
{
	__asm__ volatile("sti" : : : "memory");
}

static void device_work_end(void)
{
	__asm__ volatile("cli" : : : "memory");
}

static struct frame *syscall(struct frame *f)
{
	switch (f->rax) {
	case SYS_WRITE:
		if (!user_range_ok(f->rdi, f->rsi)) {
			f->rax = (uint64_t)-1;
			return f;
		}
		device_work_begin();
		puts_n((const char *)(uintptr_t)f->rdi, f->rsi);
		device_work_end();
		f->rax = f->rsi;
		return f;
	case SYS_YIELD:
		f->rax = 0;
		return schedule(f);
	case SYS_EXIT:
		if (cur == IDLE)
			panic_frame(f);
		tasks[cur].result = f->rdi;
		tasks[cur].state = T_DEAD;
		live_tasks--;
		return schedule(f);
	case SYS_GETTICKS:
		f->rax = ticks;
		return f;
	case SYS_DEVREAD:
		device_work_begin();
		if (f->rdi == WL_PORT_PIT0) {
			outb(0x43, 0x00); /* latch channel 0 */
			uint8_t lo = inb(0x40);
			uint8_t hi = inb(0x40);
			f->rax = (uint64_t)lo | (uint64_t)hi << 8;
		} else if (f->rdi == WL_PORT_UART_LSR) {
			f->rax = inb(COM1 + 5);
		} else {
			f->rax = (uint64_t)-1;
		}
		device_work_end();
		return f;
	default:
		f->rax = (uint64_t)-1;
		return f;
	}
}

struct frame *trap(struct frame *f)
{
	switch (f->vec) {
	case 0x20: /* IRQ0: PIT */
		outb(0x20, 0x20);
		ticks++;
		if ((f->cs & 3) == 0 && cur != IDLE)
			return f; /* in a system call's device work */
		if (++slice_ticks >= quantum || cur == IDLE)
			return schedule(f);
		return f;
	case 0x27: /* spurious IRQ7: no EOI */
		return f;
	case 0x2f: /* spurious IRQ15: EOI to the master only */
		outb(0x20, 0x20);
		return f;
	case SYSCALL_VECTOR:
		if ((f->cs & 3) == 3 && f->rip >= USER_BASE && f->rip + 2 <= USER_IMAGE_END &&
		    ((const uint8_t *)(uintptr_t)f->rip)[0] == 0x0f &&
		    ((const uint8_t *)(uintptr_t)f->rip)[1] == 0x0b) {
			f->rip += SYSCALL_INSN_LEN;
			return syscall(f);
		}
		panic_frame(f);
	default:
		panic_frame(f);
	}
}

/* ---- cpuid ------------------------------------------------------------------- */

static void cpuid(uint32_t leaf, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(0));
}

static void cpuid_print_range(uint32_t first, uint32_t last)
{
	uint32_t r[4];
	for (uint32_t leaf = first; leaf <= last; leaf++) {
		cpuid(leaf, r);
		kprintf("cpuid %08x: %08x %08x %08x %08x\n", leaf, r[0], r[1], r[2], r[3]);
	}
}

static void cpuid_kernel(void)
{
	uint32_t r[4];
	puts_serial("cpuid-begin\n");
	cpuid(0, r);
	cpuid_print_range(0, r[0] > 0xff ? 0xff : r[0]);
	cpuid(0x80000000, r);
	if (r[0] >= 0x80000000)
		cpuid_print_range(0x80000000, r[0] > 0x800000ff ? 0x800000ff : r[0]);
	puts_serial("cpuid-end\n");
}

/* ---- main ----------------------------------------------------------------------- */

static void warn(void *ctx, const char *what, const char *tok, size_t toklen)
{
	(void)ctx;
	kprintf("simuboost-guest: warning: %s: ", what);
	puts_n(tok, toklen);
	putc_serial('\n');
}

void kmain(uint32_t start_info_paddr)
{
	const struct hvm_start_info *si =
		(const struct hvm_start_info *)(uintptr_t)start_info_paddr;
	const char *cmdline = "";
	struct wl_params p;

	serial_init();
	if (!si || si->magic != HVM_START_MAGIC)
		si = NULL;
	else if (si->cmdline_paddr)
		cmdline = (const char *)(uintptr_t)si->cmdline_paddr;
	memory_init(si);
	tables_init();

	/* Initial FPU/SSE state of a task, as after FNINIT: FCW 0x37f, all x87
	 * registers empty, MXCSR 0x1f80 (no x87 instruction needed here). */
	fx_template[0] = 0x7f;
	fx_template[1] = 0x03;
	fx_template[24] = 0x80;
	fx_template[25] = 0x1f;

	/* Parse twice: the first line must come before any warning. */
	wl_parse_cmdline(cmdline, &p, NULL, NULL);
	kprintf("simuboost-guest: workload=%s tasks=%u hz=%u scale=%lu ws=%u spaces=%u mem=%lu\n",
		wl_name(p.workload), p.tasks, p.hz, p.scale, p.ws_mib, p.spaces, mem_mib);
	if (!si)
		puts_serial("simuboost-guest: warning: no PVH start info, assuming 64 MiB\n");
	wl_parse_cmdline(cmdline, &p, warn, NULL);
	if (p.workload == WL_MEMWRITE &&
	    ((uint64_t)p.ws_mib << 20) > user_top - WS_BASE) {
		kprintf("simuboost-guest: error: ws=%u MiB does not fit (%lu MiB available)\n",
			p.ws_mib, (user_top - WS_BASE) >> 20);
		guest_exit(EXIT_PANIC);
	}
	if (p.spaces && p.workload == WL_MEMWRITE) {
		/* whole 2 MiB pages per share */
		uint64_t pages = ((uint64_t)p.ws_mib << 20) / 4096;
		for (uint32_t id = 0; id < p.tasks; id++) {
			uint64_t pb, pe;
			wl_share(pages, p.tasks, id, &pb, &pe);
			if ((pb * 4096) % LARGE_PAGE || (pe * 4096) % LARGE_PAGE) {
				kprintf("simuboost-guest: warning: spaces=1: ws=%u MiB does not "
					"split into whole 2 MiB pages for %u tasks: one address "
					"space for all\n",
					p.ws_mib, p.tasks);
				p.spaces = 0;
				break;
			}
		}
	}
	user_params = p;

	if (p.workload == WL_CPUID) {
		cpuid_kernel();
		ntasks = 1; /* one user task prints the user-mode view */
	} else {
		ntasks = p.tasks;
	}
	for (uint32_t id = 0; id < ntasks; id++)
		task_create(id);

	quantum = p.hz / 100; /* 10 ms time slices */
	pic_init();
	pit_init(p.hz);

	/* Idle: the first tick switches to task 0; when all tasks have exited
	 * the scheduler comes back here. */
	while (live_tasks)
		__asm__ volatile("sti; hlt; cli" : : : "memory");

	if (p.workload == WL_CPUID)
		guest_exit(EXIT_OK);
	uint64_t acc = wl_combine_init(p.workload);
	for (uint32_t id = 0; id < ntasks; id++)
		acc = wl_combine(acc, tasks[id].result, id);
	kprintf("checksum %s 0x%016lx\n", wl_name(p.workload), acc);
	kprintf("ticks %lu\n", ticks);
	guest_exit(EXIT_OK);
}
