/* libFuzzer target for wire frames (wire__decode through wire_guard, the
 * one parser of what arrives from the network) and the payload field
 * reader. The fuzz build skips the MAC check (see wire.c) so that
 * mutations reach the header checks and the fields behind them.
 *
 * Properties besides the sanitizers': an accepted frame's payload lies
 * inside the input; encoding what was decoded gives a frame that decodes
 * to the same message; the field reader never reads past the payload.
 *
 * Seed corpus: corpus/wire/, frames of each type. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distributor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fresh for every input: one frame is never a replay of an earlier input */
static struct wire_guard guard;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct wire_key key;
	static int ready;
	struct wire_msg m;

	if (!ready) {
		if (wire_key__from_secret(&key, "simuboost fuzz secret") != 0)
			abort();
		ready = 1;
	}
	wire_guard__init(&guard);
	if (wire_guard__accept(&guard, &key, data, size, &m) != WIRE_OK)
		return 0;
	if (m.payload < data || m.payload + m.len > data + size)
		abort();
	uint8_t *again = malloc(wire__frame_size(m.len));
	struct wire_msg back;
	if (!again || wire__encode(&key, &m, again, wire__frame_size(m.len)) == 0 ||
	    wire__decode(&key, again, wire__frame_size(m.len), &back) != WIRE_OK ||
	    back.type != m.type || back.sender != m.sender || back.seq != m.seq ||
	    back.len != m.len || memcmp(back.payload, m.payload, m.len))
		abort();
	free(again);
	/* fields of every width, in the order the type's number picks */
	struct wire_reader r = wire_reader__of(&m);
	uint32_t consumed = 0;
	for (unsigned i = 0; r.ok; i++) {
		uint8_t u8;
		uint32_t u32, n;
		uint64_t u64;
		const uint8_t *p;
		uint32_t before = r.left;
		switch ((i + m.type) % 4) {
		case 0: wire_reader__u8(&r, &u8); break;
		case 1: wire_reader__u32(&r, &u32); break;
		case 2: wire_reader__u64(&r, &u64); break;
		default:
			if (wire_reader__blob(&r, &p, &n, 4096) &&
			    (p < m.payload || p + n > m.payload + m.len))
				abort();
		}
		if (r.left > before)
			abort();
		consumed += before - r.left;
	}
	if (consumed > m.len)
		abort();
	return 0;
}
