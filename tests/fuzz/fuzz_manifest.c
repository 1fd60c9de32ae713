/* libFuzzer target for ckpt_manifest__parse, the one parser that reads a
 * manifest file (ckpt_manifest__load reads the file and calls it).
 *
 * Random bytes almost never pass the envelope's checksum, so the first
 * input byte picks a mode: odd = the rest is a whole file, as is; even =
 * the rest is a payload, sealed here with a valid envelope so that the
 * payload parser (counts, lengths, page entries) gets exercised.
 *
 * Build (standalone, until meson wires it up):
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -I checkpoint -I build checkpoint/file.c checkpoint/store.c \
 *     checkpoint/pack.c checkpoint/manifest.c checkpoint/materialize.c \
 *     checkpoint/log.c tests/fuzz/fuzz_manifest.c \
 *     -lxxhash -llz4 -ljansson -o fuzz_manifest
 *   ./fuzz_manifest -max_len=65536 corpus/
 * Seed corpus: any NNNNNN.manifest of a recording (mode byte 1 in front),
 * or its payload (mode byte 0 in front). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store-priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parsing is linear in the input; larger inputs only slow the fuzzer. */
#define FUZZ_MAX_INPUT (1u << 20)

static void check(const uint8_t *file, size_t len, uint32_t index)
{
	struct ckpt_manifest *m = NULL;
	char err[512];
	void *again;
	size_t again_len;

	if (ckpt_manifest__parse(file, len, index, &m, err, sizeof(err)) < 0) {
		if (m || !memchr(err, '\0', sizeof(err)) || !err[0])
			abort(); /* an error must leave no result and a message */
		return;
	}
	/* What the parser accepts is what the encoder writes: re-encoding
	 * reproduces the file byte for byte. */
	if (ckpt_manifest__encode(m, &again, &again_len) < 0)
		abort();
	if (again_len != len || memcmp(again, file, len) != 0)
		abort();
	free(again);
	ckpt_manifest__free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *file;
	uint32_t index;

	if (size < 1 || size > FUZZ_MAX_INPUT)
		return 0;
	if (data[0] & 1) {
		/* The index the file claims, so that its own check passes too. */
		index = size >= 17 ? ckpt__get_le32(data + 13) : 0;
		check(data + 1, size - 1, index);
		return 0;
	}
	/* The payload begins with its index; seal with the same one. */
	index = size >= 5 ? ckpt__get_le32(data + 1) : 0;
	file = malloc(CKPT_ENV_SIZE + size - 1);
	if (!file)
		return 0;
	memcpy(file + CKPT_ENV_SIZE, data + 1, size - 1);
	ckpt_env__encode(file, CKPT_KIND_MANIFEST, index, size - 1,
			 XXH3_64bits(data + 1, size - 1));
	check(file, CKPT_ENV_SIZE + size - 1, index);
	free(file);
	return 0;
}
