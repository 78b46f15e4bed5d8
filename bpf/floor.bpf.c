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

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 targ_pid = 0;
const volatile __u32 targ_uid = 0;
const volatile __u8 filter_uid = 0;
const volatile char targ_comm[TLSTAP_COMM_LEN] = {};
const volatile __u8 filter_comm = 0;
const volatile __u32 max_call_bytes = TLSTAP_DEFAULT_CALL_BYTES;
const volatile __u32 wakeup_bytes = 256 * 1024;
const volatile __u16 targ_port = 0;
const volatile __u16 targ_host_family = 0;
const volatile __u8 targ_host[16] = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TLSTAP_CTR__COUNT);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

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
