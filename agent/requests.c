// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The requests of protocol.h: argument decoding, the file requests, the capture core, the record batches. */
#include "requests.h"

#include "embedded.h"
#include "files.h"
#include "protocol.h"
#include "tlstap.h"
#include "tlstap_core.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static struct tlstap_core *core;

/* What emit_record returns to end a consume call after a frame went out, so requests get their turn. */
#define STOP_CONSUMING (-ECANCELED)

/* Ring-buffer records wait here until they make a TFRM frame. */
static struct {
	struct buf batch;
	uint32_t count;
	uint32_t limit;
	int polling;
	int paused;
	int timeout_ms;
	int write_error; /* writing a frame failed: the front end or the file is gone */
	int read_error;  /* reading the ring buffer failed: STOP reports it */
	int out_fd;
} ring = { .out_fd = STDOUT_FILENO };

/* A cursor over a request's arguments; any read past the end sets bad. */
struct args {
	const uint8_t *p;
	size_t left;
	int bad;
};

static const uint8_t *take(struct args *a, size_t n)
{
	if (a->bad || a->left < n) {
		a->bad = 1;
		return NULL;
	}
	const uint8_t *at = a->p;
	a->p += n;
	a->left -= n;
	return at;
}

static uint32_t take32(struct args *a)
{
	const uint8_t *p = take(a, 4);
	return p ? get32(p) : 0;
}

static uint64_t take64(struct args *a)
{
	const uint8_t *p = take(a, 8);
	return p ? get64(p) : 0;
}

static uint16_t take16(struct args *a)
{
	const uint8_t *p = take(a, 2);
	return p ? get16(p) : 0;
}

static uint8_t take8(struct args *a)
{
	const uint8_t *p = take(a, 1);
	return p ? p[0] : 0;
}

/* n bytes as a NUL-terminated string in out (PATH_MAX bytes); a NUL inside is bad. */
static const char *take_str(struct args *a, size_t n, char *out)
{
	const uint8_t *p = take(a, n);
	if (!p || n >= PATH_MAX || memchr(p, 0, n)) {
		a->bad = 1;
		return "";
	}
	memcpy(out, p, n);
	out[n] = '\0';
	return out;
}

static const char *take_rest(struct args *a, char *out)
{
	return take_str(a, a->left, out);
}

static void flush_batch(void);

/* [u32 length][bytes] per record, as the addon's batches and a --record frame hold them. */
static int emit_record(void *ctx, const void *data, size_t size)
{
	(void)ctx;
	buf_add32(&ring.batch, (uint32_t)size);
	buf_add(&ring.batch, data, size);
	ring.count++;
	if (ring.batch.len < ring.limit)
		return 0;
	flush_batch();
	return ring.write_error ? ring.write_error : STOP_CONSUMING;
}

static void flush_batch(void)
{
	if (ring.count == 0)
		return;
	if (ring.batch.failed)
		ring.write_error = -ENOMEM;
	else if (!ring.write_error)
		ring.write_error =
			frame_write(ring.out_fd, TLSTAP_AGENT_MARK_RECORDS, ring.count, ring.batch.data, ring.batch.len);
	ring.batch.len = 0;
	ring.batch.failed = 0;
	ring.count = 0;
}

/* Hands over the records that wait: one consume call (at most one full batch), then what is in the batch. */
static int consume_once(void)
{
	int n = tlstap_core_consume(core);
	if (n < 0 && n != STOP_CONSUMING && !ring.write_error && !ring.read_error)
		ring.read_error = n;
	flush_batch();
	return n;
}

/* Every record the kernel wrote so far. */
static void drain_ring(void)
{
	while (ring.polling && !ring.write_error && !ring.read_error && consume_once() != 0)
		;
}

static int need_core(void)
{
	if (core)
		return 0;
	int ret = tlstap_core_open_mem(&core, tlstap_bpf_object, tlstap_bpf_object_size(), "tlstap", NULL);
	if (ret)
		core = NULL;
	return ret;
}

static void hello(struct buf *out)
{
	struct utsname u;
	char host[HOST_NAME_MAX + 1] = "";
	uint32_t crc = 0;
	uint64_t size = 0;

	/* The front end checks this against the binary it pushed: the agent that answers is that one. */
	FILE *self = fopen("/proc/self/exe", "rb");
	if (self) {
		uint8_t chunk[65536];
		size_t n;
		while ((n = fread(chunk, 1, sizeof(chunk), self)) > 0) {
			crc = crc32_update(crc, chunk, n);
			size += n;
		}
		fclose(self);
	}
	if (uname(&u) != 0)
		memset(&u, 0, sizeof(u));
	gethostname(host, sizeof(host) - 1);
	char numbers[160];
	buf_add32(out, TLSTAP_AGENT_PROTOCOL);
	buf_add(out, "{\"agent\":", 9);
	buf_add_json_string(out, TLSTAP_AGENT_VERSION);
	snprintf(numbers, sizeof(numbers), ",\"protocol\":%d,\"pid\":%d,\"selfCrc32\":%u,\"selfSize\":%llu,\"core\":true",
		 TLSTAP_AGENT_PROTOCOL, (int)getpid(), crc, (unsigned long long)size);
	buf_add(out, numbers, strlen(numbers));
	buf_add(out, ",\"machine\":", 11);
	buf_add_json_string(out, u.machine);
	buf_add(out, ",\"kernel\":", 10);
	buf_add_json_string(out, u.release);
	buf_add(out, ",\"hostname\":", 12);
	buf_add_json_string(out, host);
	buf_add(out, ",\"root\":", 8);
	buf_add_json_string(out, files_root());
	buf_add(out, "}", 1);
}

static int link_index(int ret, struct buf *out)
{
	if (ret >= 0)
		buf_add32(out, (uint32_t)ret);
	return ret < 0 ? ret : 0;
}

/* Runs one request; the result goes to out. Returns 0 or a negative errno (-EBADMSG: bad arguments). */
static int dispatch(uint32_t op, struct args *a, struct buf *out, int *bye)
{
	char s1[PATH_MAX], s2[PATH_MAX], s3[PATH_MAX];
	int ret;

	switch (op) {
	case TLSTAP_AGENT_OP_HELLO:
		if (take32(a) != TLSTAP_AGENT_PROTOCOL || a->bad)
			return -EPROTONOSUPPORT;
		hello(out);
		return 0;
	case TLSTAP_AGENT_OP_STAT: {
		uint32_t flags = take32(a);
		const char *path = take_rest(a, s1);
		return a->bad ? -EBADMSG : files_stat(path, flags, out);
	}
	case TLSTAP_AGENT_OP_PREAD: {
		uint64_t offset = take64(a);
		uint32_t length = take32(a);
		const char *path = take_rest(a, s1);
		return a->bad ? -EBADMSG : files_pread(path, offset, length, out);
	}
	case TLSTAP_AGENT_OP_READDIR: {
		const char *path = take_rest(a, s1);
		return a->bad ? -EBADMSG : files_readdir(path, out);
	}
	case TLSTAP_AGENT_OP_READLINK: {
		const char *path = take_rest(a, s1);
		return a->bad ? -EBADMSG : files_readlink(path, out);
	}
	case TLSTAP_AGENT_OP_READFILE: {
		uint32_t max = take32(a);
		const char *path = take_rest(a, s1);
		return a->bad ? -EBADMSG : files_readfile(path, max, out);
	}
	case TLSTAP_AGENT_OP_CLOCK: {
		/* The records' timestamps are the device's monotonic clock: this ties them to its wall clock. */
		struct timespec mono, real;
		clock_gettime(CLOCK_MONOTONIC, &mono);
		clock_gettime(CLOCK_REALTIME, &real);
		buf_add64(out, (uint64_t)mono.tv_sec * 1000000000u + (uint64_t)mono.tv_nsec);
		buf_add64(out, (uint64_t)real.tv_sec * 1000000000u + (uint64_t)real.tv_nsec);
		return 0;
	}
	case TLSTAP_AGENT_OP_BYE:
		*bye = 1;
		return 0;
	default:
		break;
	}

	/* The rest is capture: each request's arguments are checked, then the core serves it. */
	if (op < TLSTAP_AGENT_OP_SET_GLOBAL || op > TLSTAP_AGENT_OP_UPDATE_ELEM)
		return -EOPNOTSUPP;
#define NEED_CORE()                                   \
	do {                                          \
		if (a->bad)                           \
			return -EBADMSG;              \
		if ((ret = need_core()) != 0)         \
			return ret;                   \
	} while (0)
	switch (op) {
	case TLSTAP_AGENT_OP_SET_GLOBAL: {
		const char *section = take_str(a, take16(a), s1);
		const char *name = take_str(a, take16(a), s2);
		NEED_CORE();
		return tlstap_core_set_global(core, section, name, a->p, a->left);
	}
	case TLSTAP_AGENT_OP_SET_MAP_MAX: {
		uint32_t entries = take32(a);
		const char *map = take_rest(a, s1);
		NEED_CORE();
		return tlstap_core_set_map_max_entries(core, map, entries);
	}
	case TLSTAP_AGENT_OP_SET_AUTOLOAD: {
		int autoload = take8(a);
		take8(a);
		const char *prog = take_rest(a, s1);
		NEED_CORE();
		return tlstap_core_set_autoload(core, prog, autoload);
	}
	case TLSTAP_AGENT_OP_UPDATE_ELEM: {
		const char *map = take_str(a, take16(a), s1);
		uint32_t key_size = take32(a);
		const uint8_t *key = take(a, key_size);
		NEED_CORE();
		return tlstap_core_update_map_elem(core, map, key, key_size, a->p, a->left);
	}
	case TLSTAP_AGENT_OP_USE_MULTI: {
		const char *prog = take_rest(a, s1);
		NEED_CORE();
		return tlstap_core_use_uprobe_multi(core, prog);
	}
	case TLSTAP_AGENT_OP_LOAD:
		NEED_CORE();
		return tlstap_core_load(core);
	case TLSTAP_AGENT_OP_ATTACH_UPROBE: {
		uint64_t offset = take64(a), cookie = take64(a);
		int pid = (int)take32(a);
		int ret_probe = take8(a);
		take8(a);
		const char *prog = take_str(a, take16(a), s1);
		const char *path = take_rest(a, s2);
		NEED_CORE();
		return link_index(tlstap_core_attach_uprobe(core, prog, path, offset, pid, ret_probe, cookie), out);
	}
	case TLSTAP_AGENT_OP_ATTACH_MULTI: {
		uint32_t count = take32(a);
		int pid = (int)take32(a);
		int ret_probe = take8(a);
		take8(a);
		const char *prog = take_str(a, take16(a), s1);
		if (a->bad || count == 0 || count > a->left / 16)
			return -EBADMSG;
		/* The arrays are copied: the payload gives no alignment. */
		uint64_t *values = malloc((size_t)count * 16);
		if (!values)
			return -ENOMEM;
		for (uint32_t i = 0; i < 2 * count; i++)
			values[i] = take64(a);
		const char *path = take_rest(a, s2);
		if (a->bad || (ret = need_core()) != 0) {
			free(values);
			return a->bad ? -EBADMSG : ret;
		}
		ret = link_index(tlstap_core_attach_uprobe_multi(core, prog, path, values, values + count, count, pid,
								 ret_probe),
				 out);
		free(values);
		return ret;
	}
	case TLSTAP_AGENT_OP_ATTACH_TP: {
		const char *prog = take_str(a, take16(a), s1);
		const char *category = take_str(a, take16(a), s2);
		const char *name = take_rest(a, s3);
		NEED_CORE();
		return link_index(tlstap_core_attach_tracepoint(core, prog, category, name), out);
	}
	case TLSTAP_AGENT_OP_START: {
		uint32_t batch_bytes = take32(a), timeout_ms = take32(a);
		const char *map = take_rest(a, s1);
		if (batch_bytes == 0 || batch_bytes > TLSTAP_AGENT_MAX_PAYLOAD / 2 || timeout_ms > 60000)
			a->bad = 1;
		NEED_CORE();
		if (ring.polling)
			return -EBUSY;
		if ((ret = tlstap_core_ring_open(core, map, emit_record, NULL)) != 0)
			return ret;
		ring.limit = batch_bytes;
		ring.timeout_ms = (int)timeout_ms;
		ring.polling = 1;
		return 0;
	}
	case TLSTAP_AGENT_OP_PAUSE:
		ring.paused = take8(a);
		NEED_CORE();
		return 0;
	case TLSTAP_AGENT_OP_COUNTERS: {
		uint64_t sums[64];
		const char *map = take_rest(a, s1);
		NEED_CORE();
		ret = tlstap_core_sum_percpu(core, map, sums, 64);
		for (int i = 0; i < ret; i++)
			buf_add64(out, sums[i]);
		return ret < 0 ? ret : 0;
	}
	case TLSTAP_AGENT_OP_DETACH:
		NEED_CORE();
		return tlstap_core_detach_all(core);
	case TLSTAP_AGENT_OP_STOP:
		NEED_CORE();
		/* Every record the kernel wrote before this goes out ahead of the response. */
		drain_ring();
		ring.polling = 0;
		return ring.write_error ? ring.write_error : ring.read_error;
	default:
		return -EOPNOTSUPP;
	}
#undef NEED_CORE
}

int request_run(const uint8_t *payload, size_t len, struct buf *out, uint32_t *op, int *bye)
{
	struct args a = { payload, len, 0 };
	*op = take32(&a);
	out->len = 0;
	out->failed = 0;
	int ret = a.bad ? -EBADMSG : dispatch(*op, &a, out, bye);
	return out->failed ? -ENOMEM : ret;
}

/* The core's message, with libbpf's last lines (the verifier's, after a failed load). */
static const char *core_error(void)
{
	static char message[2048];
	char log[1024];
	size_t n = tlstap_core_log(log, sizeof(log));
	snprintf(message, sizeof(message), "%s%s%s", tlstap_core_error(core), n ? "; libbpf: " : "", log);
	return message;
}

const char *request_error(uint32_t op, int status)
{
	if (status == -EBADMSG)
		return "malformed request arguments";
	if (status == -EOPNOTSUPP)
		return "unknown request";
	if (status == -EPROTONOSUPPORT)
		return "the front end speaks another agent protocol version";
	if (op == TLSTAP_AGENT_OP_STOP && status == ring.read_error)
		return "reading the ring buffer failed";
	if (op == TLSTAP_AGENT_OP_STOP && status == ring.write_error)
		return "writing a record frame failed";
	if (op >= TLSTAP_AGENT_OP_SET_GLOBAL && op < TLSTAP_AGENT_OP_BYE && status != -ENOMEM)
		return core_error();
	return strerror(-status);
}

void ring_output(int fd)
{
	ring.out_fd = fd;
}

int ring_fd(void)
{
	return ring.polling && !ring.paused ? tlstap_core_ring_fd(core) : -1;
}

int ring_timeout_ms(void)
{
	return ring.polling ? ring.timeout_ms : -1;
}

int ring_service(void)
{
	if (ring.polling && !ring.paused && !ring.write_error && !ring.read_error)
		consume_once();
	return ring.write_error;
}

int ring_finish(void)
{
	tlstap_core_detach_all(core);
	ring.paused = 0;
	drain_ring();
	uint64_t sums[TLSTAP_CTR__COUNT];
	if (ring.polling && !ring.write_error &&
	    tlstap_core_sum_percpu(core, "counters", sums, TLSTAP_CTR__COUNT) == TLSTAP_CTR__COUNT) {
		struct tlstap_counters_event ev;
		struct timespec now;
		memset(&ev, 0, sizeof(ev));
		clock_gettime(CLOCK_MONOTONIC, &now);
		ev.h.ts_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
		ev.h.kind = TLSTAP_EVENT_COUNTERS;
		memcpy(ev.values, sums, sizeof(ev.values));
		emit_record(NULL, &ev, sizeof(ev));
		flush_batch();
	}
	ring.polling = 0;
	return ring.write_error ? ring.write_error : ring.read_error;
}

void requests_release(void)
{
	/* No probe outlives the agent: links first, then the ring buffer and the object. */
	tlstap_core_detach_all(core);
	ring.polling = 0;
	tlstap_core_close(core);
	core = NULL;
	buf_free(&ring.batch);
}
