/* vm.cfg: libconfig syntax, one setting per key, validated before the VM
 * starts so that a bad value never costs a half-booted guest. */
#include <errno.h>
#include <inttypes.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "vnode.h"

#define MIN_MEMORY (16ULL << 20)
#define MIN_INTERVAL_NS 10000000ULL /* 10 ms */

/* Where a value came from, for messages: "vm.cfg:7" or "--set". */
struct origin {
	const char *file;
	int line; /* 0: no line */
	const char *base_dir; /* relative paths resolve here; NULL: cwd */
};

static int fail(char *err, size_t errlen, const struct origin *o, const char *key,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(char *err, size_t errlen, const struct origin *o, const char *key,
		const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (o->line > 0)
		snprintf(err, errlen, "%s:%d: %s: %s", o->file, o->line, key, msg);
	else
		snprintf(err, errlen, "%s: %s: %s", o->file, key, msg);
	return -1;
}

/* A decimal number at the start of s (no sign, no spaces); end is set to
 * the unit that follows it. */
static int parse_leading_number(const char *s, unsigned long long *v, char **end)
{
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*v = strtoull(s, end, 10);
	return errno ? -1 : 0;
}

/* "512M", "2G", "65536" (bytes) -> bytes. */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	if (parse_leading_number(s, &v, &end) != 0)
		return -1;
	unsigned shift = 0;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return -1;
	}
	if (shift && (*end == 'i' || *end == 'I'))
		end++;
	if (shift && (*end == 'b' || *end == 'B'))
		end++;
	if (*end != '\0')
		return -1;
	if (shift && v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

/* "1s", "250ms", "500us", "1000000ns" -> ns. A bare number is seconds. */
static int parse_duration(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	if (parse_leading_number(s, &v, &end) != 0)
		return -1;
	uint64_t mult;
	if (!strcmp(end, "") || !strcmp(end, "s"))
		mult = 1000000000ULL;
	else if (!strcmp(end, "ms"))
		mult = 1000000ULL;
	else if (!strcmp(end, "us"))
		mult = 1000ULL;
	else if (!strcmp(end, "ns"))
		mult = 1;
	else
		return -1;
	if (v > UINT64_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

static uint64_t host_ram_bytes(void)
{
	struct sysinfo si;
	if (sysinfo(&si) != 0)
		return UINT64_MAX;
	return (uint64_t)si.totalram * si.mem_unit;
}

static char *resolve_path(const struct origin *o, const char *path)
{
	char *out;
	if (path[0] == '/' || !o->base_dir || !*o->base_dir) {
		out = strdup(path);
	} else if (asprintf(&out, "%s/%s", o->base_dir, path) < 0) {
		out = NULL;
	}
	return out;
}

static int check_readable_file(const struct origin *o, const char *key, const char *path,
			       char *err, size_t errlen)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return fail(err, errlen, o, key, "'%s': %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(err, errlen, o, key, "'%s' is not a regular file", path);
	if (access(path, R_OK) != 0)
		return fail(err, errlen, o, key, "'%s': %s", path, strerror(errno));
	return 0;
}

static int replace_string(char **slot, char *value)
{
	if (!value)
		return -1;
	free(*slot);
	*slot = value;
	return 0;
}

typedef int (*key_setter)(struct vnode_config *cfg, const struct origin *o, const char *key,
			  const char *value, char *err, size_t errlen);

static int set_memory(struct vnode_config *cfg, const struct origin *o, const char *key,
		      const char *value, char *err, size_t errlen)
{
	uint64_t bytes;
	if (parse_size(value, &bytes) != 0)
		return fail(err, errlen, o, key, "'%s' is not a size (use e.g. 256M or 2G)", value);
	if (bytes < MIN_MEMORY)
		return fail(err, errlen, o, key, "%s is too small (at least 16M)", value);
	if (bytes % 4096)
		return fail(err, errlen, o, key, "%s is not a multiple of 4K", value);
	uint64_t host = host_ram_bytes();
	if (bytes > host)
		return fail(err, errlen, o, key, "%s exceeds this host's RAM (%.1f GiB)", value,
			    (double)host / (1ULL << 30));
	cfg->memory = bytes;
	return 0;
}

static int set_kernel(struct vnode_config *cfg, const struct origin *o, const char *key,
		      const char *value, char *err, size_t errlen)
{
	if (!*value)
		return fail(err, errlen, o, key, "empty path");
	char *path = resolve_path(o, value);
	if (!path)
		return fail(err, errlen, o, key, "out of memory");
	if (check_readable_file(o, key, path, err, errlen) != 0) {
		free(path);
		return -1;
	}
	return replace_string(!strcmp(key, "kernel") ? &cfg->kernel : &cfg->initrd, path);
}

static int set_cmdline(struct vnode_config *cfg, const struct origin *o, const char *key,
		       const char *value, char *err, size_t errlen)
{
	if (strlen(value) >= 4096)
		return fail(err, errlen, o, key, "longer than 4095 bytes");
	return replace_string(&cfg->cmdline, strdup(value));
}

static int set_console_out(struct vnode_config *cfg, const struct origin *o, const char *key,
			   const char *value, char *err, size_t errlen)
{
	if (!*value)
		return fail(err, errlen, o, key, "empty (use \"stdout\", \"none\" or a file path)");
	if (!strcmp(value, "stdout") || !strcmp(value, "none"))
		return replace_string(&cfg->console_out, strdup(value));
	char *path = resolve_path(o, value);
	return replace_string(&cfg->console_out, path);
}

static int set_console_in(struct vnode_config *cfg, const struct origin *o, const char *key,
			  const char *value, char *err, size_t errlen)
{
	if (!*value)
		return fail(err, errlen, o, key, "empty (use \"none\", \"stdin\" or a file path)");
	if (!strcmp(value, "stdin") || !strcmp(value, "none"))
		return replace_string(&cfg->console_in, strdup(value));
	char *path = resolve_path(o, value);
	if (!path)
		return fail(err, errlen, o, key, "out of memory");
	if (access(path, R_OK) != 0) {
		int e = errno;
		free(path);
		return fail(err, errlen, o, key, "'%s': %s", value, strerror(e));
	}
	return replace_string(&cfg->console_in, path);
}

static int set_boot(struct vnode_config *cfg, const struct origin *o, const char *key,
		    const char *value, char *err, size_t errlen)
{
	static const char *const formats[] = { "auto", "pvh", "elf64", "bzimage" };
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (!strcmp(value, formats[i]))
			return replace_string(&cfg->boot, strdup(value));
	return fail(err, errlen, o, key, "'%s' is not one of auto, pvh, elf64, bzimage", value);
}

static int set_interval(struct vnode_config *cfg, const struct origin *o, const char *key,
			const char *value, char *err, size_t errlen)
{
	uint64_t ns;
	if (parse_duration(value, &ns) != 0)
		return fail(err, errlen, o, key, "'%s' is not a duration (use e.g. 1s, 100ms)", value);
	if (ns < MIN_INTERVAL_NS)
		return fail(err, errlen, o, key, "%s is shorter than the minimum of 10ms", value);
	cfg->interval_ns = ns;
	return 0;
}

struct config_key {
	const char *name;
	key_setter set;
	bool allow_int; /* an integer literal is accepted and means bytes */
	const char *doc;
};

static const struct config_key keys[] = {
	{ "memory", set_memory, true,
	  "guest RAM, e.g. \"256M\" or \"2G\" (default 256M; at most the host's RAM)" },
	{ "kernel", set_kernel, false,
	  "guest image: ELF with a PVH note, ELF64, or a Linux bzImage (required)" },
	{ "initrd", set_kernel, false, "initramfs image handed to the kernel (optional)" },
	{ "cmdline", set_cmdline, false, "kernel command line (default empty)" },
	{ "console_out", set_console_out, false,
	  "where the UART's output goes: \"stdout\" (default), \"none\" or a file" },
	{ "console_in", set_console_in, false,
	  "where the UART's input comes from: \"none\" (default), \"stdin\" or a file" },
	{ "boot", set_boot, false,
	  "\"auto\" (default), \"pvh\", \"elf64\" or \"bzimage\"; auto extracts a bzImage's "
	  "vmlinux on the host and enters it through PVH" },
	{ "interval", set_interval, false,
	  "checkpoint interval for record, guest time: \"1s\" (default), \"100ms\"; >= 10ms" },
};

static const struct config_key *find_key(const char *name)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

void vnode_config__print_reference(FILE *out)
{
	fprintf(out, "vm.cfg keys (libconfig syntax: key = \"value\";  # comment):\n");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		fprintf(out, "  %-12s %s\n", keys[i].name, keys[i].doc);
	fprintf(out, "Relative paths are relative to the config file's directory.\n");
}

void vnode_config__init(struct vnode_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->memory = 256ULL << 20;
	cfg->cmdline = strdup("");
	cfg->console_out = strdup("stdout");
	cfg->console_in = strdup("none");
	cfg->boot = strdup("auto");
	cfg->interval_ns = 1000000000ULL;
}

void vnode_config__free(struct vnode_config *cfg)
{
	free(cfg->path);
	free(cfg->kernel);
	free(cfg->initrd);
	free(cfg->cmdline);
	free(cfg->console_out);
	free(cfg->console_in);
	free(cfg->boot);
	memset(cfg, 0, sizeof(*cfg));
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static int apply_setting(struct vnode_config *cfg, config_setting_t *s, const struct origin *o,
			 char *err, size_t errlen)
{
	const char *name = config_setting_name(s);
	const struct config_key *k = find_key(name);
	if (!k) {
		char known[256] = "";
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			strncat(known, keys[i].name, sizeof(known) - strlen(known) - 1);
			if (i + 1 < sizeof(keys) / sizeof(keys[0]))
				strncat(known, ", ", sizeof(known) - strlen(known) - 1);
		}
		return fail(err, errlen, o, name, "unknown key (known keys: %s)", known);
	}
	char num[32];
	const char *value;
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_STRING:
		value = config_setting_get_string(s);
		break;
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		if (!k->allow_int)
			return fail(err, errlen, o, name, "expected a string in double quotes");
		if (config_setting_get_int64(s) < 0)
			return fail(err, errlen, o, name, "negative value");
		snprintf(num, sizeof(num), "%lld", config_setting_get_int64(s));
		value = num;
		break;
	default:
		return fail(err, errlen, o, name, "expected a string in double quotes");
	}
	return k->set(cfg, o, name, value, err, errlen);
}

int vnode_config__load(struct vnode_config *cfg, const char *path, char *err, size_t errlen)
{
	vnode_config__init(cfg);
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open config: %s", path, strerror(errno));
		vnode_config__free(cfg);
		return -1;
	}
	config_t lc;
	config_init(&lc);
	int ok = config_read(&lc, f);
	fclose(f);
	int rc = -1;
	char *base = dir_of(path);
	if (!ok) {
		snprintf(err, errlen, "%s:%d: syntax error: %s", path, config_error_line(&lc),
			 config_error_text(&lc));
		goto out;
	}
	cfg->path = strdup(path);
	config_setting_t *root = config_root_setting(&lc);
	int n = config_setting_length(root);
	for (int i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
		struct origin o = { path, (int)config_setting_source_line(s), base };
		if (apply_setting(cfg, s, &o, err, errlen) != 0)
			goto out;
	}
	if (!cfg->kernel) {
		struct origin o = { path, 0, base };
		fail(err, errlen, &o, "kernel", "missing (every vm.cfg names a guest image)");
		goto out;
	}
	rc = 0;
out:
	free(base);
	config_destroy(&lc);
	if (rc != 0)
		vnode_config__free(cfg);
	return rc;
}

int vnode_config__set(struct vnode_config *cfg, const char *assignment, char *err, size_t errlen)
{
	const char *eq = strchr(assignment, '=');
	struct origin o = { "--set", 0, NULL };
	if (!eq || eq == assignment) {
		snprintf(err, errlen, "--set: '%s' is not key=value", assignment);
		return -1;
	}
	char *key = strndup(assignment, (size_t)(eq - assignment));
	if (!key) {
		snprintf(err, errlen, "--set: out of memory");
		return -1;
	}
	const struct config_key *k = find_key(key);
	int rc;
	if (!k)
		rc = fail(err, errlen, &o, key, "unknown key");
	else
		rc = k->set(cfg, &o, key, eq + 1, err, errlen);
	free(key);
	return rc;
}
