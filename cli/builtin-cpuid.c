/* simuboost cpuid: the guest CPU model, for people and for the simnode. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "builtin.h"
#include "vnode.h"

const char builtin_cpuid_usage[] =
	"usage: simuboost cpuid [--effective] [--qemu-cpu] | --check\n"
	"\n"
	"Prints the CPUID table that the vnode gives its guest, one leaf a line\n"
	"(\"cpuid LEAF: EAX EBX ECX EDX\", as the test guest prints them).\n"
	"  --qemu-cpu   print the QEMU -cpu argument derived from the table\n"
	"  --effective  what this host's KVM really presents to a vCPU given the\n"
	"               table (some KVMs override leaf 1); differences go to stderr\n"
	"  --check      verify that this host's KVM offers every feature in it\n";

int builtin_cpuid(int argc, char **argv)
{
	bool effective = false, qemu_cpu = false, check = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--effective")) {
			effective = true;
		} else if (!strcmp(argv[i], "--qemu-cpu")) {
			qemu_cpu = true;
		} else if (!strcmp(argv[i], "--check")) {
			check = true;
		} else {
			fputs(builtin_cpuid_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (check && (effective || qemu_cpu)) {
		fputs(builtin_cpuid_usage, stderr);
		return EXIT_USAGE;
	}
	char err[256];
	if (check) {
		if (vnode_cpuid__check_host(err, sizeof(err)) != 0) {
			fprintf(stderr, "simuboost cpuid: %s\n", err);
			return EXIT_VMM_ERROR;
		}
		printf("cpuid: this host's KVM offers every feature of the vnode CPU model\n");
		return 0;
	}
	if (effective) {
		if (vnode_cpuid__print_effective(stdout, qemu_cpu, stderr, err, sizeof(err)) != 0) {
			fprintf(stderr, "simuboost cpuid: %s\n", err);
			return EXIT_VMM_ERROR;
		}
		return 0;
	}
	if (qemu_cpu)
		printf("%s\n", vnode_cpuid__qemu_cpu());
	else
		vnode_cpuid__print(stdout);
	return 0;
}
