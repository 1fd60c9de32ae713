/* vm.cfg parsing: every bad value is refused with file, line and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vnode.h"

struct fixture {
	char dir[64];
	char cfg[128];
	char kernel[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/simuboost-cfg-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->cfg, sizeof(f->cfg), "%s/vm.cfg", f->dir);
	snprintf(f->kernel, sizeof(f->kernel), "%s/guest.elf", f->dir);
	FILE *k = fopen(f->kernel, "w");
	fputs("\x7f" "ELF", k);
	fclose(k);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void write_cfg(struct fixture *f, const char *text)
{
	FILE *c = fopen(f->cfg, "w");
	assert_non_null(c);
	fputs(text, c);
	fclose(c);
}

static char err[1024];

static int load(struct fixture *f, const char *text, struct vnode_config *cfg)
{
	write_cfg(f, text);
	err[0] = '\0';
	return vnode_config__load(cfg, f->cfg, err, sizeof(err));
}

static void assert_error_contains(const char *needle)
{
	if (!strstr(err, needle))
		fail_msg("error '%s' does not contain '%s'", err, needle);
	assert_null(strchr(err, '\n'));
}

static void test_valid_config_with_defaults(void **state)
{
	struct fixture *f = *state;
	struct vnode_config cfg;
	assert_int_equal(load(f, "# a guest\nkernel = \"guest.elf\";\nmemory = \"64M\";\n"
				 "cmdline = \"workload=compute\";\n", &cfg), 0);
	assert_int_equal(cfg.memory, 64ULL << 20);
	assert_string_equal(cfg.kernel, f->kernel); /* relative to the config's dir */
	assert_string_equal(cfg.cmdline, "workload=compute");
	assert_string_equal(cfg.console_out, "stdout");
	assert_string_equal(cfg.console_in, "none");
	assert_string_equal(cfg.boot, "auto");
	assert_null(cfg.initrd);
	assert_int_equal(cfg.interval_ns, 1000000000ULL);
	vnode_config__free(&cfg);
}

static void test_sizes_and_durations(void **state)
{
	struct fixture *f = *state;
	struct vnode_config cfg;
	assert_int_equal(load(f, "kernel = \"guest.elf\"; memory = \"1GiB\"; interval = \"250ms\";",
			      &cfg), 0);
	assert_int_equal(cfg.memory, 1ULL << 30);
	assert_int_equal(cfg.interval_ns, 250000000ULL);
	vnode_config__free(&cfg);
	assert_int_equal(load(f, "kernel = \"guest.elf\"; memory = 33554432;", &cfg), 0);
	assert_int_equal(cfg.memory, 32ULL << 20);
	vnode_config__free(&cfg);
}

static void test_missing_file(void **state)
{
	(void)state;
	struct vnode_config cfg;
	assert_int_equal(vnode_config__load(&cfg, "/nonexistent/vm.cfg", err, sizeof(err)), -1);
	assert_error_contains("/nonexistent/vm.cfg: cannot open config: No such file or directory");
}

static void test_unknown_key_names_line(void **state)
{
	struct fixture *f = *state;
	struct vnode_config cfg;
	assert_int_equal(load(f, "kernel = \"guest.elf\";\n\nmemroy = \"64M\";\n", &cfg), -1);
	assert_error_contains("vm.cfg:3: memroy: unknown key");
}

static void test_bad_size(void **state)
{
	struct fixture *f = *state;
	struct vnode_config cfg;
	assert_int_equal(load(f, "kernel = \"guest.elf\";\nmemory = \"12Q\";\n", &cfg), -1);
	assert_error_contains("vm.cfg:2: memory: '12Q' is not a size");
	assert_int_equal(load(f, "kernel = \"guest.elf\";\nmemory = \"1M\";\n", &cfg), -1);
	assert_error_contains("memory: 1M is too small");
	assert_int_equal(load(f, "kernel = \"guest.elf\";\nmemory = \"99999999999999999999G\";\n",
			      &cfg), -1);
	assert_error_contains("is not a size");
	assert_int_equal(load(f, "kernel = \"guest.elf\";\nmemory = -5;\n", &cfg), -1);
	assert_error_contains("memory: negative value");
}

static void test_memory_larger_than_host(void **state)
{
	struct fixture *f = *state;
	struct vnode_config cfg;
	assert_int_equal(load(f, "kernel = \"guest.elf\";\nmemory = \"64T\";\n", &cfg), -1);
	assert_error_contains("vm.cfg:2: memory: 64T exceeds this host's RAM");
}

static void test_missing_kernel(void **state)
{
	struct fixture *f = *state;
	struct vnode_config cfg;
	assert_int_equal(load(f, "memory = \"64M\";\n", &cfg), -1);
	assert_error_contains("vm.cfg: kernel: missing");
	assert_int_equal(load(f, "memory = \"64M\";\nkernel = \"nope.elf\";\n", &cfg), -1);
	assert_error_contains("vm.cfg:2: kernel: '");
	assert_error_contains("nope.elf': No such file or directory");
	assert_int_equal(load(f, "kernel = \"/tmp\";\n", &cfg), -1);
	assert_error_contains("kernel: '/tmp' is not a regular file");
}

static void test_wrong_types_and_values(void **state)
{
	struct fixture *f = *state;
	struct vnode_config cfg;
	assert_int_equal(load(f, "kernel = 5;\n", &cfg), -1);
	assert_error_contains("vm.cfg:1: kernel: expected a string");
	assert_int_equal(load(f, "kernel = \"guest.elf\";\nboot = \"floppy\";\n", &cfg), -1);
	assert_error_contains("vm.cfg:2: boot: 'floppy' is not one of");
	assert_int_equal(load(f, "kernel = \"guest.elf\";\ninterval = \"5ms\";\n", &cfg), -1);
	assert_error_contains("interval: 5ms is shorter than the minimum of 10ms");
	assert_int_equal(load(f, "kernel = \"guest.elf\";\ninterval = \"soon\";\n", &cfg), -1);
	assert_error_contains("interval: 'soon' is not a duration");
	assert_int_equal(load(f, "kernel = \"guest.elf\";\nconsole_in = \"missing.txt\";\n", &cfg),
			 -1);
	assert_error_contains("console_in: 'missing.txt': No such file or directory");
}

static void test_syntax_error_names_line(void **state)
{
	struct fixture *f = *state;
	struct vnode_config cfg;
	assert_int_equal(load(f, "kernel = \"guest.elf\";\nmemory = \"64M\"\ncmdline = ;\n", &cfg),
			 -1);
	assert_error_contains("vm.cfg:3: syntax error");
}

static void test_set_override(void **state)
{
	struct fixture *f = *state;
	struct vnode_config cfg;
	assert_int_equal(load(f, "kernel = \"guest.elf\";\n", &cfg), 0);
	assert_int_equal(vnode_config__set(&cfg, "cmdline=workload=memwrite ws=8", err,
					   sizeof(err)), 0);
	assert_string_equal(cfg.cmdline, "workload=memwrite ws=8");
	assert_int_equal(vnode_config__set(&cfg, "memory=lots", err, sizeof(err)), -1);
	assert_error_contains("--set: memory: 'lots' is not a size");
	assert_int_equal(vnode_config__set(&cfg, "nokey", err, sizeof(err)), -1);
	assert_error_contains("is not key=value");
	assert_int_equal(vnode_config__set(&cfg, "color=blue", err, sizeof(err)), -1);
	assert_error_contains("--set: color: unknown key");
	vnode_config__free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_valid_config_with_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sizes_and_durations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_key_names_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_larger_than_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_kernel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_types_and_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syntax_error_names_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_override, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
