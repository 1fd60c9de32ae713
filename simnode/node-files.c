/* A distributed node's files: see node-files.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "distributor.h"
#include "node-files.h"
#include "simnode.h"

#define NODE_MAX_PLUGINS 32
/* How long the coordinator may take to answer a FILE_REQUEST. */
#define FETCH_TIMEOUT_S 60
#define WAIT_MS 1000

enum mode { UNDECIDED, SHARED, FETCHED };

struct node_files {
	char work_dir[PATH_MAX];
	bool told_shared;
	enum mode mode;
	int lock_fd;                /* FETCHED: held on copy/.lock while the copy is in use */
	/* FETCHED: this run's copy of the recording, and where the
	 * interval's outputs wait to be sent */
	char copy[PATH_MAX], outputs[MSG_OUTPUT__COUNT][PATH_MAX + 16];
	uint32_t manifests;         /* 0..manifests-1 are in the copy */
	uint32_t tag;
	/* the run's plugins, copied into copy/plugins, and their specs
	 * pointing there: analyses, then QEMU plugins */
	bool plugins_copied;
	char plugin_specs[NODE_MAX_PLUGINS][PATH_MAX + 1100];
	const char *analyses[NODE_MAX_PLUGINS], *qemu_plugins[NODE_MAX_PLUGINS];
};

static const char *const output_dir_names[MSG_OUTPUT__COUNT] = {
	[MSG_OUTPUT_STATE] = "states", [MSG_OUTPUT_QEMU_LOG] = "qemu-plugins",
	[MSG_OUTPUT_TRACE] = "traces",
};

/* mkdir -p */
static int make_dirs(const char *path, char *err, size_t errlen)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1;; s++) {
		if (*s && *s != '/')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s: %s", p, strerror(errno));
			return -1;
		}
		if (!c)
			return 0;
		*s = c;
	}
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

/* Copies of nodes that died (kill -9, a crash) stay behind: a copy
 * whose lock no one holds is removed. One without a lock yet is another
 * node's that is just being made, unless it is old. */
static void remove_stale_copies(const char *work_dir)
{
	DIR *d = opendir(work_dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char dir[PATH_MAX + 300], lock[PATH_MAX + 310];
		struct stat sb;
		if (strncmp(e->d_name, "run-", 4))
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", work_dir, e->d_name);
		snprintf(lock, sizeof(lock), "%s/.lock", dir);
		int fd = open(lock, O_RDWR | O_CLOEXEC);
		bool stale = fd >= 0 ? flock(fd, LOCK_EX | LOCK_NB) == 0 :
				       stat(dir, &sb) == 0 && time(NULL) - sb.st_mtime > 3600;
		if (stale)
			nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
		if (fd >= 0)
			close(fd);
	}
	if (d)
		closedir(d);
}

struct node_files *node_files__new(const char *work_dir, bool shared)
{
	struct node_files *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->lock_fd = -1;
	const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	if (work_dir)
		snprintf(f->work_dir, sizeof(f->work_dir), "%s", work_dir);
	else if (cache && *cache)
		snprintf(f->work_dir, sizeof(f->work_dir), "%s/simuboost", cache);
	else
		snprintf(f->work_dir, sizeof(f->work_dir), "%s/.cache/simuboost",
			 home && *home ? home : "/tmp");
	f->told_shared = shared;
	if (!shared)
		remove_stale_copies(f->work_dir);
	return f;
}

void node_files__new_run(struct node_files *f)
{
	if (f->mode == FETCHED)
		nftw(f->copy, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	if (f->lock_fd >= 0)
		close(f->lock_fd);
	f->lock_fd = -1;
	f->mode = UNDECIDED;
	f->manifests = 0;
	f->plugins_copied = false;
}

void node_files__free(struct node_files *f)
{
	if (!f)
		return;
	node_files__new_run(f);
	free(f);
}

const char *node_files__mode(const struct node_files *f)
{
	return f->mode == FETCHED ? "fetched" : "shared";
}

/* The whole of one of the recording's files from the coordinator, into
 * *buf (malloc'd): 1, 0 if it has no such file, -1 with err. */
static int fetch(struct node_files *f, struct link *l, const char *name, uint8_t **buf,
		 size_t *len, void (*tick)(void *), void *opaque, char *err, size_t errlen)
{
	uint64_t size = 0, have = 0;
	bool first = true;
	*buf = NULL;
	do {
		struct msg_file_request q = { .tag = ++f->tag, .offset = have };
		snprintf(q.name, sizeof(q.name), "%s", name);
		struct wire_writer w = { .ok = true };
		msg__file_request_write(&w, &q);
		int sent = w.ok ? link__send(l, 0, WIRE_FILE_REQUEST, w.buf, w.len, err, errlen) : -1;
		wire_writer__free(&w);
		if (sent != 0)
			goto bad;
		struct msg_file_data d;
		struct wire_msg m;
		for (int waited_ms = 0;;) {
			int got = link__recv(l, &m, WAIT_MS, err, errlen);
			if (got < 0)
				goto bad;
			if (got == 0) {
				if (tick)
					tick(opaque);
				waited_ms += WAIT_MS;
				if (waited_ms >= FETCH_TIMEOUT_S * 1000) {
					snprintf(err, errlen, "%s: the coordinator has not answered in %d s",
						 name, FETCH_TIMEOUT_S);
					goto bad;
				}
				continue;
			}
			/* anything else now is stale or not for a busy node */
			if (m.type == WIRE_FILE_DATA && msg__file_data_parse(&m, &d) && d.tag == q.tag)
				break;
		}
		if (d.missing) {
			free(*buf);
			*buf = NULL;
			return 0;
		}
		if (first) {
			size = d.size;
			*buf = malloc(size ? size : 1);
			if (!*buf) {
				snprintf(err, errlen, "%s: out of memory for %" PRIu64 " bytes", name, size);
				return -1;
			}
			first = false;
		}
		if (d.size != size || d.offset != have || (!d.len && have < size)) {
			snprintf(err, errlen, "%s: the coordinator's copy changed while it was fetched",
				 name);
			goto bad;
		}
		memcpy(*buf + have, d.bytes, d.len);
		have += d.len;
	} while (have < size);
	*len = (size_t)size;
	return 1;
bad:
	free(*buf);
	*buf = NULL;
	return -1;
}

/* The coordinator's file name into the copy as local (NULL: as name),
 * unless it is there. */
static int copy_file(struct node_files *f, struct link *l, const char *name, const char *local,
		     void (*tick)(void *), void *opaque, char *err, size_t errlen)
{
	char path[PATH_MAX + 320];
	snprintf(path, sizeof(path), "%s/%s", f->copy, local ? local : name);
	if (access(path, F_OK) == 0)
		return 0;
	uint8_t *buf;
	size_t len;
	int got = fetch(f, l, name, &buf, &len, tick, opaque, err, errlen);
	if (got == 0)
		snprintf(err, errlen, "the coordinator has no %s", name);
	if (got != 1)
		return -1;
	/* its checksums are checked where it is read, as for any recording */
	int rc = ckpt_file__publish(path, buf, len, err, errlen);
	free(buf);
	return rc;
}

/* Whether the file dir/name holds exactly buf. */
static bool holds(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *mine = fopen(path, "rb");
	if (!mine)
		return false;
	uint8_t *have = malloc(len + 1);
	bool same = have && fread(have, 1, len + 1, mine) == len && !memcmp(have, buf, len);
	free(have);
	fclose(mine);
	return same;
}

/* Shared if the recording at the settings' path is the coordinator's:
 * the same recording.meta, and the same first interval's manifest (two
 * recordings of one config have the same metadata, and rarely the same
 * interval boundaries). Else a copy is started. */
static int decide(struct node_files *f, struct link *l, const char *recording,
		  void (*tick)(void *), void *opaque, char *err, size_t errlen)
{
	if (f->told_shared) {
		f->mode = SHARED;
		return 0;
	}
	uint8_t *theirs, *first = NULL;
	size_t len, first_len;
	int got = fetch(f, l, "recording.meta", &theirs, &len, tick, opaque, err, errlen);
	if (got == 0)
		snprintf(err, errlen, "the coordinator's recording has no recording.meta");
	if (got != 1)
		return -1;
	bool same = holds(recording, "recording.meta", theirs, len);
	if (same) {
		/* an interval is assigned once the checkpoint that ends it is
		 * committed: the first one's is there */
		got = fetch(f, l, "000001.manifest", &first, &first_len, tick, opaque, err, errlen);
		if (got < 0) {
			free(theirs);
			return -1;
		}
		same = got == 1 && holds(recording, "000001.manifest", first, first_len);
		free(first);
	}
	if (same) {
		free(theirs);
		f->mode = SHARED;
		return 0;
	}
	snprintf(f->copy, sizeof(f->copy), "%s/run-XXXXXX", f->work_dir);
	int rc = -1;
	if (make_dirs(f->work_dir, err, errlen) != 0)
		goto out;
	if (!mkdtemp(f->copy)) {
		snprintf(err, errlen, "%s: %s", f->copy, strerror(errno));
		goto out;
	}
	f->mode = FETCHED; /* from here on, removed with the run */
	char lock[PATH_MAX + 16];
	snprintf(lock, sizeof(lock), "%s/.lock", f->copy);
	f->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (f->lock_fd < 0 || flock(f->lock_fd, LOCK_EX) != 0) {
		snprintf(err, errlen, "%s: %s", lock, strerror(errno));
		goto out;
	}
	for (int kind = 0; kind < MSG_OUTPUT__COUNT; kind++) {
		snprintf(f->outputs[kind], sizeof(f->outputs[kind]), "%s/%s", f->copy,
			 output_dir_names[kind]);
		if (mkdir(f->outputs[kind], 0755) != 0) {
			snprintf(err, errlen, "%s: %s", f->outputs[kind], strerror(errno));
			goto out;
		}
	}
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/plugins", f->copy);
	if (mkdir(path, 0755) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/recording.meta", f->copy);
	rc = ckpt_file__publish(path, theirs, len, err, errlen);
out:
	free(theirs);
	if (rc != 0)
		node_files__new_run(f); /* undecided again, nothing half made left */
	return rc;
}

/* The run's plugins (analyses, QEMU plugins) as the coordinator has them,
 * into copy/plugins once a run; o's specs then load them from there. */
static int copy_plugins(struct node_files *f, struct link *l, struct simnode_replay_options *o,
			void (*tick)(void *), void *opaque, char *err, size_t errlen)
{
	unsigned na = o->nanalyses, n = na + o->nqemu_plugins;
	if (n > NODE_MAX_PLUGINS) {
		snprintf(err, errlen, "more than %d plugins", NODE_MAX_PLUGINS);
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		const char *spec = i < na ? o->analyses[i] : o->qemu_plugins[i - na];
		size_t path_len = strcspn(spec, ",");
		const char *base = spec + path_len;
		while (base > spec && base[-1] != '/')
			base--;
		char name[32], local[300];
		snprintf(name, sizeof(name), "plugin.%u", i);
		snprintf(local, sizeof(local), "plugins/%u-%.*s", i, (int)(spec + path_len - base),
			 base);
		if (!f->plugins_copied &&
		    copy_file(f, l, name, local, tick, opaque, err, errlen) != 0)
			return -1;
		snprintf(f->plugin_specs[i], sizeof(f->plugin_specs[i]), "%s/%s%s", f->copy, local,
			 spec + path_len);
		if (i < na)
			f->analyses[i] = f->plugin_specs[i];
		else
			f->qemu_plugins[i - na] = f->plugin_specs[i];
	}
	f->plugins_copied = true;
	o->analyses = f->analyses;
	o->qemu_plugins = f->qemu_plugins;
	return 0;
}

int node_files__prepare(struct node_files *f, struct link *l, uint32_t k,
			struct simnode_replay_options *o, void (*tick)(void *), void *opaque,
			char *err, size_t errlen)
{
	if (f->mode == UNDECIDED && decide(f, l, o->recording, tick, opaque, err, errlen) != 0)
		return -1;
	if (f->mode == SHARED)
		return 0;
	if (o->materialize) {
		snprintf(err, errlen, "--materialize needs the recording's page packs, and this "
				      "node's machine does not hold the recording");
		return -1;
	}
	char name[32];
	for (; f->manifests <= k + 1; f->manifests++) {
		snprintf(name, sizeof(name), "%06" PRIu32 ".manifest", f->manifests);
		if (copy_file(f, l, name, NULL, tick, opaque, err, errlen) != 0)
			return -1;
	}
	snprintf(name, sizeof(name), "%06" PRIu32 ".log", k);
	if (copy_file(f, l, name, NULL, tick, opaque, err, errlen) != 0 ||
	    copy_plugins(f, l, o, tick, opaque, err, errlen) != 0)
		return -1;
	o->recording = f->copy;
	if (o->analysis_dir)
		o->analysis_dir = f->outputs[MSG_OUTPUT_STATE];
	if (o->qemu_plugin_dir)
		o->qemu_plugin_dir = f->outputs[MSG_OUTPUT_QEMU_LOG];
	if (o->trace_dir)
		o->trace_dir = f->outputs[MSG_OUTPUT_TRACE];
	return 0;
}

/* Parts of at most this many bytes; $SIMUBOOST_OUTPUT_CHUNK makes them
 * smaller, so that tests see small files travel in several. */
static uint32_t output_chunk(void)
{
	const char *env = getenv("SIMUBOOST_OUTPUT_CHUNK");
	unsigned long n = env ? strtoul(env, NULL, 10) : 0;
	return n && n < MSG_FILE_CHUNK ? (uint32_t)n : MSG_FILE_CHUNK;
}

/* Sends one output file, in parts, and removes it. */
static int send_output(struct link *l, uint32_t k, enum msg_output_kind kind, const char *dir,
		       const char *name, char *err, size_t errlen)
{
	char path[PATH_MAX + 300];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	struct msg_output out = { .interval = k, .kind = kind };
	snprintf(out.name, sizeof(out.name), "%s", name);
	uint32_t chunk = output_chunk();
	struct stat sb;
	uint8_t *buf = malloc(chunk);
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;
	if (!buf || fd < 0 || fstat(fd, &sb) != 0) {
		snprintf(err, errlen, "%s: %s", path, buf ? strerror(errno) : "out of memory");
		goto out;
	}
	out.size = (uint64_t)sb.st_size;
	do {
		uint64_t left = out.size - out.offset;
		ssize_t n = pread(fd, buf, left < chunk ? (size_t)left : chunk, (off_t)out.offset);
		if (n < 0 || (n == 0 && left)) {
			snprintf(err, errlen, "%s: read: %s", path, n ? strerror(errno) : "it shrank");
			goto out;
		}
		out.bytes = buf;
		out.len = (uint32_t)n;
		struct wire_writer w = { .ok = true };
		msg__output_write(&w, &out);
		int sent = w.ok ? link__send(l, 0, WIRE_OUTPUT, w.buf, w.len, err, errlen) : -1;
		if (!w.ok)
			snprintf(err, errlen, "%s: out of memory", path);
		wire_writer__free(&w);
		if (sent != 0)
			goto out;
		out.offset += (uint64_t)n;
	} while (out.offset < out.size);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	unlink(path);
	return rc;
}

int node_files__send_outputs(struct node_files *f, struct link *l, uint32_t k, char *err,
			     size_t errlen)
{
	if (f->mode != FETCHED)
		return 0;
	int rc = 0;
	for (int kind = 0; kind < MSG_OUTPUT__COUNT; kind++) {
		DIR *d = opendir(f->outputs[kind]);
		if (!d) {
			snprintf(err, errlen, "%s: %s", f->outputs[kind], strerror(errno));
			return -1;
		}
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			if (rc == 0) {
				rc = send_output(l, k, (enum msg_output_kind)kind, f->outputs[kind],
						 e->d_name, err, errlen);
				continue;
			}
			/* after a failure: nothing of k may go out with a later interval */
			char path[PATH_MAX + 300];
			snprintf(path, sizeof(path), "%s/%s", f->outputs[kind], e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	return rc;
}
