/* The CPUID table is self-consistent, hides what TCG cannot reproduce, and
 * the QEMU -cpu string decoded from it says the same thing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "cpuid-table.h"
#include "vnode.h"

static void test_max_leaves_match_table(void **state)
{
	(void)state;
	uint32_t max_basic = 0, max_ext = 0;
	for (size_t i = 0; i < vnode_cpuid_table_len; i++) {
		uint32_t fn = vnode_cpuid_table[i].function;
		if (fn & 0x80000000) {
			if (fn > max_ext)
				max_ext = fn;
		} else if (fn > max_basic) {
			max_basic = fn;
		}
	}
	assert_int_equal(vnode_cpuid__find(0)->eax, max_basic);
	assert_int_equal(vnode_cpuid__find(0x80000000)->eax, max_ext);
	/* every leaf up to the maxima is present */
	for (uint32_t fn = 0; fn <= max_basic; fn++)
		assert_non_null(vnode_cpuid__find(fn));
	for (uint32_t fn = 0x80000000; fn <= max_ext; fn++)
		assert_non_null(vnode_cpuid__find(fn));
}

static void test_hidden_features(void **state)
{
	(void)state;
	const struct cpuid_leaf *l1 = vnode_cpuid__find(1), *x1 = vnode_cpuid__find(0x80000001);
	assert_int_equal(l1->edx & (1u << 4), 0);  /* tsc */
	assert_int_equal(l1->edx & (1u << 9), 0);  /* apic */
	assert_int_equal(l1->ecx & (1u << 13), 0); /* cx16 */
	assert_int_equal(l1->ecx & (1u << 0), 0);  /* sse3 */
	assert_int_equal(l1->ecx & (1u << 26), 0); /* xsave */
	assert_int_equal(l1->ecx & (1u << 30), 0); /* rdrand */
	assert_int_equal(l1->ecx & (1u << 17), 0); /* pcid */
	assert_int_equal(l1->ecx & (1u << 21), 0); /* x2apic */
	assert_int_equal(x1->edx & (1u << 27), 0); /* rdtscp */
	assert_int_equal(x1->edx & (1u << 26), 0); /* 1 GiB pages */
	assert_true(vnode_cpuid__find(0)->eax < 7); /* no leaf 7: rdseed, invpcid, rdpid */
	/* what a 64-bit guest needs */
	assert_true(l1->edx & (1u << 26));  /* sse2 */
	assert_true(l1->edx & (1u << 24));  /* fxsr */
	assert_true(x1->edx & (1u << 29));  /* lm */
	assert_true(x1->edx & (1u << 20));  /* nx */
	assert_true(x1->edx & (1u << 11));  /* syscall */
}

static void test_qemu_cpu_is_decoded_from_table(void **state)
{
	(void)state;
	const char *s = vnode_cpuid__qemu_cpu();
	assert_non_null(strstr(s, "vendor=GenuineIntel,"));
	assert_non_null(strstr(s, ",level=1,"));
	assert_non_null(strstr(s, ",xlevel=0x80000008,"));
	assert_non_null(strstr(s, ",family=15,model=6,stepping=1,"));
	assert_non_null(strstr(s, ",model-id=Common KVM processor,"));
	static const char *const want[] = { ",-tsc", ",-apic", ",-cx16", ",-pni", ",-xsave",
					    ",-rdrand", ",-pcid", ",-rdtscp", ",-pdpe1gb",
					    ",+sse2", ",+fxsr", ",+lm", ",+nx", ",+syscall",
					    ",+lahf-lm", ",-hypervisor" };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(s, want[i]))
			fail_msg("'%s' missing from %s", want[i], s);
	/* every named bit is stated explicitly, so QEMU's model defaults never leak */
	size_t plus_minus = 0;
	for (const char *p = s; *p; p++)
		if (p[0] == ',' && (p[1] == '+' || p[1] == '-'))
			plus_minus++;
	size_t named = 0;
	static const uint32_t fns[] = { 1, 0x80000001 };
	for (int f = 0; f < 2; f++)
		for (int reg = 2; reg <= 3; reg++)
			for (int b = 0; b < 32; b++)
				named += vnode_cpuid__feature_name(fns[f], reg, b) != NULL;
	assert_int_equal(plus_minus, named);
}

static void test_feature_names(void **state)
{
	(void)state;
	assert_string_equal(vnode_cpuid__feature_name(1, 3, 4), "tsc");
	assert_string_equal(vnode_cpuid__feature_name(1, 2, 13), "cx16");
	assert_string_equal(vnode_cpuid__feature_name(0x80000001, 3, 29), "lm");
	assert_null(vnode_cpuid__feature_name(0x80000001, 3, 0)); /* AMD alias, unnamed */
	assert_null(vnode_cpuid__feature_name(7, 1, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_max_leaves_match_table),
		cmocka_unit_test(test_hidden_features),
		cmocka_unit_test(test_qemu_cpu_is_decoded_from_table),
		cmocka_unit_test(test_feature_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
