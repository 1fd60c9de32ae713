/* Files of a recording: atomic publication (NAME.tmp, fsync, rename, fsync
 * of the directory), the common envelope, and little-endian codecs. A crash
 * at any point leaves either the old state or the complete new file, never
 * a torn one under the final name. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store-priv.h"

int ckpt__errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int ckpt__errprefix(char *err, size_t errlen, const char *fmt, ...)
{
	char prefix[256];
	size_t plen, mlen;
	va_list ap;

	if (!err || !errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	plen = strlen(prefix);
	mlen = strnlen(err, errlen - 1);
	if (plen >= errlen)
		plen = errlen - 1;
	if (plen + mlen >= errlen)
		mlen = errlen - 1 - plen;
	memmove(err + plen, err, mlen);
	memcpy(err, prefix, plen);
	err[plen + mlen] = '\0';
	return -1;
}

void ckpt_file__name(char out[CKPT_NAME_MAX], uint32_t index, const char *ext)
{
	snprintf(out, CKPT_NAME_MAX, "%06" PRIu32 ".%s", index, ext);
}

const char *ckpt_file__kind_name(uint32_t kind)
{
	switch (kind) {
	case CKPT_KIND_META: return "recording meta";
	case CKPT_KIND_MANIFEST: return "manifest";
	case CKPT_KIND_PACK: return "pack";
	case CKPT_KIND_LOG: return "log";
	}
	return "unknown";
}

/* ---- the envelope ------------------------------------------------------------- */

void ckpt_env__encode(uint8_t hdr[CKPT_ENV_SIZE], uint32_t kind, uint32_t index,
		      uint64_t payload_len, uint64_t checksum)
{
	memcpy(hdr, CKPT_ENV_MAGIC, 4);
	ckpt__put_le32(hdr + 4, CKPT_FORMAT_VERSION);
	ckpt__put_le32(hdr + 8, kind);
	ckpt__put_le32(hdr + 12, index);
	ckpt__put_le64(hdr + 16, payload_len);
	ckpt__put_le64(hdr + 24, checksum);
}

int ckpt_env__check_header(const uint8_t hdr[CKPT_ENV_SIZE], uint64_t file_size,
			   const char *name, uint32_t kind, uint32_t index, uint64_t *payload_len,
			   uint64_t *checksum, char *err, size_t errlen)
{
	uint32_t version, fkind, findex;
	uint64_t plen;

	if (file_size < CKPT_ENV_SIZE)
		return ckpt__errf(err, errlen,
				  "%s: truncated: %" PRIu64 " bytes, shorter than the %u-byte header",
				  name, file_size, CKPT_ENV_SIZE);
	if (memcmp(hdr, CKPT_ENV_MAGIC, 4) != 0)
		return ckpt__errf(err, errlen, "%s: bad magic: not a simuboost recording file",
				  name);
	version = ckpt__get_le32(hdr + 4);
	if (version != CKPT_FORMAT_VERSION)
		return ckpt__errf(err, errlen,
				  "%s: unknown format version %" PRIu32 " (this build reads version %u)",
				  name, version, CKPT_FORMAT_VERSION);
	fkind = ckpt__get_le32(hdr + 8);
	if (fkind != kind)
		return ckpt__errf(err, errlen, "%s: is a %s file (kind %" PRIu32 "), expected a %s",
				  name, ckpt_file__kind_name(fkind), fkind,
				  ckpt_file__kind_name(kind));
	findex = ckpt__get_le32(hdr + 12);
	if (findex != index)
		return ckpt__errf(err, errlen,
				  "%s: wrong index: belongs to checkpoint %" PRIu32 ", expected %" PRIu32,
				  name, findex, index);
	plen = ckpt__get_le64(hdr + 16);
	if (plen > file_size - CKPT_ENV_SIZE)
		return ckpt__errf(err, errlen,
				  "%s: truncated: header says %" PRIu64 " payload bytes, file has %" PRIu64,
				  name, plen, file_size - CKPT_ENV_SIZE);
	if (plen < file_size - CKPT_ENV_SIZE)
		return ckpt__errf(err, errlen,
				  "%s: length mismatch: %" PRIu64 " bytes after the %" PRIu64
				  "-byte payload the header announces",
				  name, file_size - CKPT_ENV_SIZE - plen, plen);
	*payload_len = plen;
	*checksum = ckpt__get_le64(hdr + 24);
	return 0;
}

int ckpt_env__check(const void *buf, size_t len, const char *name, uint32_t kind,
		    uint32_t index, const uint8_t **payload, size_t *payload_len, char *err,
		    size_t errlen)
{
	const uint8_t *p = buf;
	uint64_t plen, want, got;

	if (len < CKPT_ENV_SIZE)
		return ckpt__errf(err, errlen,
				  "%s: truncated: %zu bytes, shorter than the %u-byte header", name,
				  len, CKPT_ENV_SIZE);
	if (ckpt_env__check_header(p, len, name, kind, index, &plen, &want, err, errlen))
		return -1;
	got = XXH3_64bits(p + CKPT_ENV_SIZE, (size_t)plen);
	if (got != want)
		return ckpt__errf(err, errlen,
				  "%s: checksum mismatch: stored 0x%016" PRIx64 ", computed 0x%016" PRIx64,
				  name, want, got);
	*payload = p + CKPT_ENV_SIZE;
	*payload_len = (size_t)plen;
	return 0;
}

/* ---- writing --------------------------------------------------------------------- */

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* NAME.tmp; NAME is at most PUBLISH_NAME_MAX bytes. */
#define PUBLISH_NAME_MAX (NAME_MAX - 4)
#define TMP_NAME_MAX (NAME_MAX + 1)

static void tmp_name(char out[TMP_NAME_MAX], const char *name)
{
	snprintf(out, TMP_NAME_MAX, "%s.tmp", name);
}

static int open_tmp(int dirfd, const char *name, char *err, size_t errlen)
{
	char tmp[TMP_NAME_MAX];
	int fd;

	tmp_name(tmp, name);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return ckpt__errf(err, errlen, "%s: open: %s", name, strerror(errno));
	return fd;
}

/* fsync, close, rename, fsync of the directory: the file is durable under
 * its final name before anything depends on it. Closes fd in all cases. */
static int publish(int dirfd, int fd, const char *name, char *err, size_t errlen)
{
	char tmp[TMP_NAME_MAX];

	tmp_name(tmp, name);
	if (fsync(fd) < 0) {
		ckpt__errf(err, errlen, "%s: fsync: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	/* close can report a delayed write error (NFS and the like). */
	if (close(fd) < 0)
		return ckpt__errf(err, errlen, "%s: close: %s", name, strerror(errno));
	if (renameat(dirfd, tmp, dirfd, name) < 0)
		return ckpt__errf(err, errlen, "%s: rename: %s", name, strerror(errno));
	if (fsync(dirfd) < 0) {
		ckpt__errf(err, errlen, "%s: fsync of the directory: %s", name, strerror(errno));
		unlinkat(dirfd, name, 0);
		return -1;
	}
	return 0;
}

int ckpt_file__write_atomic(int dirfd, const char *name, const struct iovec *iov, int iovcnt,
			    char *err, size_t errlen)
{
	char tmp[TMP_NAME_MAX];
	int fd = open_tmp(dirfd, name, err, errlen);

	if (fd < 0)
		return -1;
	for (int i = 0; i < iovcnt; i++) {
		if (write_all(fd, iov[i].iov_base, iov[i].iov_len) < 0) {
			ckpt__errf(err, errlen, "%s: write: %s", name, strerror(errno));
			close(fd);
			goto fail;
		}
	}
	if (publish(dirfd, fd, name, err, errlen) < 0)
		goto fail;
	return 0;
fail:
	tmp_name(tmp, name);
	unlinkat(dirfd, tmp, 0);
	return -1;
}

int ckpt_file__publish_part(const char *path, uint64_t offset, const void *buf, size_t len,
			    bool last, char *err, size_t errlen)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	char dir[4096], tmp[TMP_NAME_MAX];

	if (!*name || strlen(name) > PUBLISH_NAME_MAX)
		return ckpt__errf(err, errlen, "%s: the file name must be 1 to %d bytes", path,
				  PUBLISH_NAME_MAX);
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if ((size_t)(slash - path) >= sizeof(dir))
		return ckpt__errf(err, errlen, "%s: path too long", path);
	else
		snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return ckpt__errf(err, errlen, "%s: %s", dir, strerror(errno));
	tmp_name(tmp, name);
	/* the first part starts the file afresh; a later one finds it */
	int fd = offset ? openat(dirfd, tmp, O_WRONLY | O_CLOEXEC) : open_tmp(dirfd, name, err, errlen);
	int rc = -1;
	if (fd < 0) {
		if (offset)
			ckpt__errf(err, errlen, "%s: open: %s", tmp, strerror(errno));
		goto out;
	}
	if (lseek(fd, (off_t)offset, SEEK_SET) < 0 || write_all(fd, buf, len) < 0) {
		ckpt__errf(err, errlen, "%s: write: %s", name, strerror(errno));
		close(fd);
		unlinkat(dirfd, tmp, 0);
		goto out;
	}
	if (!last) {
		rc = close(fd) < 0 ? ckpt__errf(err, errlen, "%s: close: %s", tmp, strerror(errno)) : 0;
		goto out;
	}
	rc = publish(dirfd, fd, name, err, errlen);
	if (rc < 0)
		unlinkat(dirfd, tmp, 0);
out:
	close(dirfd);
	if (rc != 0) { /* the error names the file alone: the directory first */
		char inner[512];
		snprintf(inner, sizeof(inner), "%s", err);
		snprintf(err, errlen, "%s/%s", dir, inner);
	}
	return rc;
}

int ckpt_file__publish(const char *path, const void *buf, size_t len, char *err, size_t errlen)
{
	return ckpt_file__publish_part(path, 0, buf, len, true, err, errlen);
}

int ckpt_file__write_env(int dirfd, const char *name, uint32_t kind, uint32_t index,
			 const void *payload, size_t len, char *err, size_t errlen)
{
	uint8_t hdr[CKPT_ENV_SIZE];
	struct iovec iov[2] = {
		{ .iov_base = hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)payload, .iov_len = len },
	};

	ckpt_env__encode(hdr, kind, index, len, XXH3_64bits(payload, len));
	return ckpt_file__write_atomic(dirfd, name, iov, 2, err, errlen);
}

/* ---- the streaming writer ---------------------------------------------------------- */

/* O_DIRECT's unit: the logical block size of any disk we meet divides it. */
#define DIRECT_ALIGN 4096u

int ckpt_wfile__open(struct ckpt_wfile *w, int dirfd, const char *name, uint32_t kind,
		     uint32_t index, size_t bufsize, char *err, size_t errlen)
{
	char tmp[TMP_NAME_MAX];

	memset(w, 0, sizeof(*w));
	w->fd = -1;
	w->dirfd = dirfd;
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->kind = kind;
	w->index = index;
	/* a block beyond the caller's reservations, for the unaligned tail
	 * a direct write leaves behind */
	w->cap = (bufsize + 2 * DIRECT_ALIGN - 1) / DIRECT_ALIGN * DIRECT_ALIGN;
	if (posix_memalign((void **)&w->buf, DIRECT_ALIGN, w->cap) != 0)
		w->buf = NULL;
	w->xxh = XXH3_createState();
	if (!w->buf || !w->xxh) {
		ckpt_wfile__discard(w);
		return ckpt__errf(err, errlen, "%s: out of memory", name);
	}
	XXH3_64bits_reset(w->xxh);
	tmp_name(tmp, name);
	w->fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0644);
	w->direct = w->fd >= 0;
	if (w->fd < 0 && errno == EINVAL) /* tmpfs before Linux 6.6, and others */
		w->fd = open_tmp(dirfd, name, err, errlen);
	else if (w->fd < 0)
		ckpt__errf(err, errlen, "%s: open: %s", name, strerror(errno));
	if (w->fd < 0) {
		ckpt_wfile__discard(w);
		return -1;
	}
	/* The envelope goes in last, once length and checksum are known; its
	 * room is the buffer's first bytes. */
	memset(w->buf, 0, CKPT_ENV_SIZE);
	w->used = CKPT_ENV_SIZE;
	return 0;
}

static int wfile_buffered(struct ckpt_wfile *w, char *err, size_t errlen)
{
	int fl = fcntl(w->fd, F_GETFL);

	if (fl < 0 || fcntl(w->fd, F_SETFL, fl & ~O_DIRECT) < 0)
		return ckpt__errf(err, errlen, "%s: fcntl: %s", w->name, strerror(errno));
	w->direct = false;
	return 0;
}

/* Writes the buffer out, all of it (last), or else its whole blocks when
 * direct, keeping the rest at the buffer's start. */
static int wfile_flush(struct ckpt_wfile *w, bool last, char *err, size_t errlen)
{
	size_t n = w->used;

	if (w->direct && !last)
		n -= n % DIRECT_ALIGN;
	/* the tail through the page cache: O_DIRECT takes whole blocks */
	if (w->direct && last && n % DIRECT_ALIGN && wfile_buffered(w, err, errlen) < 0)
		return -1;
	if (!n)
		return 0;
	if (write_all(w->fd, w->buf, n) < 0)
		return ckpt__errf(err, errlen, "%s: write: %s", w->name, strerror(errno));
	size_t skip = w->written ? 0 : CKPT_ENV_SIZE;
	XXH3_64bits_update(w->xxh, w->buf + skip, n - skip);
	w->written += n;
	w->used -= n;
	memmove(w->buf, w->buf + n, w->used);
	return 0;
}

void *ckpt_wfile__reserve(struct ckpt_wfile *w, size_t n, char *err, size_t errlen)
{
	if (w->cap - w->used < n && wfile_flush(w, false, err, errlen) < 0)
		return NULL;
	return w->buf + w->used;
}

int ckpt_wfile__finish(struct ckpt_wfile *w, char *err, size_t errlen)
{
	uint8_t hdr[CKPT_ENV_SIZE];
	ssize_t n;
	int fd;

	if (wfile_flush(w, true, err, errlen) < 0 ||
	    (w->direct && wfile_buffered(w, err, errlen) < 0))
		goto fail;
	ckpt_env__encode(hdr, w->kind, w->index, w->written - CKPT_ENV_SIZE,
			 XXH3_64bits_digest(w->xxh));
	n = pwrite(w->fd, hdr, sizeof(hdr), 0);
	if (n != (ssize_t)sizeof(hdr)) {
		ckpt__errf(err, errlen, "%s: write: %s", w->name,
			   n < 0 ? strerror(errno) : "short write");
		goto fail;
	}
	fd = w->fd;
	w->fd = -1;
	if (publish(w->dirfd, fd, w->name, err, errlen) < 0)
		goto fail;
	free(w->buf);
	XXH3_freeState(w->xxh);
	w->buf = NULL;
	w->xxh = NULL;
	return 0;
fail:
	ckpt_wfile__discard(w);
	return -1;
}

void ckpt_wfile__discard(struct ckpt_wfile *w)
{
	char tmp[TMP_NAME_MAX];

	if (w->fd >= 0) {
		close(w->fd);
		w->fd = -1;
	}
	if (w->name[0]) {
		tmp_name(tmp, w->name);
		unlinkat(w->dirfd, tmp, 0);
	}
	free(w->buf);
	if (w->xxh)
		XXH3_freeState(w->xxh);
	w->buf = NULL;
	w->xxh = NULL;
	w->name[0] = '\0';
}

/* ---- reading ---------------------------------------------------------------------------- */

int ckpt_file__stat_regular(int fd, const char *name, struct stat *sb, char *err,
			    size_t errlen)
{
	if (fstat(fd, sb) < 0) {
		ckpt__errf(err, errlen, "%s: stat: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(sb->st_mode)) {
		close(fd);
		return ckpt__errf(err, errlen, "%s: not a regular file", name);
	}
	return 0;
}

int ckpt_file__read_fd(int fd, const char *name, void **buf, size_t *len, char *err,
		       size_t errlen)
{
	struct stat sb;
	uint8_t *p;
	size_t got = 0;

	if (ckpt_file__stat_regular(fd, name, &sb, err, errlen) != 0)
		return -1;
	/* +1: a zero-length file still gets a buffer to free. */
	p = malloc((size_t)sb.st_size + 1);
	if (!p) {
		close(fd);
		return ckpt__errf(err, errlen, "%s: out of memory for %lld bytes", name,
				  (long long)sb.st_size);
	}
	while (got < (size_t)sb.st_size) {
		ssize_t n = read(fd, p + got, (size_t)sb.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ckpt__errf(err, errlen, "%s: read: %s", name, strerror(errno));
			free(p);
			close(fd);
			return -1;
		}
		if (n == 0)
			break; /* shrank under us: the envelope check reports it */
		got += (size_t)n;
	}
	close(fd);
	*buf = p;
	*len = got;
	return 0;
}

int ckpt_file__read(int dirfd, const char *name, void **buf, size_t *len, char *err,
		    size_t errlen)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return ckpt__errf(err, errlen, "%s: open: %s", name, strerror(errno));
	return ckpt_file__read_fd(fd, name, buf, len, err, errlen);
}

int ckpt_file__load(int dirfd, const char *name, uint32_t kind, uint32_t index, void **buf,
		    const uint8_t **payload, size_t *payload_len, char *err, size_t errlen)
{
	size_t len;

	if (ckpt_file__read(dirfd, name, buf, &len, err, errlen) < 0)
		return -1;
	if (ckpt_env__check(*buf, len, name, kind, index, payload, payload_len, err, errlen) < 0) {
		free(*buf);
		*buf = NULL;
		return -1;
	}
	return 0;
}

/* ---- little-endian codecs --------------------------------------------------------------- */

void ckpt_wbuf__bytes(struct ckpt_wbuf *b, const void *data, size_t n)
{
	if (b->oom)
		return;
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 256;
		uint8_t *p;

		while (cap - b->len < n) {
			if (cap > SIZE_MAX / 2) {
				b->oom = true;
				return;
			}
			cap *= 2;
		}
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
}

void ckpt_wbuf__u8(struct ckpt_wbuf *b, uint8_t v)
{
	ckpt_wbuf__bytes(b, &v, 1);
}

void ckpt_wbuf__u16(struct ckpt_wbuf *b, uint16_t v)
{
	uint8_t p[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	ckpt_wbuf__bytes(b, p, 2);
}

void ckpt_wbuf__u32(struct ckpt_wbuf *b, uint32_t v)
{
	uint8_t p[4];
	ckpt__put_le32(p, v);
	ckpt_wbuf__bytes(b, p, 4);
}

void ckpt_wbuf__u64(struct ckpt_wbuf *b, uint64_t v)
{
	uint8_t p[8];
	ckpt__put_le64(p, v);
	ckpt_wbuf__bytes(b, p, 8);
}

const uint8_t *ckpt_rbuf__bytes(struct ckpt_rbuf *b, size_t n)
{
	const uint8_t *p;

	if (b->short_ || ckpt_rbuf__left(b) < n) {
		b->short_ = true;
		return NULL;
	}
	p = b->p + b->pos;
	b->pos += n;
	return p;
}

uint8_t ckpt_rbuf__u8(struct ckpt_rbuf *b)
{
	const uint8_t *p = ckpt_rbuf__bytes(b, 1);
	return p ? p[0] : 0;
}

uint16_t ckpt_rbuf__u16(struct ckpt_rbuf *b)
{
	const uint8_t *p = ckpt_rbuf__bytes(b, 2);
	return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

uint32_t ckpt_rbuf__u32(struct ckpt_rbuf *b)
{
	const uint8_t *p = ckpt_rbuf__bytes(b, 4);
	return p ? ckpt__get_le32(p) : 0;
}

uint64_t ckpt_rbuf__u64(struct ckpt_rbuf *b)
{
	const uint8_t *p = ckpt_rbuf__bytes(b, 8);
	return p ? ckpt__get_le64(p) : 0;
}
