/* A test plugin that makes a replay diverge on purpose, so that the
 * replay's verdicts and --bisect can be checked against a known cause.
 * Loaded next to the replay plugin (through a QEMU wrapper):
 *
 *   -plugin perturb.so,pc=PC,hit=N,reg=R|word=PA|crash=1
 *
 * Before the N-th execution of the instruction at PC, it flips bit 0 of
 * general register R (0..15 in encoding order: 4 is RSP), or of the 8-byte
 * guest-physical word at PA, or crashes QEMU with SIGSEGV (a crash in the
 * middle of an interval, however short the interval). */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

struct perturb {
	uint64_t pc, hit, seen, word, reg;
	int crash;
};

static struct perturb the_perturb; /* translation callbacks carry no user data */

static void on_insn(unsigned int vcpu, void *udata)
{
	struct perturb *p = udata;
	(void)vcpu;
	if (++p->seen != p->hit)
		return;
	if (p->crash)
		raise(SIGSEGV);
	if (p->reg < 16) {
		struct qemu_plugin_x86_cpu_state s = { .size = sizeof(s) };
		if (!qemu_plugin_get_cpu_state(&s, sizeof(s)))
			abort();
		s.regs[p->reg] ^= 1;
		if (!qemu_plugin_set_cpu_state(&s, sizeof(s)))
			abort();
	} else {
		uint64_t v;
		if (!qemu_plugin_read_memory_phys(p->word, &v, sizeof(v)))
			abort();
		v ^= 1;
		if (!qemu_plugin_write_memory_phys(p->word, &v, sizeof(v)))
			abort();
	}
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	(void)id;
	for (size_t i = 0; i < qemu_plugin_tb_n_insns(tb); i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		if (qemu_plugin_insn_vaddr(insn) == the_perturb.pc)
			qemu_plugin_register_vcpu_insn_exec_cb(insn, on_insn, QEMU_PLUGIN_CB_RW_REGS,
							       &the_perturb);
	}
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
					   char **argv)
{
	struct perturb *p = &the_perturb;
	(void)info;
	p->reg = UINT64_MAX;
	for (int i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "pc=", 3))
			p->pc = strtoull(argv[i] + 3, NULL, 0);
		else if (!strncmp(argv[i], "hit=", 4))
			p->hit = strtoull(argv[i] + 4, NULL, 0);
		else if (!strncmp(argv[i], "reg=", 4))
			p->reg = strtoull(argv[i] + 4, NULL, 0);
		else if (!strncmp(argv[i], "word=", 5))
			p->word = strtoull(argv[i] + 5, NULL, 0);
		else if (!strcmp(argv[i], "crash=1"))
			p->crash = 1;
		else {
			fprintf(stderr, "perturb: bad argument %s\n", argv[i]);
			return -1;
		}
	}
	if (!p->pc || !p->hit || (p->reg < 16) + !!p->word + p->crash != 1) {
		fprintf(stderr, "perturb: pc=, hit= and one of reg=0..15, word=, crash=1 are required\n");
		return -1;
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
	return 0;
}
