/* Frames and fields of wire messages: see wire.h. HMAC-SHA-256 and the key
 * hash come from libsodium. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <jansson.h>

#include "distributor.h"

#define MAGIC "SBWM"

/* The fuzz build (tests/fuzz) skips the MAC, so that mutations reach what
 * lies behind it: libFuzzer's convention. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define MAC_OK(mac, data, len, key) ((void)(mac), (void)(data), (void)(len), (void)(key), true)
#else
#define MAC_OK(mac, data, len, key) (crypto_auth_hmacsha256_verify(mac, data, len, key) == 0)
#endif

_Static_assert(WIRE_MAC_SIZE == crypto_auth_hmacsha256_BYTES, "MAC size");
_Static_assert(WIRE_KEY_SIZE == crypto_auth_hmacsha256_KEYBYTES, "key size");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian hosts only");

static const char *const type_names[WIRE_TYPE__COUNT] = {
	[WIRE_HELLO] = "hello",       [WIRE_WELCOME] = "welcome",
	[WIRE_ASSIGN] = "assign",     [WIRE_RESULT] = "result",
	[WIRE_HAVE] = "have",         [WIRE_PAGE_REQUEST] = "page-request",
	[WIRE_PAGE_DATA] = "page-data", [WIRE_HEARTBEAT] = "heartbeat",
	[WIRE_BYE] = "bye", [WIRE_FILE_REQUEST] = "file-request", [WIRE_FILE_DATA] = "file-data",
	[WIRE_OUTPUT] = "output",
};

static const char *const verdict_names[WIRE_VERDICT__COUNT] = {
	[WIRE_OK] = "accepted",         [WIRE_SHORT] = "short",
	[WIRE_OVERSIZED] = "oversized", [WIRE_BAD_MAGIC] = "bad magic",
	[WIRE_BAD_VERSION] = "other version", [WIRE_UNKNOWN_TYPE] = "unknown type",
	[WIRE_BAD_MAC] = "bad MAC",     [WIRE_REPLAYED] = "replayed",
};

const char *wire_type__name(enum wire_type type)
{
	return type > 0 && type < WIRE_TYPE__COUNT ? type_names[type] : "unknown";
}

const char *wire_verdict__name(enum wire_verdict v)
{
	return v < WIRE_VERDICT__COUNT ? verdict_names[v] : "unknown";
}

int wire_key__from_secret(struct wire_key *key, const char *secret)
{
	size_t n = strlen(secret);
	if (n < 16 || sodium_init() < 0)
		return -1;
	static const char context[] = "simuboost wire key v1";
	crypto_generichash(key->bytes, sizeof(key->bytes), (const unsigned char *)secret, n,
			   (const unsigned char *)context, sizeof(context) - 1);
	return 0;
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

size_t wire__encode(const struct wire_key *key, const struct wire_msg *m, void *out, size_t cap)
{
	uint8_t *f = out;
	if (m->len > WIRE_MAX_PAYLOAD || cap < wire__frame_size(m->len))
		return 0;
	memcpy(f, MAGIC, 4);
	put16(f + 4, WIRE_VERSION);
	put16(f + 6, (uint16_t)m->type);
	put32(f + 8, m->sender);
	put32(f + 12, m->len);
	put64(f + 16, m->seq);
	put64(f + 24, 0);
	if (m->len)
		memcpy(f + WIRE_HEADER_SIZE, m->payload, m->len);
	crypto_auth_hmacsha256(f + WIRE_HEADER_SIZE + m->len, f, WIRE_HEADER_SIZE + m->len,
			       key->bytes);
	return wire__frame_size(m->len);
}

enum wire_verdict wire__decode(const struct wire_key *key, const void *buf, size_t len,
			       struct wire_msg *m)
{
	const uint8_t *f = buf;
	if (len < WIRE_HEADER_SIZE + WIRE_MAC_SIZE)
		return WIRE_SHORT;
	if (memcmp(f, MAGIC, 4))
		return WIRE_BAD_MAGIC;
	uint32_t plen = get32(f + 12);
	if (plen > WIRE_MAX_PAYLOAD)
		return WIRE_OVERSIZED;
	if (len < wire__frame_size(plen))
		return WIRE_SHORT;
	if (len > wire__frame_size(plen))
		return WIRE_OVERSIZED;
	/* authenticity before anything the header claims is believed */
	if (!MAC_OK(f + WIRE_HEADER_SIZE + plen, f, WIRE_HEADER_SIZE + plen, key->bytes))
		return WIRE_BAD_MAC;
	if (get16(f + 4) != WIRE_VERSION || get64(f + 24) != 0)
		return WIRE_BAD_VERSION;
	uint16_t type = get16(f + 6);
	if (type == 0 || type >= WIRE_TYPE__COUNT)
		return WIRE_UNKNOWN_TYPE;
	*m = (struct wire_msg){ .type = (enum wire_type)type, .sender = get32(f + 8),
				.seq = get64(f + 16), .payload = f + WIRE_HEADER_SIZE, .len = plen };
	return WIRE_OK;
}

void wire_guard__init(struct wire_guard *g)
{
	memset(g, 0, sizeof(*g));
}

enum wire_verdict wire_guard__accept(struct wire_guard *g, const struct wire_key *key,
				     const void *buf, size_t len, struct wire_msg *m)
{
	enum wire_verdict v = wire__decode(key, buf, len, m);
	if (v == WIRE_OK) {
		uint32_t i = 0;
		while (i < g->nsenders && g->senders[i].sender != m->sender)
			i++;
		if (i == g->nsenders && i < WIRE_GUARD_SENDERS) {
			g->senders[i].sender = m->sender;
			g->senders[i].last_seq = 0;
			g->nsenders++;
		}
		/* sequence numbers start at 1; with no room left for a new sender
		 * nothing from it is accepted */
		if (i == WIRE_GUARD_SENDERS || m->seq <= g->senders[i].last_seq)
			v = WIRE_REPLAYED;
		else
			g->senders[i].last_seq = m->seq;
	}
	g->counts[v]++;
	return v;
}

/* ---- fields --------------------------------------------------------------- */

static void *grow(struct wire_writer *w, uint32_t n)
{
	if (!w->ok || n > WIRE_MAX_PAYLOAD - w->len) {
		w->ok = false;
		return NULL;
	}
	if (w->len + n > w->cap) {
		uint32_t cap = w->cap ? w->cap : 256;
		while (cap < w->len + n)
			cap = cap > WIRE_MAX_PAYLOAD / 2 ? WIRE_MAX_PAYLOAD : cap * 2;
		uint8_t *b = realloc(w->buf, cap);
		if (!b) {
			w->ok = false;
			return NULL;
		}
		w->buf = b;
		w->cap = cap;
	}
	void *p = w->buf + w->len;
	w->len += n;
	return p;
}

void wire_writer__bytes(struct wire_writer *w, const void *p, uint32_t n)
{
	void *d = grow(w, n);
	if (d && n)
		memcpy(d, p, n);
}

void wire_writer__u8(struct wire_writer *w, uint8_t v) { wire_writer__bytes(w, &v, 1); }
void wire_writer__u32(struct wire_writer *w, uint32_t v) { wire_writer__bytes(w, &v, 4); }
void wire_writer__u64(struct wire_writer *w, uint64_t v) { wire_writer__bytes(w, &v, 8); }

void wire_writer__blob(struct wire_writer *w, const void *p, uint32_t n)
{
	wire_writer__u32(w, n);
	wire_writer__bytes(w, p, n);
}

void wire_writer__free(struct wire_writer *w)
{
	free(w->buf);
	*w = (struct wire_writer){ 0 };
}

bool wire_reader__bytes(struct wire_reader *r, void *out, uint32_t n)
{
	if (!r->ok || r->left < n) {
		r->ok = false;
		return false;
	}
	if (n)
		memcpy(out, r->p, n);
	r->p += n;
	r->left -= n;
	return true;
}

bool wire_reader__u8(struct wire_reader *r, uint8_t *v) { return wire_reader__bytes(r, v, 1); }
bool wire_reader__u32(struct wire_reader *r, uint32_t *v) { return wire_reader__bytes(r, v, 4); }
bool wire_reader__u64(struct wire_reader *r, uint64_t *v) { return wire_reader__bytes(r, v, 8); }

bool wire_reader__blob(struct wire_reader *r, const uint8_t **p, uint32_t *n, uint32_t max)
{
	uint32_t len;
	if (!wire_reader__u32(r, &len) || len > max || len > r->left) {
		r->ok = false;
		return false;
	}
	*p = r->p;
	*n = len;
	r->p += len;
	r->left -= len;
	return true;
}

json_t *wire__refusals_json(const uint64_t counts[WIRE_VERDICT__COUNT])
{
	json_t *o = json_object();
	for (int v = WIRE_OK + 1; v < WIRE_VERDICT__COUNT; v++)
		if (counts[v])
			json_object_set_new(o, wire_verdict__name((enum wire_verdict)v),
					    json_integer((json_int_t)counts[v]));
	return o;
}
