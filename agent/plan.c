// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#define _GNU_SOURCE /* memmem */
#include "plan.h"

#include "files.h"
#include "protocol.h"
#include "requests.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Largest JSON header (MAX_HEADER_JSON of the record format). */
#define MAX_HEADER_JSON (16u << 20)

static int fail(const char *plan, const char *what, const char *detail)
{
	fprintf(stderr, "tlstap-agent: %s: %s%s%s\n", plan, what, detail ? ": " : "", detail ? detail : "");
	return 1;
}

/* A TCHK frame: the file must still be the one discovery looked into, or the offsets are wrong. */
static int check_file(const char *plan, const struct buf *b)
{
	struct buf st = { 0 };
	char path[PATH_MAX];
	if (b->len < 24 || b->len - 24 >= sizeof(path))
		return fail(plan, "a file check is malformed", NULL);
	memcpy(path, b->data + 24, b->len - 24);
	path[b->len - 24] = '\0';
	int err = files_stat(path, 0, &st);
	if (err) {
		buf_free(&st);
		return fail(plan, path, strerror(-err));
	}
	/* STAT result: size at 32, mtime at 40, inode at 24. */
	int same = get64(st.data + 32) == get64(b->data) && get64(st.data + 40) == get64(b->data + 8) &&
		   get64(st.data + 24) == get64(b->data + 16);
	buf_free(&st);
	if (!same)
		return fail(plan, path, "changed since the plan was made (size, mtime or inode); make the plan again");
	return 0;
}

/* Replaces the one occurrence of `key` in json by `value`; 0, or -1 if it is not there exactly once. */
static int fill(struct buf *json, const char *key, const char *value)
{
	size_t k = strlen(key), v = strlen(value);
	uint8_t *at = memmem(json->data, json->len, key, k);
	if (!at || memmem(at + k, json->len - (size_t)(at - json->data) - k, key, k))
		return -1;
	size_t head = (size_t)(at - json->data), tail = json->len - head - k;
	struct buf out = { 0 };
	buf_add(&out, json->data, head);
	buf_add(&out, value, v);
	buf_add(&out, at + k, tail);
	if (out.failed)
		return -1;
	buf_free(json);
	*json = out;
	return 0;
}

static int write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* The recording's prefix and JSON header, with the start time and the clock offset filled in. */
static int write_header(int fd, struct buf *json)
{
	struct timespec mono, real;
	struct tm tm;
	char created[96], offset[32];
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &real);
	gmtime_r(&real.tv_sec, &tm);
	snprintf(created, sizeof(created), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, real.tv_nsec / 1000000);
	int64_t wall = (int64_t)real.tv_sec * 1000000000 + real.tv_nsec;
	int64_t since_boot = (int64_t)mono.tv_sec * 1000000000 + mono.tv_nsec;
	snprintf(offset, sizeof(offset), "%" PRId64, wall - since_boot);
	if (fill(json, TLSTAP_AGENT_PLAN_CREATED_AT, created) || fill(json, TLSTAP_AGENT_PLAN_MONOTONIC_TO_WALL, offset))
		return -EINVAL;
	uint8_t prefix[20];
	memcpy(prefix, TLSTAP_AGENT_RECORD_MAGIC, 8);
	put32(prefix + 8, TLSTAP_AGENT_RECORD_VERSION);
	put32(prefix + 12, (uint32_t)json->len);
	put32(prefix + 16, crc32_update(0, json->data, json->len));
	int err = write_all(fd, prefix, sizeof(prefix));
	return err ? err : write_all(fd, json->data, json->len);
}

int plan_record(const char *plan, const char *record, unsigned long duration)
{
	struct buf frame = { 0 }, header = { 0 }, result = { 0 };
	uint8_t prefix[16];
	int status = 1;

	int in = open(plan, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return fail(plan, "cannot open", strerror(errno));
	if (read(in, prefix, sizeof(prefix)) != (ssize_t)sizeof(prefix) || memcmp(prefix, TLSTAP_AGENT_PLAN_MAGIC, 8) != 0) {
		close(in);
		return fail(plan, "not a tlstap plan", NULL);
	}
	if (get32(prefix + 8) != TLSTAP_AGENT_PLAN_VERSION) {
		close(in);
		return fail(plan, "a plan of another version; make it with the tlstap that pushed this agent", NULL);
	}

	/* Checks and requests run in the plan's order: the capture is set up before anything is written. */
	for (;;) {
		char mark[4];
		uint32_t field;
		const char *why = "";
		int r = frame_read(in, TLSTAP_AGENT_MAX_PAYLOAD, mark, &field, &frame, &why);
		if (r == 0)
			break;
		if (r < 0) {
			fail(plan, "damaged", r == -EPROTO ? why : strerror(-r));
			goto out;
		}
		if (memcmp(mark, TLSTAP_AGENT_MARK_PLAN_HEADER, 4) == 0) {
			if (header.len || frame.len == 0 || frame.len > MAX_HEADER_JSON) {
				fail(plan, "needs exactly one recording header", NULL);
				goto out;
			}
			buf_add(&header, frame.data, frame.len);
		} else if (memcmp(mark, TLSTAP_AGENT_MARK_PLAN_CHECK, 4) == 0) {
			if (check_file(plan, &frame))
				goto out;
		} else if (memcmp(mark, TLSTAP_AGENT_MARK_REQUEST, 4) == 0) {
			uint32_t op;
			int bye = 0;
			int ret = request_run(frame.data, frame.len, &result, &op, &bye);
			if (ret != 0) {
				char what[64];
				snprintf(what, sizeof(what), "request %u (op %u) failed", field, op);
				fail(plan, what, request_error(op, ret));
				goto out;
			}
		} else {
			fail(plan, "damaged", "unexpected frame marker");
			goto out;
		}
	}
	if (!header.len) {
		fail(plan, "needs exactly one recording header", NULL);
		goto out;
	}

	int fd = open(record, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		fail(record, "cannot create", errno == EEXIST ? "it exists; choose a new name" : strerror(errno));
		goto out;
	}
	fchmod(fd, 0600); /* the umask must not widen it: a recording holds passwords */
	int err = write_header(fd, &header);
	if (err) {
		fail(record, "cannot write the header", err == -EINVAL ? "the plan's header lacks its placeholders" : strerror(-err));
		close(fd);
		unlink(record);
		goto out;
	}
	ring_output(fd);

	struct timespec now, end;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += (time_t)duration;
	while (!agent_stop_signal) {
		int timeout = ring_timeout_ms() >= 0 ? ring_timeout_ms() : 200;
		if (duration) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			long left = (long)(end.tv_sec - now.tv_sec) * 1000 + (end.tv_nsec - now.tv_nsec) / 1000000;
			if (left <= 0)
				break;
			if (left < timeout)
				timeout = (int)left;
		}
		struct pollfd p = { ring_fd(), POLLIN, 0 };
		poll(&p, p.fd >= 0 ? 1 : 0, timeout);
		if ((err = ring_service()) != 0)
			break;
	}
	/* The last records, after every probe is gone, and the counters go in too. */
	int last = ring_finish();
	if (!err)
		err = last;
	requests_release();
	if (fsync(fd) != 0 && !err)
		err = -errno;
	struct stat st;
	fstat(fd, &st);
	close(fd);
	if (err) {
		fail(record, "writing failed", strerror(-err));
		goto out;
	}
	fprintf(stderr, "tlstap-agent: %s: %lld bytes recorded; `tlstap replay %s` reads it\n", record, (long long)st.st_size,
		record);
	status = 0;
out:
	close(in);
	buf_free(&frame);
	buf_free(&header);
	buf_free(&result);
	return status;
}
