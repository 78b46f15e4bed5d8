/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The BPF object of the agent's architecture (build/bpf/<arch>/tlstap.bpf.o), built into the binary. */
#ifndef TLSTAP_AGENT_EMBEDDED_H
#define TLSTAP_AGENT_EMBEDDED_H

#include <stddef.h>

extern const unsigned char tlstap_bpf_object[];
size_t tlstap_bpf_object_size(void);

#endif
