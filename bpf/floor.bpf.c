// SPDX-License-Identifier: GPL-2.0
/*
 * The floor for benchmarks: the same attach points and settings as tlstap.bpf.c, with programs
 * that only return. What a capture costs above this is tlstap's own cost.
 */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "tlstap.h"
#include "settings.bpf.h"

char LICENSE[] SEC("license") = "GPL";

SEC("uprobe")
int BPF_KPROBE(probe_enter)
{
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(probe_return)
{
	return 0;
}

SEC("tracepoint")
int syscall_fd_io(void *ctx)
{
	return 0;
}

SEC("tracepoint")
int syscall_close(void *ctx)
{
	return 0;
}

SEC("tracepoint")
int process_exit(void *ctx)
{
	return 0;
}
