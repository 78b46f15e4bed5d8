// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The BPF object, included byte for byte by the assembler (scripts/build-agent.sh names the file). */
#include "embedded.h"

#ifndef TLSTAP_BPF_OBJECT
#error "define TLSTAP_BPF_OBJECT as the path of build/bpf/<arch>/tlstap.bpf.o (scripts/build-agent.sh does)"
#endif

__asm__(".section .rodata.tlstap_bpf_object,\"a\"\n"
	".balign 8\n"
	".globl tlstap_bpf_object\n"
	"tlstap_bpf_object:\n"
	".incbin \"" TLSTAP_BPF_OBJECT "\"\n"
	".globl tlstap_bpf_object_end\n"
	"tlstap_bpf_object_end:\n"
	".previous\n");

extern const unsigned char tlstap_bpf_object_end[];

size_t tlstap_bpf_object_size(void)
{
	return (size_t)(tlstap_bpf_object_end - tlstap_bpf_object);
}
