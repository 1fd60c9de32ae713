/* libFuzzer target for ckpt_log__parse, the one parser that reads a log
 * file (ckpt_log__load reads the file and calls it).
 *
 * Random bytes almost never pass the checksum, so the first input byte
 * picks a mode: odd = the rest is a whole file, as is, parsed as the
 * interval its header names; even = the next byte is an event count and
 * the rest a payload, framed here with a valid header and checksum so that
 * the event decoder gets exercised.
 *
 * What the parser accepts must be what the writer produces: re-encoding the
 * parsed events reproduces the file byte for byte (the format has one
 * encoding per log), and every event formats within its buffer.
 *
 * Run: meson setup build-fuzz with CC=clang -Dfuzz=true (see
 * tests/fuzz/meson.build), then tests/fuzz/run-fuzzers.sh build-fuzz. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "store-priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parsing is linear in the input; larger inputs only slow the fuzzer. */
#define FUZZ_MAX_INPUT (1u << 20)
#define HDR 32u
#define SUM 8u

static void check_reencode(const struct ckpt_log *log, uint32_t interval, const uint8_t *file,
			   size_t len)
{
	struct ckpt_log_writer *w = ckpt_log_writer__new(interval);
	char line[160];
	void *again;
	size_t again_len;

	if (!w)
		abort();
	for (size_t i = 0; i < ckpt_log__count(log); i++) {
		const struct ckpt_event *ev = ckpt_log__event(log, i);

		/* The writer refuses exactly what the reader refuses. */
		if (ckpt_log_writer__append(w, ev) != 0)
			abort();
		ckpt_event__format(ev, line, sizeof(line));
		if (strlen(line) >= sizeof(line))
			abort();
	}
	if (ckpt_log_writer__finish(w, &again, &again_len) != 0)
		abort();
	if (again_len != len || memcmp(again, file, len) != 0)
		abort();
	free(again);
}

static void check(const uint8_t *file, size_t len, uint32_t interval)
{
	struct ckpt_log *log = NULL;
	char err[512];

	if (ckpt_log__parse(file, len, interval, &log, err, sizeof(err)) < 0) {
		if (log || !memchr(err, '\0', sizeof(err)) || !err[0])
			abort(); /* an error leaves no result and a message */
		return;
	}
	check_reencode(log, interval, file, len);
	ckpt_log__free(log);
}

/* mode byte, count byte, payload: framed as interval 7. */
static void check_framed(const uint8_t *data, size_t size)
{
	size_t plen = size - 2;
	uint8_t *file = malloc(HDR + plen + SUM);

	if (!file)
		return;
	memcpy(file, "SBLOG\0\0\0", 8);
	ckpt__put_le32(file + 8, CKPT_FORMAT_VERSION);
	ckpt__put_le32(file + 12, 7);
	ckpt__put_le64(file + 16, data[1]);
	ckpt__put_le64(file + 24, plen);
	memcpy(file + HDR, data + 2, plen);
	ckpt__put_le64(file + HDR + plen, XXH3_64bits(file, HDR + plen));
	check(file, HDR + plen + SUM, 7);
	free(file);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > FUZZ_MAX_INPUT)
		return 0;
	if (data[0] & 1) {
		/* Parse as the interval the header claims, so that the
		 * interval check does not stop every input. */
		uint32_t interval = size >= 17 ? ckpt__get_le32(data + 1 + 12) : 0;

		check(data + 1, size - 1, interval);
	} else if (size >= 2) {
		check_framed(data, size);
	}
	return 0;
}
