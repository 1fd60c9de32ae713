/* A plain QEMU TCG plugin, written against the stock plugin API only, for
 * `simuboost replay --qemu-plugin`: counts the instructions and memory
 * accesses the vCPU executes and prints them at exit, as the usual
 * contrib plugins do (qemu_plugin_outs, which -d plugin -D FILE sends to
 * FILE).
 *
 *   -plugin count.so[,label=TEXT]  */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>
#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

struct counts {
	uint64_t insns, accesses;
};

static struct qemu_plugin_scoreboard *board;
static char label[64] = "count";

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	(void)id;
	for (size_t i = 0; i < qemu_plugin_tb_n_insns(tb); i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(
			insn, QEMU_PLUGIN_INLINE_ADD_U64,
			qemu_plugin_scoreboard_u64_in_struct(board, struct counts, insns), 1);
		qemu_plugin_register_vcpu_mem_inline_per_vcpu(
			insn, QEMU_PLUGIN_MEM_RW, QEMU_PLUGIN_INLINE_ADD_U64,
			qemu_plugin_scoreboard_u64_in_struct(board, struct counts, accesses), 1);
	}
}

static void on_exit_cb(qemu_plugin_id_t id, void *udata)
{
	char line[160];
	(void)id, (void)udata;
	snprintf(line, sizeof(line), "%s: instructions %" PRIu64 " accesses %" PRIu64 "\n", label,
		 qemu_plugin_u64_sum(qemu_plugin_scoreboard_u64_in_struct(board, struct counts,
									   insns)),
		 qemu_plugin_u64_sum(qemu_plugin_scoreboard_u64_in_struct(board, struct counts,
									   accesses)));
	qemu_plugin_outs(line);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
					   int argc, char **argv)
{
	(void)info;
	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "label=", 6))
			return -1;
		snprintf(label, sizeof(label), "%s", argv[i] + 6);
	}
	board = qemu_plugin_scoreboard_new(sizeof(struct counts));
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
	qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
	return 0;
}
