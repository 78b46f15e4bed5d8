/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The seam between the agent's request loop and the shared native capture core: one C copy of
 * load/attach/poll, used by the Node addon (native/) and by this agent (docs/agent.md, "One
 * native core"). Every function returns 0 or a result >= 0, or a negative errno; after a failure,
 * tlstap_core_error() says what failed (libbpf's last messages included).
 *
 * Until the core is split out of native/src/bpf_session.cc, core_none.c implements this header
 * with -ENOSYS, so the agent serves files and /proc and refuses capture requests clearly.
 */
#ifndef TLSTAP_AGENT_CORE_H
#define TLSTAP_AGENT_CORE_H

#include <stddef.h>
#include <stdint.h>

struct tlstap_core;

/* Called for each ring-buffer record, in kernel order, from tlstap_core_consume. */
typedef int (*tlstap_core_record_fn)(void *ctx, const void *data, size_t size);

/* Opens the embedded BPF object (not loaded yet). */
int tlstap_core_open(struct tlstap_core **out);
/* Before load: writes a `const volatile` global of a data section (.rodata). */
int tlstap_core_set_global(struct tlstap_core *c, const char *section, const char *name, const void *value, size_t size);
/* Before load: a map's max_entries (the ring buffer's size in bytes). */
int tlstap_core_set_map_max_entries(struct tlstap_core *c, const char *map, uint32_t entries);
/* Before load: the program will be attached with uprobe_multi links. */
int tlstap_core_use_uprobe_multi(struct tlstap_core *c, const char *prog);
int tlstap_core_load(struct tlstap_core *c);
/* Attach calls return a link index. */
int tlstap_core_attach_uprobe(struct tlstap_core *c, const char *prog, const char *path, uint64_t offset, int pid,
			      int retprobe, uint64_t cookie);
int tlstap_core_attach_uprobe_multi(struct tlstap_core *c, const char *prog, const char *path, const uint64_t *offsets,
				    const uint64_t *cookies, uint32_t count, int pid, int retprobe);
int tlstap_core_attach_tracepoint(struct tlstap_core *c, const char *prog, const char *category, const char *name);
/* Ring buffer: an fd that polls readable when records wait, and a call that hands them over. */
int tlstap_core_ring_open(struct tlstap_core *c, const char *map, tlstap_core_record_fn fn, void *ctx);
int tlstap_core_ring_fd(struct tlstap_core *c);
int tlstap_core_consume(struct tlstap_core *c);
/* Each key's u64 value of a per-CPU array, summed over CPUs; returns the number of keys written. */
int tlstap_core_sum_percpu(struct tlstap_core *c, const char *map, uint64_t *sums, size_t max);
/* Destroys every link (in parallel: each waits for an RCU grace period). */
int tlstap_core_detach_all(struct tlstap_core *c);
/* Releases links, ring buffer and object; c may be NULL. */
void tlstap_core_close(struct tlstap_core *c);
/* What the last failure was, for the response's message. */
const char *tlstap_core_error(struct tlstap_core *c);

#endif
