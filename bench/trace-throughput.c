/* The trace library's speed against its ceilings, on one set of records:
 * the records of a real trace (argument) or a synthetic loop. Prints the
 * writer's throughput (it compresses on a thread of its own, so both wall
 * and CPU time are given), the compression ratio, the reader's scan speed
 * on one core, and memcpy and lz4 over the same bytes, measured here.
 *
 *   trace-throughput [TRACE] [MAX_RECORDS]  */
#include <inttypes.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "trace.h"

#define CHUNK (256u * 1024u)

static double now(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct trace_record *load(const char *path, size_t max, size_t *n)
{
	char err[512];
	struct trace_reader *r = trace_reader__open(path, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "trace-throughput: %s\n", err);
		exit(1);
	}
	struct trace_record *v = malloc(max * sizeof(*v));
	*n = 0;
	while (*n < max && trace_reader__next(r, &v[*n], err, sizeof(err)) == 1)
		(*n)++;
	trace_reader__close(r);
	return v;
}

/* A loop: sequential instructions, a branch every 6, a memory access
 * every other instruction, an interrupt now and then. */
static struct trace_record *synthesize(size_t count)
{
	struct trace_record *v = calloc(count, sizeof(*v));
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0, insn = 0; i < count; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		if (i % 3 == 1) {
			v[i].kind = TRACE_MEM;
			v[i].mem = (__typeof__(v[i].mem)){ .vaddr = 0x7fff0000 + (x & 0xff8),
							   .paddr = 0x3ff0000 + (x & 0xff8),
							   .value = x % 1000, .size = 8,
							   .write = x & 1 };
		} else if (i % 100000 == 0) {
			v[i].kind = TRACE_EVENT;
			v[i].event.kind = TRACE_EV_INTERRUPT;
			v[i].event.a = 0x20;
		} else {
			v[i].kind = TRACE_INSN;
			v[i].insn.pc = 0x401000 + (insn++ % 6) * 4;
			v[i].insn.size = 4;
			v[i].insn.cpl = 3;
		}
	}
	return v;
}

int main(int argc, char **argv)
{
	size_t max = argc > 2 ? strtoull(argv[2], NULL, 0) : 20000000, n;
	struct trace_record *recs = argc > 1 && strcmp(argv[1], "-") ? load(argv[1], max, &n)
								      : synthesize(n = max);
	char dir[] = "/tmp/trace-throughput.XXXXXX", path[64], err[512];
	size_t kinds[4] = { 0 };
	for (size_t i = 0; i < n; i++)
		kinds[recs[i].kind]++;
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/000000.trace", dir);

	/* the writer */
	double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
	struct trace_writer *w = trace_writer__create(path, 0, err, sizeof(err));
	for (size_t i = 0; w && i < n; i++)
		if (trace_writer__append(w, &recs[i], err, sizeof(err)) != 0)
			return fprintf(stderr, "%s\n", err), 1;
	if (!w || trace_writer__commit(w, err, sizeof(err)) != 0)
		return fprintf(stderr, "%s\n", err), 1;
	double write_s = now(CLOCK_MONOTONIC) - w0, write_cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;

	/* the reader, on one core */
	struct trace_reader *r = trace_reader__open(path, err, sizeof(err));
	if (!r)
		return fprintf(stderr, "%s\n", err), 1;
	struct trace_info info = *trace_reader__info(r);
	struct trace_record rec;
	uint64_t sum = 0;
	double r0 = now(CLOCK_MONOTONIC);
	while (trace_reader__next(r, &rec, err, sizeof(err)) == 1)
		sum += rec.icount;
	double read_s = now(CLOCK_MONOTONIC) - r0;
	trace_reader__close(r);
	unlink(path);
	rmdir(dir);

	/* the ceilings, over as many bytes: the records laid out as the
	 * format's widest record, 27 bytes */
	size_t raw = info.raw_bytes, nchunks = (raw + CHUNK - 1) / CHUNK;
	uint8_t *src = malloc(raw + CHUNK), *dst = malloc(raw + CHUNK);
	char *comp = malloc((size_t)LZ4_compressBound(CHUNK) * nchunks);
	int *clen = malloc(nchunks * sizeof(*clen));
	for (size_t i = 0, off = 0; off + 27 <= raw; i = (i + 1) % n, off += 27) {
		src[off] = (uint8_t)recs[i].kind;
		memcpy(src + off + 1, &recs[i].mem.vaddr, 8);
		memcpy(src + off + 9, &recs[i].mem.paddr, 8);
		memcpy(src + off + 17, &recs[i].mem.value, 8);
		src[off + 25] = recs[i].mem.size;
		src[off + 26] = 0;
	}
	/* every buffer touched first: page faults are not the ceiling */
	memset(dst, 0, raw + CHUNK);
	memset(comp, 0, (size_t)LZ4_compressBound(CHUNK) * nchunks);
	double memcpy_s = 1e9;
	for (int rep = 0; rep < 3; rep++) {
		double m0 = now(CLOCK_MONOTONIC);
		memcpy(dst, src, raw);
		double t = now(CLOCK_MONOTONIC) - m0;
		memcpy_s = t < memcpy_s ? t : memcpy_s;
	}
	size_t comp_total = 0;
	double l0 = now(CLOCK_MONOTONIC);
	for (size_t c = 0; c < nchunks; c++) {
		size_t len = c + 1 < nchunks ? CHUNK : raw - c * CHUNK;
		clen[c] = LZ4_compress_default((char *)src + c * CHUNK,
					       comp + c * (size_t)LZ4_compressBound(CHUNK), (int)len,
					       LZ4_compressBound(CHUNK));
		comp_total += (size_t)clen[c];
	}
	double lz4c_s = now(CLOCK_MONOTONIC) - l0;
	double d0 = now(CLOCK_MONOTONIC);
	for (size_t c = 0; c < nchunks; c++)
		LZ4_decompress_safe(comp + c * (size_t)LZ4_compressBound(CHUNK), (char *)dst + c * CHUNK,
				    clen[c], CHUNK);
	double lz4d_s = now(CLOCK_MONOTONIC) - d0;

	double mib = (double)raw / (1 << 20);
	printf("%zu records: %zu instructions, %zu memory accesses, %zu events (%s)\n", n, kinds[1],
	       kinds[2], kinds[3], argc > 1 && strcmp(argv[1], "-") ? argv[1] : "synthetic");
	printf("raw %.1f MiB (%.2f bytes/record), file %.1f MiB: compression %.2fx\n\n", mib,
	       (double)raw / (double)n, (double)info.file_bytes / (1 << 20),
	       (double)raw / (double)info.file_bytes);
	printf("%-34s %14s %12s %10s\n", "", "records/s", "MiB/s raw", "vs memcpy");
	printf("%-34s %14s %12.0f %10s\n", "memcpy (ceiling)", "-", mib / memcpy_s, "1.00");
	printf("%-34s %14s %12.0f %10.3f   ratio %.2fx\n", "lz4 compress, 256 KiB chunks", "-",
	       mib / lz4c_s, memcpy_s / lz4c_s, (double)raw / (double)comp_total);
	printf("%-34s %14s %12.0f %10.3f\n", "lz4 decompress", "-", mib / lz4d_s, memcpy_s / lz4d_s);
	printf("%-34s %14.3g %12.0f %10.3f\n", "writer, wall (+ its lz4 thread)", n / write_s,
	       mib / write_s, memcpy_s / write_s);
	printf("%-34s %14.3g %12.0f %10.3f\n", "writer, per CPU second", n / write_cpu,
	       mib / write_cpu, memcpy_s / write_cpu);
	/* the same records in fixed-size form (format 2: instructions 11
	 * bytes, accesses and events 27), the usual measure of a trace's
	 * raw volume */
	double fixed = (double)(kinds[1] * 11 + (kinds[2] + kinds[3]) * 27) / (1 << 20);
	printf("%-34s %14.3g %12.0f %10.3f\n", "reader scan, one core", n / read_s, mib / read_s,
	       memcpy_s / read_s);
	printf("%-34s %14s %12.0f %10s   %s\n", "  ... as fixed-size records", "", fixed / read_s,
	       "", fixed / read_s >= 1024 ? "target 1 GiB/s: met" : "target 1 GiB/s: NOT met");
	printf("(Simutrace reads memory traces at 700 MiB/s on 24 cores.) checksum %" PRIu64 "\n",
	       sum & 0xff);
	free(recs), free(src), free(dst), free(comp), free(clen);
	return 0;
}
