/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The native capture core: the one C copy of load/attach/poll over libbpf, with no N-API and no
 * threads of its own beyond the short-lived ones of a parallel detach. Two front doors use it: the
 * Node addon (native/src/bpf_session.cc) and tlstap-agent (agent/requests.c); docs/agent.md, "One
 * native core". Every function returns 0 or a result >= 0, or a negative errno; after a failure,
 * tlstap_core_error() says what failed and tlstap_core_log() holds libbpf's last messages.
 * A core is used by one thread at a time, except tlstap_core_links_destroy (any thread).
 */
#ifndef TLSTAP_CORE_H
#define TLSTAP_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tlstap_core;
/* Links taken out of a core, to be destroyed elsewhere (off the caller's thread). */
struct tlstap_core_links;

/* Called for each ring-buffer record, in kernel order, from tlstap_core_poll/consume; a negative return ends that call. */
typedef int (*tlstap_core_record_fn)(void *ctx, const void *data, size_t size);

/* Once per process, before anything else: routes libbpf's messages to the log tail. */
void tlstap_core_init(void);
/* libbpf's last messages (a bounded tail, e.g. the verifier's log), and clearing them before an operation. */
size_t tlstap_core_log(char *out, size_t size);
void tlstap_core_log_clear(void);

/*
 * Opens a BPF object (not loaded yet): from a file, or from memory (the agent's embedded object).
 * btf_path, if not NULL, replaces the kernel's BTF for CO-RE relocations. On failure *out is NULL
 * and tlstap_core_error(NULL) says why.
 */
int tlstap_core_open_file(struct tlstap_core **out, const char *path, const char *btf_path);
int tlstap_core_open_mem(struct tlstap_core **out, const void *object, size_t size, const char *name, const char *btf_path);
/* Before load: writes a `const volatile` global of a data section (.rodata). */
int tlstap_core_set_global(struct tlstap_core *c, const char *section, const char *name, const void *value, size_t size);
/* Before load: a map's max_entries (the ring buffer's size in bytes). */
int tlstap_core_set_map_max_entries(struct tlstap_core *c, const char *map, uint32_t entries);
/* Before load: whether a program is loaded at all. */
int tlstap_core_set_autoload(struct tlstap_core *c, const char *prog, int autoload);
/* Before load: the program will be attached with uprobe_multi links. */
int tlstap_core_use_uprobe_multi(struct tlstap_core *c, const char *prog);
int tlstap_core_load(struct tlstap_core *c);
/* After load: writes one entry of a map. */
int tlstap_core_update_map_elem(struct tlstap_core *c, const char *map, const void *key, size_t key_size,
				const void *value, size_t value_size);
/* Attach calls return a link index. */
int tlstap_core_attach_uprobe(struct tlstap_core *c, const char *prog, const char *path, uint64_t offset, int pid,
			      int retprobe, uint64_t cookie);
int tlstap_core_attach_uprobe_multi(struct tlstap_core *c, const char *prog, const char *path, const uint64_t *offsets,
				    const uint64_t *cookies, uint32_t count, int pid, int retprobe);
int tlstap_core_attach_tracepoint(struct tlstap_core *c, const char *prog, const char *category, const char *name);
/*
 * Ring buffer: fn gets each record. ring_fd polls readable when the program woke the reader;
 * poll waits up to timeout_ms for that and hands the records over; consume hands over what waits
 * (the program wakes the reader only for a backlog: what came in quietly is read on a timer).
 * poll and consume return the number of records, or a negative errno (fn's own, if it ended them).
 */
int tlstap_core_ring_open(struct tlstap_core *c, const char *map, tlstap_core_record_fn fn, void *ctx);
int tlstap_core_ring_fd(struct tlstap_core *c);
int tlstap_core_poll(struct tlstap_core *c, int timeout_ms);
int tlstap_core_consume(struct tlstap_core *c);
/* Each key's u64 value of a per-CPU array, summed over CPUs; returns the number of keys written. */
int tlstap_core_sum_percpu(struct tlstap_core *c, const char *map, uint64_t *sums, size_t max);
/* Takes every link out of the core (NULL if there are none or on ENOMEM, then they stay in the core). */
struct tlstap_core_links *tlstap_core_take_links(struct tlstap_core *c);
/* Destroys links, in parallel: each waits for an RCU grace period. Any thread; links may be NULL. */
void tlstap_core_links_destroy(struct tlstap_core_links *links);
/* tlstap_core_links_destroy(tlstap_core_take_links(c)). */
int tlstap_core_detach_all(struct tlstap_core *c);
/* Releases links, ring buffer and object; c may be NULL. */
void tlstap_core_close(struct tlstap_core *c);
/* What the last failure was ("op failed: reason (context)"); c may be NULL (a failed open). */
const char *tlstap_core_error(const struct tlstap_core *c);
/* The same failure in parts, for the addon's BpfError: the operation and the context. */
const char *tlstap_core_error_op(const struct tlstap_core *c);
const char *tlstap_core_error_context(const struct tlstap_core *c);

#ifdef __cplusplus
}
#endif

#endif
