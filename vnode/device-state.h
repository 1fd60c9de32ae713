/* Little-endian encoding helpers shared by the device save/restore code
 * (pic.c, pit.c, uart.c) and the aggregate in device-state.c. Private to
 * vnode; the public API is in devices.h.
 *
 * A device blob is: a 4-byte tag, a u16 version, then the fields in a fixed
 * order, every integer little-endian, booleans as one byte 0 or 1. */
#ifndef SIMUBOOST_VNODE_DEVICE_STATE_H
#define SIMUBOOST_VNODE_DEVICE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DSTATE_TAG_LEN 4
/* Device blob tags; devices__save() uses the same ones for its sections. */
#define DSTATE_TAG_PIC  "PIC "
#define DSTATE_TAG_PIT  "PIT "
#define DSTATE_TAG_UART "UART"

/* Counts every byte but stores only into buf; with buf NULL it just measures,
 * which is how the save functions find the size before writing anything. */
struct dstate_writer {
	uint8_t *buf;
	size_t len;
};

void dstate__put_u8(struct dstate_writer *w, uint8_t v);
void dstate__put_u16(struct dstate_writer *w, uint16_t v);
void dstate__put_u32(struct dstate_writer *w, uint32_t v);
void dstate__put_u64(struct dstate_writer *w, uint64_t v);
void dstate__put_bool(struct dstate_writer *w, bool v);
void dstate__put_bytes(struct dstate_writer *w, const void *p, size_t n);
void dstate__put_header(struct dstate_writer *w, const char tag[DSTATE_TAG_LEN], uint16_t version);

/* The first failure is kept (in err, prefixed with the device name, the
 * scope and the field) and makes every later get return 0, so decoders read
 * straight through and look at failed once at the end. */
struct dstate_reader {
	const uint8_t *buf;
	size_t len;
	size_t off;
	const char *dev;     /* "pic", "pit", "uart" */
	const char *scope;   /* e.g. "ch1" or "master", or NULL */
	char *err;
	size_t errlen;
	bool failed;
};

void dstate__reader_init(struct dstate_reader *r, const char *dev, const uint8_t *buf, size_t len,
			 char *err, size_t errlen);
void dstate__fail(struct dstate_reader *r, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
uint8_t dstate__get_u8(struct dstate_reader *r, const char *field);
uint16_t dstate__get_u16(struct dstate_reader *r, const char *field);
uint32_t dstate__get_u32(struct dstate_reader *r, const char *field);
uint64_t dstate__get_u64(struct dstate_reader *r, const char *field);
bool dstate__get_bool(struct dstate_reader *r, const char *field);
/* A u8 that must be <= max. */
uint8_t dstate__get_u8_max(struct dstate_reader *r, const char *field, uint8_t max);
void dstate__get_bytes(struct dstate_reader *r, const char *field, void *p, size_t n);
/* Checks the tag and that the version is the one this code writes. */
void dstate__get_header(struct dstate_reader *r, const char tag[DSTATE_TAG_LEN], uint16_t version);
/* Fails if bytes are left over; returns 0 on success, -1 on any failure. */
int dstate__finish(struct dstate_reader *r);

#endif
