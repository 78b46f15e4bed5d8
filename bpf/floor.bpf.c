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

#define FLOOR_ENTER_FUNC(n)                \
	SEC("uprobe")                      \
	int BPF_KPROBE(probe_enter_##n)    \
	{                                  \
		return 0;                  \
	}

FLOOR_ENTER_FUNC(0)
FLOOR_ENTER_FUNC(1)
FLOOR_ENTER_FUNC(2)
FLOOR_ENTER_FUNC(3)
FLOOR_ENTER_FUNC(4)
FLOOR_ENTER_FUNC(5)
FLOOR_ENTER_FUNC(6)
FLOOR_ENTER_FUNC(7)
FLOOR_ENTER_FUNC(8)
FLOOR_ENTER_FUNC(9)
FLOOR_ENTER_FUNC(10)
FLOOR_ENTER_FUNC(11)
FLOOR_ENTER_FUNC(12)
FLOOR_ENTER_FUNC(13)
FLOOR_ENTER_FUNC(14)
FLOOR_ENTER_FUNC(15)
FLOOR_ENTER_FUNC(16)
FLOOR_ENTER_FUNC(17)
FLOOR_ENTER_FUNC(18)

/* Go's crypto/tls (bpf/go.bpf.h). */
SEC("uprobe")
int BPF_KPROBE(go_write_enter)
{
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(go_read_enter)
{
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(go_read_return)
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
int raw_syscall(void *ctx)
{
	return 0;
}

SEC("tracepoint")
int process_exit(void *ctx)
{
	return 0;
}
