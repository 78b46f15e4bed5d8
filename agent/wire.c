// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "wire.h"

#include "plan.h"
#include "protocol.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

uint32_t crc32_update(uint32_t crc, const void *data, size_t len)
{
	static uint32_t table[256];
	const uint8_t *p = data;

	if (!table[1]) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
			table[i] = c;
		}
	}
	crc = ~crc;
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

uint8_t *buf_grow(struct buf *b, size_t n)
{
	if (b->failed)
		return NULL;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *p = realloc(b->data, cap);
		if (!p) {
			b->failed = 1;
			return NULL;
		}
		b->data = p;
		b->cap = cap;
	}
	uint8_t *at = b->data + b->len;
	b->len += n;
	return at;
}

void buf_add(struct buf *b, const void *data, size_t n)
{
	uint8_t *at = buf_grow(b, n);
	if (at && n)
		memcpy(at, data, n);
}

void buf_add16(struct buf *b, uint16_t v)
{
	uint8_t bytes[2] = { v & 0xff, v >> 8 };
	buf_add(b, bytes, 2);
}

void buf_add32(struct buf *b, uint32_t v)
{
	uint8_t bytes[4];
	put32(bytes, v);
	buf_add(b, bytes, 4);
}

void buf_add64(struct buf *b, uint64_t v)
{
	buf_add32(b, (uint32_t)v);
	buf_add32(b, (uint32_t)(v >> 32));
}

void buf_add_json_string(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	buf_add(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			buf_add(b, esc, 2);
		} else if (c < 0x20) {
			char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			buf_add(b, esc, 6);
		} else {
			buf_add(b, &c, 1);
		}
	}
	buf_add(b, "\"", 1);
}

void buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

int frame_write(int fd, const char mark[4], uint32_t field, const void *payload, size_t len)
{
	uint8_t head[TLSTAP_AGENT_FRAME_HEADER];
	memcpy(head, mark, 4);
	put32(head + 4, (uint32_t)len);
	put32(head + 8, field);
	put32(head + 12, crc32_update(crc32_update(0, head + 4, 8), payload, len));

	struct iovec iov[2] = { { head, sizeof(head) }, { (void *)payload, len } };
	int n = len ? 2 : 1;
	while (n > 0) {
		ssize_t w = writev(fd, iov + (2 - n), n);
		if (w < 0) {
			/* A stop signal ends a write the reader does not take (SIGTERM must not wait for it). */
			if (errno == EINTR && !agent_stop_signal)
				continue;
			return -errno;
		}
		/* A short write goes on where it stopped, so a frame is never torn. */
		for (struct iovec *v = iov + (2 - n); n > 0 && (size_t)w >= v->iov_len; v++, n--)
			w -= (ssize_t)v->iov_len;
		if (n > 0) {
			struct iovec *v = iov + (2 - n);
			v->iov_base = (uint8_t *)v->iov_base + w;
			v->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Reads exactly n bytes: n, 0 at end of input before any byte, or a negative errno (-EPIPE for a cut). */
static ssize_t read_full(int fd, uint8_t *p, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = read(fd, p + done, n - done);
		if (r < 0) {
			if (errno == EINTR && !agent_stop_signal)
				continue;
			return -errno;
		}
		if (r == 0)
			return done == 0 ? 0 : -EPIPE;
		done += (size_t)r;
	}
	return (ssize_t)n;
}

int frame_read(int fd, uint32_t max_payload, char mark[4], uint32_t *field, struct buf *b, const char **why)
{
	uint8_t head[TLSTAP_AGENT_FRAME_HEADER];
	ssize_t r = read_full(fd, head, sizeof(head));
	if (r <= 0)
		return (int)r;
	memcpy(mark, head, 4);
	uint32_t len = get32(head + 4);
	if (len > max_payload) {
		*why = "frame payload too large";
		return -EPROTO;
	}
	b->len = 0;
	uint8_t *at = buf_grow(b, len);
	if (!at && len)
		return -ENOMEM;
	r = read_full(fd, at, len);
	if (r < 0)
		return (int)r;
	if (r == 0 && len)
		return -EPIPE;
	if (crc32_update(crc32_update(0, head + 4, 8), at, len) != get32(head + 12)) {
		*why = "frame CRC mismatch";
		return -EPROTO;
	}
	*field = get32(head + 8);
	return 1;
}
