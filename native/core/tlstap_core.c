// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The capture core (tlstap_core.h): open, settings, load, attach, ring buffer, counters, close. */
#include "core_internal.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/bpf.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * uprobe_multi links (kernel 6.6+) attach many offsets of one file with one link, and detach with
 * one RCU wait instead of one per probe. Debian's libbpf 1.1 and UAPI headers predate them, so the
 * values come from the kernel's UAPI (enum bpf_attach_type, union bpf_attr).
 */
#define ATTACH_UPROBE_MULTI 48 /* BPF_TRACE_UPROBE_MULTI */
#define UPROBE_MULTI_RETURN 1  /* BPF_F_UPROBE_MULTI_RETURN */
#define LINK_CREATE_UNION 16   /* link_create: prog_fd, target_fd, attach_type, flags */
#define BPF_ATTR_SIZE 128
/* Most keys a per-CPU array may have for tlstap_core_sum_percpu's scratch space. */
#define MAX_CPUS 8192

/* The failure of an open, when there is no core to hold it. */
static struct core_error open_error;

/* Records a failure; returns -err (err is a positive or negative errno). */
static int fail(struct core_error *e, const char *op, int err, const char *format, ...)
{
	int code = err < 0 ? -err : err;
	char text[128];
	va_list args;

	e->op = op;
	va_start(args, format);
	vsnprintf(e->context, sizeof(e->context), format, args);
	va_end(args);
	/* libbpf's own codes (LIBBPF_ERRNO__FORMAT and the like, 4000 and up) have no strerror() text. */
	if (libbpf_strerror(code, text, sizeof(text)) != 0)
		snprintf(text, sizeof(text), "%s", strerror(code));
	snprintf(e->message, sizeof(e->message), "%s failed: %s%s%s%s", op, text, e->context[0] ? " (" : "", e->context,
		 e->context[0] ? ")" : "");
	return -code;
}

/* libbpf's calls return a negative errno, or -1 and set errno (before 1.0). */
static int errno_of(int ret)
{
	if (ret < 0 && ret != -1)
		return -ret;
	return errno ? errno : EINVAL;
}

/*
 * libbpf finds tracepoint ids in tracefs: mounts it at /sys/kernel/tracing where neither it nor
 * debugfs's tracing directory is there (a device's kernel may not mount it at boot). A failure
 * shows later, as the tracepoint attach's.
 */
static void ensure_tracefs(void)
{
	if (access("/sys/kernel/tracing/events", F_OK) == 0 || access("/sys/kernel/debug/tracing/events", F_OK) == 0)
		return;
	mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL);
}

static int opened(struct tlstap_core **out, struct bpf_object *obj, const char *name)
{
	*out = NULL;
	ensure_tracefs();
	/* libbpf before 1.0 returns an error pointer rather than NULL. */
	if (libbpf_get_error(obj) || !obj)
		return fail(&open_error, "bpf_object__open", errno, "%s", name);
	struct tlstap_core *c = calloc(1, sizeof(*c));
	if (!c) {
		bpf_object__close(obj);
		return fail(&open_error, "bpf_object__open", ENOMEM, "%s", name);
	}
	c->obj = obj;
	*out = c;
	return 0;
}

int tlstap_core_open_file(struct tlstap_core **out, const char *path, const char *btf_path)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .btf_custom_path = btf_path);
	tlstap_core_log_clear();
	errno = 0;
	struct bpf_object *obj = bpf_object__open_file(path, &opts);
	int ret = opened(out, obj, path);
	if (ret)
		open_error.op = "bpf_object__open_file";
	return ret;
}

int tlstap_core_open_mem(struct tlstap_core **out, const void *object, size_t size, const char *name,
			 const char *btf_path)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name, .btf_custom_path = btf_path);
	tlstap_core_log_clear();
	errno = 0;
	struct bpf_object *obj = bpf_object__open_mem(object, size, &opts);
	int ret = opened(out, obj, name);
	if (ret)
		open_error.op = "bpf_object__open_mem";
	return ret;
}

/* Refuses calls on a closed core. */
#define REQUIRE_OPEN(c, op)                                                 \
	do {                                                                \
		if (!(c) || !(c)->obj)                                      \
			return fail(c ? &c->error : &open_error, op, EBADF, "the session is closed"); \
	} while (0)

static struct bpf_program *find_program(struct tlstap_core *c, const char *op, const char *name)
{
	struct bpf_program *prog = bpf_object__find_program_by_name(c->obj, name);
	if (!prog)
		fail(&c->error, op, ENOENT, "no program %s", name);
	return prog;
}

static struct bpf_map *find_map(struct tlstap_core *c, const char *op, const char *name)
{
	struct bpf_map *map = bpf_object__find_map_by_name(c->obj, name);
	if (!map)
		fail(&c->error, op, ENOENT, "no map %s", name);
	return map;
}

/* Where a global of a data section (.rodata/.data/.bss) lives, from the object's BTF. */
static int find_global(struct bpf_object *obj, const char *section, const char *name, uint32_t *offset, uint32_t *size)
{
	struct btf *btf = bpf_object__btf(obj);
	if (!btf)
		return 0;
	int sec_id = btf__find_by_name_kind(btf, section, BTF_KIND_DATASEC);
	if (sec_id < 0)
		return 0;
	const struct btf_type *sec = btf__type_by_id(btf, sec_id);
	const struct btf_var_secinfo *vars = btf_var_secinfos(sec);
	for (int i = 0; i < btf_vlen(sec); i++) {
		const struct btf_type *var = btf__type_by_id(btf, vars[i].type);
		if (strcmp(name, btf__name_by_offset(btf, var->name_off)) == 0) {
			*offset = vars[i].offset;
			*size = vars[i].size;
			return 1;
		}
	}
	return 0;
}

int tlstap_core_set_global(struct tlstap_core *c, const char *section, const char *name, const void *value, size_t size)
{
	uint32_t offset = 0, want = 0;
	size_t map_size = 0;

	REQUIRE_OPEN(c, "setGlobal");
	if (c->loaded)
		return fail(&c->error, "setGlobal", EBUSY, "%s: settings must be written before load", name);
	struct bpf_map *map = bpf_object__find_map_by_name(c->obj, section);
	if (!map || !find_global(c->obj, section, name, &offset, &want))
		return fail(&c->error, "setGlobal", ENOENT, "no global %s in %s", name, section);
	if (size != want)
		return fail(&c->error, "setGlobal", EINVAL, "%s is %u bytes, got %zu", name, want, size);
	/* Before load, libbpf keeps the section's initial image in writable memory. */
	uint8_t *image = (uint8_t *)bpf_map__initial_value(map, &map_size);
	if (!image || offset + want > map_size)
		return fail(&c->error, "setGlobal", EINVAL, "initial image of %s is unavailable", section);
	memcpy(image + offset, value, want);
	return 0;
}

int tlstap_core_set_map_max_entries(struct tlstap_core *c, const char *name, uint32_t entries)
{
	REQUIRE_OPEN(c, "setMapMaxEntries");
	struct bpf_map *map = find_map(c, "setMapMaxEntries", name);
	if (!map)
		return -ENOENT;
	int ret = bpf_map__set_max_entries(map, entries);
	return ret ? fail(&c->error, "bpf_map__set_max_entries", errno_of(ret), "%s", name) : 0;
}

int tlstap_core_set_autoload(struct tlstap_core *c, const char *name, int autoload)
{
	REQUIRE_OPEN(c, "setAutoload");
	struct bpf_program *prog = find_program(c, "setAutoload", name);
	if (!prog)
		return -ENOENT;
	int ret = bpf_program__set_autoload(prog, autoload != 0);
	return ret ? fail(&c->error, "bpf_program__set_autoload", errno_of(ret), "%s", name) : 0;
}

int tlstap_core_use_uprobe_multi(struct tlstap_core *c, const char *name)
{
	REQUIRE_OPEN(c, "useUprobeMulti");
	struct bpf_program *prog = find_program(c, "useUprobeMulti", name);
	if (!prog)
		return -ENOENT;
	int ret = bpf_program__set_expected_attach_type(prog, (enum bpf_attach_type)ATTACH_UPROBE_MULTI);
	return ret ? fail(&c->error, "bpf_program__set_expected_attach_type", errno_of(ret), "%s", name) : 0;
}

int tlstap_core_load(struct tlstap_core *c)
{
	REQUIRE_OPEN(c, "load");
	tlstap_core_log_clear();
	int ret = bpf_object__load(c->obj);
	if (ret)
		return fail(&c->error, "bpf_object__load", errno_of(ret), "");
	c->loaded = 1;
	return 0;
}

int tlstap_core_update_map_elem(struct tlstap_core *c, const char *name, const void *key, size_t key_size,
				const void *value, size_t value_size)
{
	REQUIRE_OPEN(c, "updateMapElem");
	struct bpf_map *map = find_map(c, "updateMapElem", name);
	if (!map)
		return -ENOENT;
	int ret = bpf_map__update_elem(map, key, key_size, value, value_size, BPF_ANY);
	return ret ? fail(&c->error, "bpf_map__update_elem", errno_of(ret), "%s", name) : 0;
}

/* Keeps a link; returns its index. */
static int add_link(struct tlstap_core *c, struct bpf_link *link, int fd)
{
	if (c->nlinks == c->links_cap) {
		size_t cap = c->links_cap ? c->links_cap * 2 : 64;
		struct core_link *more = realloc(c->links, cap * sizeof(*more));
		if (!more) {
			if (link)
				bpf_link__destroy(link);
			else
				close(fd);
			return fail(&c->error, "attach", ENOMEM, "");
		}
		c->links = more;
		c->links_cap = cap;
	}
	c->links[c->nlinks] = (struct core_link){ link, fd };
	return (int)c->nlinks++;
}

int tlstap_core_attach_uprobe(struct tlstap_core *c, const char *name, const char *path, uint64_t offset, int pid,
			      int retprobe, uint64_t cookie)
{
	REQUIRE_OPEN(c, "attachUprobe");
	struct bpf_program *prog = find_program(c, "attachUprobe", name);
	if (!prog)
		return -ENOENT;
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = cookie, .retprobe = retprobe != 0);
	tlstap_core_log_clear();
	errno = 0;
	struct bpf_link *link = bpf_program__attach_uprobe_opts(prog, pid, path, (size_t)offset, &opts);
	if (libbpf_get_error(link) || !link)
		return fail(&c->error, retprobe ? "attach uretprobe" : "attach uprobe", errno ? errno : EINVAL,
			    "%s+0x%" PRIx64, path, offset);
	return add_link(c, link, -1);
}

/* A uprobe_multi link through bpf(BPF_LINK_CREATE): one fd for every offset. */
static int create_uprobe_multi_link(int prog_fd, const char *path, const uint64_t *offsets, const uint64_t *cookies,
				    uint32_t count, int retprobe, int pid)
{
	_Alignas(8) uint8_t attr[BPF_ATTR_SIZE] = { 0 };
	uint32_t u32;
	uint64_t u64;
#define PUT32(at, v) (u32 = (uint32_t)(v), memcpy(attr + (at), &u32, 4))
#define PUT64(at, v) (u64 = (uint64_t)(v), memcpy(attr + (at), &u64, 8))
	PUT32(0, prog_fd);
	PUT32(8, ATTACH_UPROBE_MULTI);
	/* uprobe_multi { path, offsets, ref_ctr_offsets, cookies, cnt, flags, pid } */
	PUT64(LINK_CREATE_UNION + 0, (uintptr_t)path);
	PUT64(LINK_CREATE_UNION + 8, (uintptr_t)offsets);
	PUT64(LINK_CREATE_UNION + 24, (uintptr_t)cookies);
	PUT32(LINK_CREATE_UNION + 32, count);
	PUT32(LINK_CREATE_UNION + 36, retprobe ? UPROBE_MULTI_RETURN : 0);
	PUT32(LINK_CREATE_UNION + 40, pid > 0 ? pid : 0);
#undef PUT32
#undef PUT64
	int fd = (int)syscall(__NR_bpf, BPF_LINK_CREATE, attr, sizeof(attr));
	return fd < 0 ? -errno : fd;
}

int tlstap_core_attach_uprobe_multi(struct tlstap_core *c, const char *name, const char *path, const uint64_t *offsets,
				    const uint64_t *cookies, uint32_t count, int pid, int retprobe)
{
	REQUIRE_OPEN(c, "attachUprobeMulti");
	struct bpf_program *prog = find_program(c, "attachUprobeMulti", name);
	if (!prog)
		return -ENOENT;
	if (count == 0)
		return fail(&c->error, "attachUprobeMulti", EINVAL, "offsets and cookies must be non-empty and of one length");
	int fd = create_uprobe_multi_link(bpf_program__fd(prog), path, offsets, cookies, count, retprobe, pid);
	if (fd < 0)
		return fail(&c->error, retprobe ? "attach uretprobe.multi" : "attach uprobe.multi", fd, "%s", path);
	return add_link(c, NULL, fd);
}

int tlstap_core_attach_tracepoint(struct tlstap_core *c, const char *name, const char *category, const char *event)
{
	REQUIRE_OPEN(c, "attachTracepoint");
	struct bpf_program *prog = find_program(c, "attachTracepoint", name);
	if (!prog)
		return -ENOENT;
	tlstap_core_log_clear();
	errno = 0;
	struct bpf_link *link = bpf_program__attach_tracepoint(prog, category, event);
	if (libbpf_get_error(link) || !link)
		return fail(&c->error, "attach tracepoint", errno ? errno : EINVAL, "%s:%s", category, event);
	return add_link(c, link, -1);
}

static int on_sample(void *ctx, void *data, size_t size)
{
	struct tlstap_core *c = ctx;
	return c->record_fn(c->record_ctx, data, size);
}

int tlstap_core_ring_open(struct tlstap_core *c, const char *name, tlstap_core_record_fn fn, void *ctx)
{
	REQUIRE_OPEN(c, "startPolling");
	if (!c->loaded || c->ring)
		return fail(&c->error, "startPolling", EBUSY, "%s", !c->loaded ? "load first" : "a session polls its ring buffer once");
	struct bpf_map *map = find_map(c, "startPolling", name);
	if (!map)
		return -ENOENT;
	c->record_fn = fn;
	c->record_ctx = ctx;
	errno = 0;
	c->ring = ring_buffer__new(bpf_map__fd(map), on_sample, c, NULL);
	if (libbpf_get_error(c->ring) || !c->ring) {
		c->ring = NULL;
		return fail(&c->error, "ring_buffer__new", errno ? errno : EINVAL, "%s", name);
	}
	return 0;
}

int tlstap_core_ring_fd(struct tlstap_core *c)
{
	return c && c->ring ? ring_buffer__epoll_fd(c->ring) : -EBADF;
}

int tlstap_core_poll(struct tlstap_core *c, int timeout_ms)
{
	return c && c->ring ? ring_buffer__poll(c->ring, timeout_ms) : -EBADF;
}

int tlstap_core_consume(struct tlstap_core *c)
{
	return c && c->ring ? ring_buffer__consume(c->ring) : -EBADF;
}

int tlstap_core_sum_percpu(struct tlstap_core *c, const char *name, uint64_t *sums, size_t max)
{
	REQUIRE_OPEN(c, "sumPercpuArray");
	struct bpf_map *map = bpf_object__find_map_by_name(c->obj, name);
	if (!map || bpf_map__type(map) != BPF_MAP_TYPE_PERCPU_ARRAY || bpf_map__value_size(map) != 8)
		return fail(&c->error, "sumPercpuArray", EINVAL, "%s is not a per-CPU array of u64", name);
	int cpus = libbpf_num_possible_cpus();
	if (cpus <= 0 || cpus > MAX_CPUS)
		return fail(&c->error, "libbpf_num_possible_cpus", cpus <= 0 ? cpus : E2BIG, "");
	uint32_t keys = bpf_map__max_entries(map);
	if (keys > max)
		return fail(&c->error, "sumPercpuArray", ENOSPC, "%s has %u keys, room for %zu", name, keys, max);
	uint64_t *values = calloc((size_t)cpus, sizeof(*values));
	if (!values)
		return fail(&c->error, "sumPercpuArray", ENOMEM, "%s", name);
	for (uint32_t key = 0; key < keys; key++) {
		int ret = bpf_map__lookup_elem(map, &key, sizeof(key), values, (size_t)cpus * 8, 0);
		if (ret) {
			free(values);
			return fail(&c->error, "bpf_map__lookup_elem", errno_of(ret), "%s", name);
		}
		sums[key] = 0;
		for (int i = 0; i < cpus; i++)
			sums[key] += values[i];
	}
	free(values);
	return (int)keys;
}

void tlstap_core_close(struct tlstap_core *c)
{
	if (!c)
		return;
	/* Reverse order of acquisition: links, ring buffer, object. */
	tlstap_core_detach_all(c);
	free(c->links);
	if (c->ring)
		ring_buffer__free(c->ring);
	if (c->obj)
		bpf_object__close(c->obj);
	free(c);
}

const char *tlstap_core_error(const struct tlstap_core *c)
{
	return c ? c->error.message : open_error.message;
}

const char *tlstap_core_error_op(const struct tlstap_core *c)
{
	const char *op = c ? c->error.op : open_error.op;
	return op ? op : "";
}

const char *tlstap_core_error_context(const struct tlstap_core *c)
{
	return c ? c->error.context : open_error.context;
}
