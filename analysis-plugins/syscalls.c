/* syscalls: a Linux x86-64 system call tracer. Every SYSCALL the guest
 * executes, with its number, name and six arguments (RDI, RSI, RDX, R10,
 * R8, R9), and the result SYSRET hands back in RAX, then a count per
 * call.
 *
 * Args: none, or calls=0 to print only the counts.
 *
 * A SYSRET returns to the SYSCALL of the same address space (CR3) whose
 * next instruction it returns to; calls that block are answered later,
 * possibly in another interval. An interval's state keeps its calls not
 * answered yet and the SYSRETs it could not match, and merge pairs them
 * as a serial run would. */
#include <glib.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "simuboost-analysis.h"

#define SYSCALL_INSN_LEN 2 /* 0f 05 */

struct call {
	uint32_t interval;
	uint32_t answered;
	uint64_t icount, nr, rip, cr3, args[6], result;
};

struct ret {
	uint64_t rip, cr3, result;
};

struct state {
	GArray *calls;          /* struct call, in the order they were made */
	GArray *orphans;        /* struct ret: SYSRETs with no call in this range */
	uint32_t interval;
};

struct plugin {
	bool calls;
};

/* arch/x86/entry/syscalls/syscall_64.tbl, the common and 64-bit ones
 * numbered below 335 */
static const char *const names[] = {
	"read", "write", "open", "close", "stat", "fstat", "lstat", "poll", "lseek", "mmap",
	"mprotect", "munmap", "brk", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "ioctl",
	"pread64", "pwrite64", "readv", "writev", "access", "pipe", "select", "sched_yield",
	"mremap", "msync", "mincore", "madvise", "shmget", "shmat", "shmctl", "dup", "dup2",
	"pause", "nanosleep", "getitimer", "alarm", "setitimer", "getpid", "sendfile", "socket",
	"connect", "accept", "sendto", "recvfrom", "sendmsg", "recvmsg", "shutdown", "bind",
	"listen", "getsockname", "getpeername", "socketpair", "setsockopt", "getsockopt", "clone",
	"fork", "vfork", "execve", "exit", "wait4", "kill", "uname", "semget", "semop", "semctl",
	"shmdt", "msgget", "msgsnd", "msgrcv", "msgctl", "fcntl", "flock", "fsync", "fdatasync",
	"truncate", "ftruncate", "getdents", "getcwd", "chdir", "fchdir", "rename", "mkdir",
	"rmdir", "creat", "link", "unlink", "symlink", "readlink", "chmod", "fchmod", "chown",
	"fchown", "lchown", "umask", "gettimeofday", "getrlimit", "getrusage", "sysinfo", "times",
	"ptrace", "getuid", "syslog", "getgid", "setuid", "setgid", "geteuid", "getegid",
	"setpgid", "getppid", "getpgrp", "setsid", "setreuid", "setregid", "getgroups",
	"setgroups", "setresuid", "getresuid", "setresgid", "getresgid", "getpgid", "setfsuid",
	"setfsgid", "getsid", "capget", "capset", "rt_sigpending", "rt_sigtimedwait",
	"rt_sigqueueinfo", "rt_sigsuspend", "sigaltstack", "utime", "mknod", "uselib",
	"personality", "ustat", "statfs", "fstatfs", "sysfs", "getpriority", "setpriority",
	"sched_setparam", "sched_getparam", "sched_setscheduler", "sched_getscheduler",
	"sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval", "mlock",
	"munlock", "mlockall", "munlockall", "vhangup", "modify_ldt", "pivot_root", "_sysctl",
	"prctl", "arch_prctl", "adjtimex", "setrlimit", "chroot", "sync", "acct", "settimeofday",
	"mount", "umount2", "swapon", "swapoff", "reboot", "sethostname", "setdomainname", "iopl",
	"ioperm", "create_module", "init_module", "delete_module", "get_kernel_syms",
	"query_module", "quotactl", "nfsservctl", "getpmsg", "putpmsg", "afs_syscall", "tuxcall",
	"security", "gettid", "readahead", "setxattr", "lsetxattr", "fsetxattr", "getxattr",
	"lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr", "removexattr",
	"lremovexattr", "fremovexattr", "tkill", "time", "futex", "sched_setaffinity",
	"sched_getaffinity", "set_thread_area", "io_setup", "io_destroy", "io_getevents",
	"io_submit", "io_cancel", "get_thread_area", "lookup_dcookie", "epoll_create",
	"epoll_ctl_old", "epoll_wait_old", "remap_file_pages", "getdents64", "set_tid_address",
	"restart_syscall", "semtimedop", "fadvise64", "timer_create", "timer_settime",
	"timer_gettime", "timer_getoverrun", "timer_delete", "clock_settime", "clock_gettime",
	"clock_getres", "clock_nanosleep", "exit_group", "epoll_wait", "epoll_ctl", "tgkill",
	"utimes", "vserver", "mbind", "set_mempolicy", "get_mempolicy", "mq_open", "mq_unlink",
	"mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr", "kexec_load", "waitid",
	"add_key", "request_key", "keyctl", "ioprio_set", "ioprio_get", "inotify_init",
	"inotify_add_watch", "inotify_rm_watch", "migrate_pages", "openat", "mkdirat", "mknodat",
	"fchownat", "futimesat", "newfstatat", "unlinkat", "renameat", "linkat", "symlinkat",
	"readlinkat", "fchmodat", "faccessat", "pselect6", "ppoll", "unshare", "set_robust_list",
	"get_robust_list", "splice", "tee", "sync_file_range", "vmsplice", "move_pages",
	"utimensat", "epoll_pwait", "signalfd", "timerfd_create", "eventfd", "fallocate",
	"timerfd_settime", "timerfd_gettime", "accept4", "signalfd4", "eventfd2", "epoll_create1",
	"dup3", "pipe2", "inotify_init1", "preadv", "pwritev", "rt_tgsigqueueinfo",
	"perf_event_open", "recvmmsg", "fanotify_init", "fanotify_mark", "prlimit64",
	"name_to_handle_at", "open_by_handle_at", "clock_adjtime", "syncfs", "sendmmsg", "setns",
	"getcpu", "process_vm_readv", "process_vm_writev", "kcmp", "finit_module",
	"sched_setattr", "sched_getattr", "renameat2", "seccomp", "getrandom", "memfd_create",
	"kexec_file_load", "bpf", "execveat", "userfaultfd", "membarrier", "mlock2",
	"copy_file_range", "preadv2", "pwritev2", "pkey_mprotect", "pkey_alloc", "pkey_free",
	"statx", "io_pgetevents", "rseq",
};

static void name_of(uint64_t nr, char *out, size_t len)
{
	if (nr < G_N_ELEMENTS(names))
		snprintf(out, len, "%s", names[nr]);
	else
		snprintf(out, len, "syscall_%" PRIu64, nr);
}

static void *create(const char *args, char *err, size_t errlen)
{
	struct plugin *p = g_new0(struct plugin, 1);
	p->calls = true;
	if (!strcmp(args, "calls=0"))
		p->calls = false;
	else if (*args && strcmp(args, "calls=1")) {
		snprintf(err, errlen, "bad argument \"%s\" (expected calls=0 or calls=1)", args);
		g_free(p);
		return NULL;
	}
	return p;
}

static void destroy(void *plugin)
{
	g_free(plugin);
}

static void *state_new(void *plugin)
{
	struct state *s = g_new0(struct state, 1);
	(void)plugin;
	s->calls = g_array_new(FALSE, FALSE, sizeof(struct call));
	s->orphans = g_array_new(FALSE, FALSE, sizeof(struct ret));
	return s;
}

static void state_free(void *plugin, void *state)
{
	struct state *s = state;
	(void)plugin;
	g_array_free(s->calls, TRUE);
	g_array_free(s->orphans, TRUE);
	g_free(s);
}

static void interval_begin(void *plugin, void *state, uint32_t interval)
{
	(void)plugin;
	((struct state *)state)->interval = interval;
}

/* Answers the latest open call of calls[0..n) that r returns to. */
static bool answer(GArray *calls, guint n, const struct ret *r)
{
	for (guint i = n; i-- > 0;) {
		struct call *c = &g_array_index(calls, struct call, i);
		if (!c->answered && c->cr3 == r->cr3 && c->rip + SYSCALL_INSN_LEN == r->rip) {
			c->answered = 1;
			c->result = r->result;
			return true;
		}
	}
	return false;
}

static void on_event(void *state, const struct trace_record *rec)
{
	struct state *s = state;
	if (rec->event.kind == TRACE_EV_SYSCALL) {
		struct call c = { .interval = s->interval, .icount = rec->icount, .nr = rec->event.a,
				  .rip = rec->event.b, .cr3 = rec->event.c };
		memcpy(c.args, rec->event.args, sizeof(c.args));
		g_array_append_val(s->calls, c);
	} else if (rec->event.kind == TRACE_EV_SYSRET) {
		struct ret r = { .rip = rec->event.b, .cr3 = rec->event.c, .result = rec->event.a };
		if (!answer(s->calls, s->calls->len, &r))
			g_array_append_val(s->orphans, r);
	}
}

static int interval_end(void *plugin, void *state, uint32_t interval, const struct sb_memory *mem,
			char *err, size_t errlen)
{
	(void)plugin, (void)state, (void)interval, (void)mem, (void)err, (void)errlen;
	return 0;
}

static int merge(void *plugin, void *into, const void *next_state, char *err, size_t errlen)
{
	struct state *a = into;
	const struct state *b = next_state;
	guint before = a->calls->len;
	(void)plugin, (void)err, (void)errlen;

	/* b's orphans came before any call of b: they answer a's calls */
	for (guint i = 0; i < b->orphans->len; i++) {
		const struct ret *r = &g_array_index(b->orphans, struct ret, i);
		if (!answer(a->calls, before, r))
			g_array_append_val(a->orphans, *r);
	}
	g_array_append_vals(a->calls, b->calls->data, b->calls->len);
	return 0;
}

/* u64 call count, the calls, u64 orphan count, the orphans. */
static int save(void *plugin, const void *state, FILE *out)
{
	const struct state *s = state;
	uint64_t n = s->calls->len;
	(void)plugin;
	fwrite(&n, 8, 1, out);
	fwrite(s->calls->data, sizeof(struct call), s->calls->len, out);
	n = s->orphans->len;
	fwrite(&n, 8, 1, out);
	fwrite(s->orphans->data, sizeof(struct ret), s->orphans->len, out);
	return ferror(out) ? -1 : 0;
}

static void *load(void *plugin, FILE *in, char *err, size_t errlen)
{
	struct state *s = state_new(plugin);
	uint64_t n;

	if (fread(&n, 8, 1, in) != 1)
		goto bad;
	for (uint64_t i = 0; i < n; i++) {
		struct call c;
		if (fread(&c, sizeof(c), 1, in) != 1 || c.answered > 1)
			goto bad;
		g_array_append_val(s->calls, c);
	}
	if (fread(&n, 8, 1, in) != 1)
		goto bad;
	for (uint64_t i = 0; i < n; i++) {
		struct ret r;
		if (fread(&r, sizeof(r), 1, in) != 1)
			goto bad;
		g_array_append_val(s->orphans, r);
	}
	return s;
bad:
	snprintf(err, errlen, "syscalls state truncated or inconsistent");
	state_free(plugin, s);
	return NULL;
}

struct count {
	uint64_t nr, calls;
};

static int by_calls(const void *x, const void *y)
{
	const struct count *a = x, *b = y;
	if (a->calls != b->calls)
		return a->calls < b->calls ? 1 : -1;
	return (a->nr > b->nr) - (a->nr < b->nr);
}

static int report(void *plugin, const void *state, FILE *out)
{
	const struct plugin *p = plugin;
	const struct state *s = state;
	GHashTable *counts = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
	char name[32];

	for (guint i = 0; i < s->calls->len; i++) {
		const struct call *c = &g_array_index(s->calls, struct call, i);
		struct count *n = g_hash_table_lookup(counts, GSIZE_TO_POINTER(c->nr));
		if (!n) {
			n = g_new0(struct count, 1);
			n->nr = c->nr;
			g_hash_table_insert(counts, GSIZE_TO_POINTER(c->nr), n);
		}
		n->calls++;
		if (!p->calls)
			continue;
		name_of(c->nr, name, sizeof(name));
		fprintf(out, "%u:%" PRIu64 " %s(0x%" PRIx64 ", 0x%" PRIx64 ", 0x%" PRIx64
			", 0x%" PRIx64 ", 0x%" PRIx64 ", 0x%" PRIx64 ")",
			c->interval, c->icount, name, c->args[0], c->args[1], c->args[2], c->args[3],
			c->args[4], c->args[5]);
		if (c->answered)
			fprintf(out, " = %" PRId64 "\n", (int64_t)c->result);
		else
			fprintf(out, " = ? (no return seen)\n");
	}
	guint n = g_hash_table_size(counts), i = 0;
	struct count *v = g_new(struct count, n ? n : 1);
	GHashTableIter it;
	gpointer key, val;
	g_hash_table_iter_init(&it, counts);
	while (g_hash_table_iter_next(&it, &key, &val))
		v[i++] = *(struct count *)val;
	qsort(v, n, sizeof(*v), by_calls);
	fprintf(out, "%" PRIu64 " system calls, %u returns from calls before the run\n",
		(uint64_t)s->calls->len, s->orphans->len);
	for (i = 0; i < n; i++) {
		name_of(v[i].nr, name, sizeof(name));
		fprintf(out, "%12" PRIu64 "  %s (%" PRIu64 ")\n", v[i].calls, name, v[i].nr);
	}
	g_free(v);
	g_hash_table_destroy(counts);
	return ferror(out) ? -1 : 0;
}

static const struct sb_analysis analysis = {
	.api_version = SB_ANALYSIS_API_VERSION,
	.name = "syscalls",
	.create = create,
	.destroy = destroy,
	.state_new = state_new,
	.state_free = state_free,
	.interval_begin = interval_begin,
	.event = on_event,
	.interval_end = interval_end,
	.save = save,
	.load = load,
	.merge = merge,
	.report = report,
};

const struct sb_analysis *simuboost_analysis(void);
const struct sb_analysis *simuboost_analysis(void)
{
	return &analysis;
}
