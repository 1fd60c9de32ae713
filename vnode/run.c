/* The vnode's life: create the VM from a config, run the vCPU exit loop,
 * route port I/O to the userspace devices and inject interrupts at
 * interrupt windows with KVM_INTERRUPT. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "record.h"
#include "vm.h"

#define PORT_DEBUG_EXIT 0xf4 /* same port as QEMU's isa-debug-exit */
#define PORT_POST 0x80       /* POST codes; Linux also uses it as an I/O delay */
#define CONSOLE_POLL_NS 10000000ULL
#define SIG_KICK SIGUSR1     /* ends KVM_RUN when a device deadline is due */

/* Set by SIGINT/SIGTERM: a signal handler has nowhere else to write. */
static volatile sig_atomic_t stop_requested;

static void on_kick(int sig) { (void)sig; }
static void on_stop(int sig) { (void)sig; stop_requested = 1; }

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void pic_line_irq0(void *opaque, bool level) { pic__set_irq(opaque, 0, level); }
static void pic_line_irq4(void *opaque, bool level) { pic__set_irq(opaque, 4, level); }

static enum boot_format boot_format_of(const char *name)
{
	if (!strcmp(name, "pvh"))
		return BOOT_FORMAT_PVH;
	if (!strcmp(name, "elf64"))
		return BOOT_FORMAT_ELF64;
	if (!strcmp(name, "bzimage"))
		return BOOT_FORMAT_BZIMAGE;
	return BOOT_FORMAT_AUTO;
}

static int open_console(struct vnode *vn, const struct vnode_config *cfg, char *err, size_t errlen)
{
	vn->console_in_fd = -1;
	if (!strcmp(cfg->console_out, "stdout")) {
		vn->console_out_fd = STDOUT_FILENO;
	} else {
		const char *path = !strcmp(cfg->console_out, "none") ? "/dev/null" : cfg->console_out;
		vn->console_out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (vn->console_out_fd < 0) {
			snprintf(err, errlen, "%s: console_out '%s': %s", cfg->path ? cfg->path : "config",
				 path, strerror(errno));
			return -1;
		}
		vn->close_console_out = true;
	}
	if (!strcmp(cfg->console_in, "stdin")) {
		vn->console_in_fd = STDIN_FILENO;
	} else if (strcmp(cfg->console_in, "none")) {
		vn->console_in_fd = open(cfg->console_in, O_RDONLY | O_CLOEXEC);
		if (vn->console_in_fd < 0) {
			snprintf(err, errlen, "%s: console_in '%s': %s", cfg->path ? cfg->path : "config",
				 cfg->console_in, strerror(errno));
			return -1;
		}
		vn->close_console_in = true;
	}
	return 0;
}

/* The VM with its memory, vCPU, console and devices; with `boot`, the guest
 * image loaded into its memory before KVM is asked for anything. */
static struct vnode *create_machine(const struct vnode_config *cfg, uint64_t memory,
				    const struct boot_request *boot, char *err, size_t errlen)
{
	struct vnode *vn = calloc(1, sizeof(*vn));
	if (!vn) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	vn->kvm_fd = vn->vm_fd = vn->vcpu_fd = vn->stats_fd = -1;
	vn->console_out_fd = vn->console_in_fd = -1;
	if (kvm__alloc_mem(vn, memory, err, errlen) != 0 ||
	    (boot && loader__load(&vn->mem, boot, &vn->entry, err, errlen) != 0) ||
	    kvm__create_vm(vn, err, errlen) != 0 ||
	    kvm__create_vcpu(vn, err, errlen) != 0 ||
	    open_console(vn, cfg, err, errlen) != 0)
		goto fail;
	vn->pic = pic__new();
	vn->pit = vn->pic ? pit__new(pic_line_irq0, vn->pic) : NULL;
	vn->uart = vn->pit ? uart__new(vn->console_out_fd, vn->console_in_fd, pic_line_irq4, vn->pic)
			   : NULL;
	if (!vn->uart) {
		snprintf(err, errlen, "out of memory creating devices");
		goto fail;
	}
	return vn;
fail:
	vnode__destroy(vn);
	return NULL;
}

struct vnode *vnode__create(const struct vnode_config *cfg, char *err, size_t errlen)
{
	struct boot_request req = {
		.kernel_path = cfg->kernel,
		.initrd_path = cfg->initrd,
		.cmdline = cfg->cmdline ? cfg->cmdline : "",
		.format = boot_format_of(cfg->boot ? cfg->boot : "auto"),
	};
	struct vnode *vn = create_machine(cfg, cfg->memory, &req, err, errlen);
	if (!vn)
		return NULL;
	if (cpu__set_boot_state(vn, err, errlen) != 0) {
		vnode__destroy(vn);
		return NULL;
	}
	return vn;
}

struct vnode *vnode__create_from_checkpoint(const struct vnode_config *cfg,
					    struct ckpt_store *store, uint32_t index, char *err,
					    size_t errlen)
{
	const struct ckpt_info *info = ckpt_store__info(store);
	if (index >= ckpt_store__count(store)) {
		snprintf(err, errlen, "%s: no checkpoint %u (the recording has %u)",
			 ckpt_store__dir(store), index, ckpt_store__count(store));
		return NULL;
	}
	struct ckpt_manifest *m = NULL;
	if (ckpt_manifest__load(store, index, &m, err, errlen) != 0)
		return NULL;
	struct vnode *vn = NULL;
	if (m->flags & CKPT_FINAL) {
		snprintf(err, errlen, "checkpoint %u was taken when the guest exited (status %d): "
				      "nothing runs after it", index, m->exit_status);
		goto fail;
	}
	vn = create_machine(cfg, info->memory_bytes, NULL, err, errlen);
	if (!vn)
		goto fail;
	vn->entry.format_name = "checkpoint";
	if (ckpt_store__materialize(store, index, vn->mem.host, err, errlen) != 0 ||
	    cpu__load_state(vn, &m->cpu, err, errlen) != 0)
		goto fail;
	char derr[256];
	if (devices__restore(vn->pic, vn->pit, vn->uart, m->device_state, m->device_state_len,
			     derr, sizeof(derr)) != 0) {
		snprintf(err, errlen, "checkpoint %u: device state: %s", index, derr);
		goto fail;
	}
	vn->start_time_ns = m->guest_time_ns;
	ckpt_manifest__free(m);
	return vn;
fail:
	ckpt_manifest__free(m);
	vnode__destroy(vn);
	return NULL;
}

void vnode__destroy(struct vnode *vn)
{
	if (!vn)
		return;
	uart__free(vn->uart);
	pit__free(vn->pit);
	pic__free(vn->pic);
	if (vn->close_console_out)
		close(vn->console_out_fd);
	if (vn->close_console_in)
		close(vn->console_in_fd);
	kvm__destroy(vn);
	free(vn);
}

/* ---- the exit loop ----------------------------------------------------- */

struct run_state {
	struct vnode *vn;
	struct vnode_stats *stats;
	uint64_t t0;            /* monotonic ns at the first KVM_RUN */
	uint64_t timeout_at;    /* guest-time ns, UINT64_MAX: none */
	timer_t kick_timer;
	uint64_t armed_for;     /* guest-time deadline the timer is armed for */
	sigset_t run_mask;      /* signal mask while in KVM_RUN and in waits */
	bool done;
	struct recorder *rec;   /* NULL unless recording */
	bool io_pending;        /* an I/O exit KVM completes on the next KVM_RUN */
	bool faulted_insn;      /* see note_fault_wait */
	uint64_t faults_unfinished; /* before the run; UINT64_MAX: unknown */
	unsigned fault_waits;   /* runs in a row it has been so */
	uint64_t grace_until;   /* guest time the next run may last until */
	char *err;              /* where a VMM failure inside the loop is described */
	size_t errlen;
	bool vmm_failed;
};

static uint64_t now_ns(const struct run_state *rs) { return monotonic_ns() - rs->t0; }

static void finish(struct run_state *rs, enum vnode_outcome outcome)
{
	rs->stats->outcome = outcome;
	rs->done = true;
}

/* The VMM itself failed (an ioctl, the disk): rs->err says what. */
static void vmm_failed(struct run_state *rs)
{
	rs->vmm_failed = true;
	rs->done = true;
}

static void guest_fault(struct run_state *rs, const char *what)
{
	char where[256];
	cpu__describe(rs->vn, where, sizeof(where));
	snprintf(rs->stats->fault, sizeof(rs->stats->fault), "%s at %s", what, where);
	finish(rs, VNODE_GUEST_FAULT);
}

static bool port_io_byte(struct run_state *rs, uint16_t port, bool is_write, uint8_t *data,
			 uint64_t now)
{
	struct vnode *vn = rs->vn;
	struct vnode_stats *st = rs->stats;
	if (pic__io(vn->pic, port, is_write, data)) {
		st->io[VNODE_IO_PIC]++;
		return true;
	}
	if (pit__io(vn->pit, port, is_write, data, now)) {
		st->io[VNODE_IO_PIT]++;
		return true;
	}
	if (uart__io(vn->uart, port, is_write, data)) {
		st->io[VNODE_IO_UART]++;
		return true;
	}
	return false;
}

/* One port access of an I/O exit; reads fill data. */
static void port_access(struct run_state *rs, uint16_t port, bool is_write, uint8_t *data,
			uint8_t size, uint64_t now)
{
	if (port == PORT_DEBUG_EXIT) {
		rs->stats->io[VNODE_IO_DEBUG_EXIT]++;
		if (is_write) {
			uint32_t v = 0;
			memcpy(&v, data, size);
			rs->stats->guest_status = (int)v;
			finish(rs, VNODE_GUEST_EXIT);
		} else {
			memset(data, 0xff, size);
		}
		return;
	}
	if (port == PORT_POST) {
		rs->stats->io[VNODE_IO_POST]++;
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	/* The PC devices are byte-wide; wider accesses touch consecutive
	 * ports, as the ISA bus would split them. */
	bool handled = false;
	for (uint8_t b = 0; b < size; b++)
		handled |= port_io_byte(rs, (uint16_t)(port + b), is_write, data + b, now);
	if (!handled) {
		rs->stats->io[VNODE_IO_UNHANDLED]++;
		if (!is_write)
			memset(data, 0xff, size);
	}
}

/* The RIP of the instruction an I/O exit stopped at, for the log; one
 * register read serves every element of a string instruction. */
static bool exit_rip(struct run_state *rs, uint64_t *rip)
{
	if (cpu__landmark(rs->vn, rip, NULL, rs->err, rs->errlen) == 0)
		return true;
	vmm_failed(rs);
	return false;
}

static void log_access(struct run_state *rs, enum ckpt_event_kind kind, uint64_t addr,
		       uint32_t size, const uint8_t *data, uint64_t rip, uint64_t now)
{
	uint64_t value = 0;
	memcpy(&value, data, size < sizeof(value) ? size : sizeof(value));
	recorder__log_access(rs->rec, kind, addr, size, value, rip, now);
}

static void handle_io(struct run_state *rs)
{
	struct kvm_run *run = rs->vn->run;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
	uint8_t *base = (uint8_t *)run + run->io.data_offset;
	uint64_t now = now_ns(rs);
	uint64_t rip = 0;
	if (rs->rec && !exit_rip(rs, &rip))
		return;
	for (uint32_t i = 0; i < run->io.count && !rs->done; i++) {
		uint8_t *data = base + (size_t)i * run->io.size;
		port_access(rs, run->io.port, is_write, data, run->io.size, now);
		if (rs->rec)
			log_access(rs, is_write ? CKPT_EV_PIO_WRITE : CKPT_EV_PIO_READ, run->io.port,
				   run->io.size, data, rip, now);
	}
}

static void handle_mmio(struct run_state *rs)
{
	struct kvm_run *run = rs->vn->run;
	/* Nothing is mapped there yet: reads float high, writes vanish. */
	if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
	uint64_t rip;
	if (rs->rec && exit_rip(rs, &rip))
		log_access(rs, run->mmio.is_write ? CKPT_EV_MMIO_WRITE : CKPT_EV_MMIO_READ,
			   run->mmio.phys_addr, run->mmio.len, run->mmio.data, rip, now_ns(rs));
}

static void handle_internal_error(struct run_state *rs)
{
	struct kvm_run *run = rs->vn->run;
	struct kvm_regs r;
	char msg[200];
	if (run->internal.suberror != KVM_INTERNAL_ERROR_EMULATION) {
		snprintf(msg, sizeof(msg), "KVM internal error, suberror %u", run->internal.suberror);
		guest_fault(rs, msg);
		return;
	}
	uint8_t bytes[15];
	size_t n = 0;
	if (run->emulation_failure.ndata >= 3 &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
		n = run->emulation_failure.insn_size;
		if (n > sizeof(bytes))
			n = sizeof(bytes);
		memcpy(bytes, run->emulation_failure.insn_bytes, n);
	} else if (ioctl(rs->vn->vcpu_fd, KVM_GET_REGS, &r) == 0) {
		n = cpu__read_code(rs->vn, r.rip, bytes, sizeof(bytes));
	}
	int pos = snprintf(msg, sizeof(msg), "KVM emulation failure (instruction bytes:");
	for (size_t i = 0; i < n && pos > 0 && (size_t)pos < sizeof(msg) - 4; i++)
		pos += snprintf(msg + pos, sizeof(msg) - (size_t)pos, " %02x", bytes[i]);
	if (pos > 0 && (size_t)pos < sizeof(msg) - 2)
		snprintf(msg + pos, sizeof(msg) - (size_t)pos, "%s)", n ? "" : " unreadable");
	guest_fault(rs, msg);
}

/* Programs the kick timer for the earliest thing that needs the vCPU thread:
 * the PIT's next edge, console input polling, or the run's timeout. */
static bool console_input_open(const struct vnode *vn)
{
	return vn->console_in_fd >= 0 && !vn->console_in_eof;
}

/* The next guest time at which a device or the run's timeout needs us. */
static uint64_t next_deadline(const struct run_state *rs)
{
	uint64_t when = pit__next_deadline(rs->vn->pit);
	if (rs->rec && rs->rec->next_boundary < when)
		when = rs->rec->next_boundary;
	if (rs->timeout_at < when)
		when = rs->timeout_at;
	return rs->faulted_insn && when < rs->grace_until ? rs->grace_until : when;
}

static void arm_kick(struct run_state *rs, uint64_t now)
{
	uint64_t when = next_deadline(rs);
	if (console_input_open(rs->vn) && now + CONSOLE_POLL_NS < when)
		when = now + CONSOLE_POLL_NS;
	if (when == rs->armed_for)
		return;
	rs->armed_for = when;
	struct itimerspec its = { 0 };
	if (when != UINT64_MAX) {
		uint64_t abs = rs->t0 + when;
		its.it_value.tv_sec = (time_t)(abs / 1000000000ULL);
		its.it_value.tv_nsec = (long)(abs % 1000000000ULL);
	}
	timer_settime(rs->kick_timer, TIMER_ABSTIME, &its, NULL);
}

/* Brings the devices up to now and notices timeouts and stop requests. */
static void advance_devices(struct run_state *rs)
{
	struct vnode *vn = rs->vn;
	uint64_t now = now_ns(rs);
	rs->stats->timer_ticks_coalesced += pit__advance(vn->pit, now);
	if (console_input_open(vn))
		vn->console_in_eof = !uart__poll_input(vn->uart);
	char cerr[512];
	if (rs->rec && recorder__failed(rs->rec, cerr, sizeof(cerr))) {
		snprintf(rs->err, rs->errlen, "%s", cerr);
		vmm_failed(rs);
		return;
	}
	if (now >= rs->timeout_at || stop_requested) {
		/* Say where the guest was: a timeout is often a hang worth locating. */
		char where[256];
		cpu__describe(vn, where, sizeof(where));
		snprintf(rs->stats->fault, sizeof(rs->stats->fault), "guest was at %s", where);
		finish(rs, stop_requested ? VNODE_STOPPED : VNODE_TIMEOUT);
	}
	arm_kick(rs, now);
}

/* KVM finishes an in/out or MMIO access (stores the value, moves RIP on)
 * only when the vCPU next runs. Before a landmark or a saved state the
 * instruction must be complete, or a restored vCPU would lose it: a
 * KVM_RUN with immediate_exit finishes it without running the guest. */
static void complete_io(struct run_state *rs)
{
	struct kvm_run *run = rs->vn->run;
	if (!rs->io_pending)
		return;
	rs->io_pending = false;
	run->immediate_exit = 1;
	if (ioctl(rs->vn->vcpu_fd, KVM_RUN, 0) == 0 || (errno != EINTR && errno != EAGAIN)) {
		snprintf(rs->err, rs->errlen, "completing an I/O exit: %s",
			 errno ? strerror(errno) : "KVM ran the guest");
		vmm_failed(rs);
	}
	run->immediate_exit = 0;
}

/* The landmark of the instruction the vCPU is about to execute: an
 * interrupt injected now is taken before it, and a checkpoint taken now
 * holds the state before it. A vCPU halted in hlt sits after the hlt. */
static void landmark_here(struct run_state *rs, struct ckpt_landmark *at)
{
	complete_io(rs);
	*at = (struct ckpt_landmark){ .sync_count = rs->rec->sync_count,
				      .flags = rs->vn->halted ? CKPT_LM_HALTED : 0 };
	if (cpu__landmark(rs->vn, NULL, at, rs->err, rs->errlen) != 0)
		vmm_failed(rs);
}

static void inject(struct run_state *rs, const struct ckpt_landmark *at)
{
	struct vnode *vn = rs->vn;
	struct kvm_interrupt irq = { .irq = pic__ack(vn->pic) };
	if (ioctl(vn->vcpu_fd, KVM_INTERRUPT, &irq) < 0) {
		snprintf(rs->err, rs->errlen, "KVM_INTERRUPT vector 0x%x: %s", irq.irq,
			 strerror(errno));
		vmm_failed(rs);
		return;
	}
	rs->stats->interrupts_injected++;
	rs->stats->interrupts_by_vector[irq.irq & 0xff]++;
	vn->halted = false;
	if (rs->rec)
		recorder__log_irq(rs->rec, (uint8_t)irq.irq, at, now_ns(rs));
}

/* Offers a pending PIC interrupt to the vCPU, or asks KVM to exit at the
 * next interrupt window. */
static void inject_interrupts(struct run_state *rs)
{
	struct vnode *vn = rs->vn;
	struct kvm_run *run = vn->run;
	run->request_interrupt_window = 0;
	if (!pic__has_interrupt(vn->pic))
		return;
	if (vn->halted || (run->ready_for_interrupt_injection && run->if_flag)) {
		struct ckpt_landmark at = { 0 };
		if (rs->rec)
			landmark_here(rs, &at);
		if (rs->done)
			return;
		inject(rs, &at);
	}
	run->request_interrupt_window = pic__has_interrupt(vn->pic);
}

/* hlt: nothing runs until a device raises an interrupt, so sleep until the
 * next device deadline (or console input) instead of spinning. Returns
 * early when a checkpoint is due. */
static void wait_for_event(struct run_state *rs)
{
	struct vnode *vn = rs->vn;
	if (!vn->run->if_flag) {
		finish(rs, VNODE_GUEST_HALTED);
		snprintf(rs->stats->fault, sizeof(rs->stats->fault),
			 "guest halted with interrupts disabled");
		return;
	}
	while (!rs->done && !pic__has_interrupt(vn->pic)) {
		uint64_t now = now_ns(rs);
		if (rs->rec && now >= rs->rec->next_boundary)
			return;
		uint64_t until = next_deadline(rs);
		struct pollfd pfd = { .fd = vn->console_in_fd, .events = POLLIN };
		bool poll_console = console_input_open(vn);
		struct timespec ts, *tsp = NULL;
		if (until != UINT64_MAX) {
			uint64_t d = until > now ? until - now : 0;
			ts.tv_sec = (time_t)(d / 1000000000ULL);
			ts.tv_nsec = (long)(d % 1000000000ULL);
			tsp = &ts;
		}
		if (!tsp && !poll_console) {
			finish(rs, VNODE_GUEST_HALTED);
			snprintf(rs->stats->fault, sizeof(rs->stats->fault),
				 "guest halted with no timer or input to wake it");
			return;
		}
		ppoll(poll_console ? &pfd : NULL, poll_console ? 1 : 0, tsp, &rs->run_mask);
		advance_devices(rs);
	}
}

/* A signal that ends KVM_RUN stays pending once KVM restores our blocking
 * mask, and would end every later KVM_RUN at once: take it off the queue. */
static void consume_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIG_KICK);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	struct timespec zero = { 0, 0 };
	int sig;
	while ((sig = sigtimedwait(&set, NULL, &zero)) > 0)
		if (sig != SIG_KICK)
			stop_requested = 1;
}

static int setup_signals(struct run_state *rs, char *err, size_t errlen)
{
	struct sigaction sa = { .sa_handler = on_kick };
	sigemptyset(&sa.sa_mask);
	sigaction(SIG_KICK, &sa, NULL);
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	/* The kick and stop signals stay blocked while the VMM works and are
	 * only let in during KVM_RUN and waits, so a signal can never slip in
	 * between checking for work and entering the guest. */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIG_KICK);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	rs->run_mask = old;
	sigdelset(&rs->run_mask, SIG_KICK);
	sigdelset(&rs->run_mask, SIGINT);
	sigdelset(&rs->run_mask, SIGTERM);

	struct {
		struct kvm_signal_mask hdr;
		uint8_t bits[8];
	} km = { .hdr = { .len = 8 } };
	memcpy(km.bits, &rs->run_mask, 8);
	if (ioctl(rs->vn->vcpu_fd, KVM_SET_SIGNAL_MASK, &km) < 0) {
		snprintf(err, errlen, "KVM_SET_SIGNAL_MASK: %s", strerror(errno));
		return -1;
	}
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIG_KICK };
	sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	if (timer_create(CLOCK_MONOTONIC, &sev, &rs->kick_timer) != 0) {
		snprintf(err, errlen, "timer_create: %s", strerror(errno));
		return -1;
	}
	rs->armed_for = 0;
	return 0;
}

static void dispatch_exit(struct run_state *rs)
{
	struct vnode_stats *stats = rs->stats;
	struct kvm_run *run = rs->vn->run;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		stats->exits[VNODE_EXIT_IO]++;
		handle_io(rs);
		rs->io_pending = true;
		break;
	case KVM_EXIT_MMIO:
		stats->exits[VNODE_EXIT_MMIO]++;
		handle_mmio(rs);
		rs->io_pending = true;
		break;
	case KVM_EXIT_HLT:
		stats->exits[VNODE_EXIT_HLT]++;
		rs->vn->halted = true;
		break;
	case KVM_EXIT_IRQ_WINDOW_OPEN:
		stats->exits[VNODE_EXIT_IRQ_WINDOW]++;
		break;
	case KVM_EXIT_INTR:
		stats->exits[VNODE_EXIT_SIGNAL]++;
		consume_signals();
		break;
	case KVM_EXIT_SHUTDOWN:
		stats->exits[VNODE_EXIT_SHUTDOWN]++;
		guest_fault(rs, "triple fault (KVM_EXIT_SHUTDOWN)");
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		stats->exits[VNODE_EXIT_INTERNAL_ERROR]++;
		handle_internal_error(rs);
		break;
	case KVM_EXIT_FAIL_ENTRY: {
		char msg[96];
		stats->exits[VNODE_EXIT_FAIL_ENTRY]++;
		snprintf(msg, sizeof(msg), "VM entry failed (hardware reason 0x%llx)",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		guest_fault(rs, msg);
		break;
	}
	default: {
		char msg[64];
		stats->exits[VNODE_EXIT_OTHER]++;
		snprintf(msg, sizeof(msg), "unexpected KVM exit reason %u", run->exit_reason);
		guest_fault(rs, msg);
		break;
	}
	}
}

/* A checkpoint with the vCPU stopped at an exit: at an interval boundary,
 * or (flags CKPT_FINAL) right after the guest's exit-port write. Guest time
 * stands still meanwhile, so the guest's timer does not see the pause. */
static void take_checkpoint(struct run_state *rs, uint32_t flags, int exit_status)
{
	struct recorder *rec = rs->rec;
	uint64_t t_stop = monotonic_ns();
	struct ckpt_landmark stop = { 0 };
	if (rec->next_index > 0) {
		landmark_here(rs, &stop);
		if (rs->vmm_failed)
			return;
	}
	uint64_t downtime;
	if (recorder__checkpoint(rec, rec->next_index ? &stop : NULL, now_ns(rs), t_stop, flags,
				 exit_status, &downtime, rs->err, rs->errlen) != 0) {
		vmm_failed(rs);
		return;
	}
	rs->t0 += downtime;
}

/* An interrupt injected and logged at a landmark, but not yet delivered,
 * would be taken after a checkpoint at that landmark by a replay that
 * starts there, and before it by the replay of the interval that ends
 * there. So a checkpoint waits for the next exit, which delivers it. */
static bool event_in_flight(struct run_state *rs)
{
	bool in_flight = false;
	if (cpu__event_in_flight(rs->vn, &in_flight, rs->err, rs->errlen) != 0)
		vmm_failed(rs);
	return in_flight;
}

/* A signal that ends a run while KVM handles a guest page fault leaves the
 * fault unfinished: the guest's page tables walked, their accessed and
 * dirty bits set, the instruction not executed. A checkpoint or an
 * injected interrupt then would put those bits before the instruction in
 * the recording and after it in a replay. So until a run ends with no
 * such fault, none comes, and the next run is given GRACE_NS to finish
 * the instruction, a few times if need be. KVM's page-fault counters say
 * whether a fault was left unfinished; a KVM without them cannot tell, and
 * a replay may then see such bits as a pt-ad divergence. */
#define GRACE_NS 200000ULL
#define MAX_FAULT_WAITS 100

static void before_run(struct run_state *rs)
{
	if (rs->rec && kvm__faults_unfinished(rs->vn, &rs->faults_unfinished) != 0)
		rs->faults_unfinished = UINT64_MAX;
}

static void note_fault_wait(struct run_state *rs)
{
	uint64_t now;
	rs->faulted_insn = rs->rec && rs->fault_waits < MAX_FAULT_WAITS &&
			   rs->faults_unfinished != UINT64_MAX &&
			   kvm__faults_unfinished(rs->vn, &now) == 0 && now != rs->faults_unfinished;
	if (!rs->faulted_insn) {
		rs->fault_waits = 0;
		return;
	}
	rs->fault_waits++;
	rs->rec->stats->fault_waits++;
	rs->grace_until = now_ns(rs) + GRACE_NS;
}

static void run_loop(struct run_state *rs)
{
	struct vnode *vn = rs->vn;
	while (!rs->done) {
		advance_devices(rs);
		if (rs->done)
			break;
		if (rs->rec && now_ns(rs) >= rs->rec->next_boundary && !rs->faulted_insn &&
		    !event_in_flight(rs)) {
			take_checkpoint(rs, 0, 0);
			continue;
		}
		if (vn->halted && !pic__has_interrupt(vn->pic)) {
			wait_for_event(rs);
			continue;
		}
		if (!rs->faulted_insn)
			inject_interrupts(rs);
		if (rs->done)
			break;
		before_run(rs);
		if (ioctl(vn->vcpu_fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				rs->stats->exits[VNODE_EXIT_SIGNAL]++;
				consume_signals();
				note_fault_wait(rs);
				continue;
			}
			snprintf(rs->err, rs->errlen, "KVM_RUN: %s", strerror(errno));
			vmm_failed(rs);
			break;
		}
		rs->faulted_insn = false;
		rs->fault_waits = 0;
		dispatch_exit(rs);
	}
}

static int run_guest(struct vnode *vn, const struct vnode_run_options *opts,
		     struct vnode_stats *stats, struct recorder *rec, char *err, size_t errlen)
{
	memset(stats, 0, sizeof(*stats));
	stats->memory_bytes = vn->mem.size;
	stats->boot_format = vn->entry.format_name;
	struct run_state rs = { .vn = vn, .stats = stats, .timeout_at = UINT64_MAX, .rec = rec,
				.err = err, .errlen = errlen };
	stop_requested = 0;
	sigset_t saved;
	pthread_sigmask(SIG_SETMASK, NULL, &saved);
	if (setup_signals(&rs, err, errlen) != 0) {
		pthread_sigmask(SIG_SETMASK, &saved, NULL);
		return -1;
	}
	uint64_t started = monotonic_ns();
	rs.t0 = started - vn->start_time_ns;
	if (opts && opts->timeout_seconds > 0)
		rs.timeout_at = vn->start_time_ns + (uint64_t)(opts->timeout_seconds * 1e9);
	if (rec) {
		rec->next_boundary = vn->start_time_ns;
		take_checkpoint(&rs, 0, 0); /* checkpoint 0: before the first instruction */
	}
	run_loop(&rs);
	if (rec && !rs.vmm_failed && stats->outcome == VNODE_GUEST_EXIT)
		take_checkpoint(&rs, CKPT_FINAL, stats->guest_status);
	stats->wall_seconds = (double)(monotonic_ns() - started) / 1e9;
	stats->console_bytes = uart__tx_bytes(vn->uart);
	timer_delete(rs.kick_timer);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	return rs.vmm_failed ? -1 : 0;
}

int vnode__run(struct vnode *vn, const struct vnode_run_options *opts,
	       struct vnode_stats *stats, char *err, size_t errlen)
{
	return run_guest(vn, opts, stats, NULL, err, errlen);
}

int vnode__record(struct vnode *vn, struct ckpt_store *store, const struct vnode_run_options *opts,
		  const struct vnode_record_options *ropts, struct vnode_stats *stats,
		  struct vnode_record_stats *rstats, char *err, size_t errlen)
{
	memset(rstats, 0, sizeof(*rstats));
	struct recorder rec;
	if (recorder__init(&rec, vn, store, ropts, rstats, err, errlen) != 0) {
		recorder__destroy(&rec);
		return -1;
	}
	int rc = run_guest(vn, opts, stats, &rec, err, errlen);
	/* Commit what was taken even after a failure: those checkpoints are
	 * good, and a full disk is reported once. */
	char ferr[512];
	if (recorder__finish(&rec, ferr, sizeof(ferr)) != 0 && rc == 0) {
		snprintf(err, errlen, "%s", ferr);
		rc = -1;
	}
	recorder__destroy(&rec);
	return rc;
}
