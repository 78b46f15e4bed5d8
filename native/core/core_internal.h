/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The core's state, shared by its files (not by its users: they see tlstap_core.h only). */
#ifndef TLSTAP_CORE_INTERNAL_H
#define TLSTAP_CORE_INTERNAL_H

#include "tlstap_core.h"

struct bpf_object;
struct bpf_link;
struct ring_buffer;

/* A link: libbpf's, or the fd of a uprobe_multi link made by a raw bpf(BPF_LINK_CREATE). */
struct core_link {
	struct bpf_link *link;
	int fd;
};

/* The last failure, in the parts a BpfError carries. */
struct core_error {
	const char *op;
	char context[512];
	char message[1024];
};

struct tlstap_core {
	struct bpf_object *obj;
	int loaded;
	struct core_link *links;
	size_t nlinks, links_cap;
	struct ring_buffer *ring;
	tlstap_core_record_fn record_fn;
	void *record_ctx;
	struct core_error error;
};

#endif
