/* VM, guest memory and vCPU creation on /dev/kvm. No in-kernel irqchip and
 * no in-kernel PIT: every interrupt the guest sees comes from userspace so
 * that it can be logged (DESIGN.md, "vnode owns all devices"). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpuid-table.h"
#include "vm.h"

static int kvm_open(char *err, size_t errlen)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "/dev/kvm: %s (is KVM available and are you allowed to use it?)",
			 strerror(errno));
		return -1;
	}
	int api = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		snprintf(err, errlen, "/dev/kvm: API version %d, expected %d", api, KVM_API_VERSION);
		close(fd);
		return -1;
	}
	return fd;
}

#define HUGE_PAGE (2ULL << 20)

static int set_slot(struct vnode *vn, uint32_t slot, uint64_t gpa, uint64_t size, void *host,
		    char *err, size_t errlen)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};
	if (ioctl(vn->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
		snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION slot %u (gpa 0x%llx, %llu MiB): %s",
			 slot, (unsigned long long)gpa, (unsigned long long)(size >> 20),
			 strerror(errno));
		return -1;
	}
	return 0;
}

static int set_slots(struct vnode *vn, char *err, size_t errlen)
{
	if (set_slot(vn, 0, 0, vn->mem.low_size, vn->mem.host, err, errlen) != 0)
		return -1;
	if (vn->mem.high_size &&
	    set_slot(vn, 1, GUEST_HIGH_MEM_START, vn->mem.high_size,
		     vn->mem.host + vn->mem.low_size, err, errlen) != 0)
		return -1;
	return 0;
}

int kvm__alloc_mem(struct vnode *vn, uint64_t memory, char *err, size_t errlen)
{
	/* Private anonymous memory: userfaultfd write-protection works on it, which
	 * the incremental checkpoints rely on. Aligned to and backed by huge
	 * pages where the kernel has them: the checkpoints protect a huge page
	 * with one page-table change. */
	uint8_t *map = mmap(NULL, memory + HUGE_PAGE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (map == MAP_FAILED) {
		snprintf(err, errlen, "guest memory: mmap of %llu MiB: %s",
			 (unsigned long long)(memory >> 20), strerror(errno));
		return -1;
	}
	uint8_t *host = (uint8_t *)(((uintptr_t)map + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
	if (host > map)
		munmap(map, (size_t)(host - map));
	munmap(host + memory, (size_t)(map + HUGE_PAGE - host));
	madvise(host, memory, MADV_HUGEPAGE);
	madvise(host, memory, MADV_DONTDUMP);
	vn->mem.host = host;
	vn->mem.size = memory;
	vn->mem.low_size = memory < GUEST_LOW_MEM_END ? memory : GUEST_LOW_MEM_END;
	vn->mem.high_size = memory - vn->mem.low_size;
	return 0;
}

int kvm__create_vm(struct vnode *vn, char *err, size_t errlen)
{
	vn->kvm_fd = kvm_open(err, errlen);
	if (vn->kvm_fd < 0)
		return -1;
	vn->vm_fd = ioctl(vn->kvm_fd, KVM_CREATE_VM, 0);
	if (vn->vm_fd < 0) {
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
		return -1;
	}
	return set_slots(vn, err, errlen);
}

static int set_cpuid(struct vnode *vn, char *err, size_t errlen)
{
	size_t n = vnode_cpuid_table_len;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->nent = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		const struct cpuid_leaf *l = &vnode_cpuid_table[i];
		c->entries[i] = (struct kvm_cpuid_entry2){
			.function = l->function, .eax = l->eax, .ebx = l->ebx,
			.ecx = l->ecx, .edx = l->edx,
		};
	}
	int rc = ioctl(vn->vcpu_fd, KVM_SET_CPUID2, c);
	free(c);
	if (rc < 0) {
		snprintf(err, errlen, "KVM_SET_CPUID2: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void open_fault_stats(struct vnode *vn);

int kvm__create_vcpu(struct vnode *vn, char *err, size_t errlen)
{
	vn->vcpu_fd = ioctl(vn->vm_fd, KVM_CREATE_VCPU, 0);
	if (vn->vcpu_fd < 0) {
		snprintf(err, errlen, "KVM_CREATE_VCPU: %s", strerror(errno));
		return -1;
	}
	int size = ioctl(vn->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(struct kvm_run)) {
		snprintf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		return -1;
	}
	vn->run_size = (size_t)size;
	vn->run = mmap(NULL, vn->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vn->vcpu_fd, 0);
	if (vn->run == MAP_FAILED) {
		vn->run = NULL;
		snprintf(err, errlen, "mmap of kvm_run: %s", strerror(errno));
		return -1;
	}
	open_fault_stats(vn);
	if (vnode_cpuid__check_host(err, errlen) != 0)
		return -1;
	return set_cpuid(vn, err, errlen);
}

static const char *const pf_stat_names[] = { "pf_taken", "pf_fixed", "pf_emulate",
					      "pf_spurious", "pf_guest" };

/* Finds the page-fault counters among the vCPU's binary statistics. */
static void open_fault_stats(struct vnode *vn)
{
	struct kvm_stats_header h;
	vn->stats_fd = ioctl(vn->vcpu_fd, KVM_GET_STATS_FD, NULL);
	if (vn->stats_fd < 0)
		return;
	size_t each = sizeof(struct kvm_stats_desc) + 0;
	char *descs = NULL;
	unsigned found = 0;
	if (pread(vn->stats_fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || h.num_desc > 4096 ||
	    h.name_size > 4096)
		goto none;
	each += h.name_size;
	descs = malloc(each * h.num_desc);
	if (!descs || pread(vn->stats_fd, descs, each * h.num_desc, h.desc_offset) !=
			      (ssize_t)(each * h.num_desc))
		goto none;
	for (unsigned i = 0; i < h.num_desc; i++) {
		const struct kvm_stats_desc *d = (const void *)(descs + i * each);
		for (unsigned k = 0; k < 5; k++)
			if (d->size == 1 && !strncmp(d->name, pf_stat_names[k], h.name_size)) {
				vn->pf_offset[k] = h.data_offset + d->offset;
				found |= 1u << k;
			}
	}
	free(descs);
	if (found == 0x1f) {
		uint64_t lo = UINT64_MAX, hi = 0;
		for (unsigned k = 0; k < 5; k++) {
			lo = vn->pf_offset[k] < lo ? vn->pf_offset[k] : lo;
			hi = vn->pf_offset[k] + 8 > hi ? vn->pf_offset[k] + 8 : hi;
		}
		vn->pf_span_start = lo;
		vn->pf_span_len = (size_t)(hi - lo);
		if (vn->pf_span_len <= PF_SPAN_MAX)
			return;
	}
	descs = NULL;
none:
	free(descs);
	close(vn->stats_fd);
	vn->stats_fd = -1;
}

int kvm__faults_unfinished(struct vnode *vn, uint64_t *out)
{
	/* one read: the counters sit together (a span of a few words) */
	uint64_t v[PF_SPAN_MAX / 8];
	size_t len = vn->pf_span_len;
	if (vn->stats_fd < 0 ||
	    pread(vn->stats_fd, v, len, (off_t)vn->pf_span_start) != (ssize_t)len)
		return -1;
	uint64_t c[5];
	for (unsigned k = 0; k < 5; k++)
		memcpy(&c[k], (const uint8_t *)v + (vn->pf_offset[k] - vn->pf_span_start), 8);
	*out = c[0] - c[1] - c[2] - c[3] - c[4];
	return 0;
}

void kvm__destroy(struct vnode *vn)
{
	if (vn->run)
		munmap(vn->run, vn->run_size);
	if (vn->mem.host)
		munmap(vn->mem.host, vn->mem.size);
	if (vn->stats_fd >= 0)
		close(vn->stats_fd);
	if (vn->vcpu_fd >= 0)
		close(vn->vcpu_fd);
	if (vn->vm_fd >= 0)
		close(vn->vm_fd);
	if (vn->kvm_fd >= 0)
		close(vn->kvm_fd);
}

int vnode_cpuid__check_host(char *err, size_t errlen)
{
	int kvm = kvm_open(err, errlen);
	if (kvm < 0)
		return -1;
	int n = 256;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + (size_t)n * sizeof(struct kvm_cpuid_entry2));
	if (!c) {
		close(kvm);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->nent = (uint32_t)n;
	int rc = ioctl(kvm, KVM_GET_SUPPORTED_CPUID, c);
	close(kvm);
	if (rc < 0) {
		snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		free(c);
		return -1;
	}
	static const uint32_t feature_leaves[] = { 0x00000001, 0x80000001 };
	rc = 0;
	for (size_t f = 0; f < 2 && rc == 0; f++) {
		const struct cpuid_leaf *want = vnode_cpuid__find(feature_leaves[f]);
		const struct kvm_cpuid_entry2 *have = NULL;
		for (uint32_t i = 0; i < c->nent; i++)
			if (c->entries[i].function == feature_leaves[f] && c->entries[i].index == 0)
				have = &c->entries[i];
		for (int reg = 2; reg <= 3 && rc == 0; reg++) {
			uint32_t w = reg == 2 ? want->ecx : want->edx;
			uint32_t h = have ? (reg == 2 ? have->ecx : have->edx) : 0;
			uint32_t missing = w & ~h;
			if (missing) {
				int bit = __builtin_ctz(missing);
				const char *name = vnode_cpuid__feature_name(feature_leaves[f], reg, bit);
				snprintf(err, errlen, "cpuid: this host's KVM does not offer feature %s "
					 "(leaf 0x%x %s bit %d) that the vnode CPU model needs",
					 name ? name : "(unnamed)", feature_leaves[f],
					 reg == 2 ? "ecx" : "edx", bit);
				rc = -1;
			}
		}
	}
	free(c);
	return rc;
}

int vnode_cpuid__print_effective(FILE *out, bool qemu_cpu, FILE *diffs, char *err,
				 size_t errlen)
{
	struct vnode vn = { .kvm_fd = -1, .vm_fd = -1, .vcpu_fd = -1, .stats_fd = -1 };
	int rc = -1;
	size_t n = vnode_cpuid_table_len;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 64 * sizeof(struct kvm_cpuid_entry2));
	struct cpuid_leaf *eff = calloc(n, sizeof(*eff));
	if (!c || !eff) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	vn.kvm_fd = kvm_open(err, errlen);
	if (vn.kvm_fd < 0)
		goto out;
	vn.vm_fd = ioctl(vn.kvm_fd, KVM_CREATE_VM, 0);
	if (vn.vm_fd < 0) {
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
		goto out;
	}
	vn.vcpu_fd = ioctl(vn.vm_fd, KVM_CREATE_VCPU, 0);
	if (vn.vcpu_fd < 0) {
		snprintf(err, errlen, "KVM_CREATE_VCPU: %s", strerror(errno));
		goto out;
	}
	if (set_cpuid(&vn, err, errlen) != 0)
		goto out;
	c->nent = 64;
	if (ioctl(vn.vcpu_fd, KVM_GET_CPUID2, c) < 0) {
		snprintf(err, errlen, "KVM_GET_CPUID2: %s", strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		eff[i] = vnode_cpuid_table[i];
		for (uint32_t j = 0; j < c->nent; j++) {
			const struct kvm_cpuid_entry2 *e = &c->entries[j];
			if (e->function == eff[i].function && e->index == 0)
				eff[i] = (struct cpuid_leaf){ e->function, e->eax, e->ebx,
							      e->ecx, e->edx };
		}
		const struct cpuid_leaf *t = &vnode_cpuid_table[i];
		if (diffs && memcmp(&eff[i], t, sizeof(eff[i])))
			fprintf(diffs, "cpuid %08x: table %08x %08x %08x %08x, KVM presents "
				"%08x %08x %08x %08x\n", t->function, t->eax, t->ebx, t->ecx,
				t->edx, eff[i].eax, eff[i].ebx, eff[i].ecx, eff[i].edx);
	}
	if (qemu_cpu) {
		char buf[2048];
		vnode_cpuid__derive_qemu_cpu(eff, n, buf, sizeof(buf));
		fprintf(out, "%s\n", buf);
	} else {
		vnode_cpuid__print_table(eff, n, out);
	}
	rc = 0;
out:
	kvm__destroy(&vn);
	free(c);
	free(eff);
	return rc;
}
