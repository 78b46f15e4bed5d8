/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Framing of the agent protocol (protocol.h): CRC32, little-endian fields, frames on fds, buffers. */
#ifndef TLSTAP_AGENT_WIRE_H
#define TLSTAP_AGENT_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer; a failed allocation sets failed and later appends do nothing. */
struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	int failed;
};

uint32_t crc32_update(uint32_t crc, const void *data, size_t len);

static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static inline uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }
static inline void put32(uint8_t *p, uint32_t v) { p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24; }

/* Makes room for n more bytes and returns where they go, or NULL. */
uint8_t *buf_grow(struct buf *b, size_t n);
void buf_add(struct buf *b, const void *data, size_t n);
void buf_add16(struct buf *b, uint16_t v);
void buf_add32(struct buf *b, uint32_t v);
void buf_add64(struct buf *b, uint64_t v);
/* Appends a JSON string literal (quoted, escaped). */
void buf_add_json_string(struct buf *b, const char *s);
void buf_free(struct buf *b);

/* Writes a whole frame; returns 0 or a negative errno (-EPIPE when the reader is gone). */
int frame_write(int fd, const char mark[4], uint32_t field, const void *payload, size_t len);

/*
 * Reads one frame into b (payload only) and its marker into mark: 1 on a frame, 0 at a clean end of
 * input (nothing of a next frame read), or a negative errno; -EPROTO for a length over max_payload or
 * a bad CRC, with *why saying which. The caller checks the marker.
 */
int frame_read(int fd, uint32_t max_payload, char mark[4], uint32_t *field, struct buf *b, const char **why);

#endif
