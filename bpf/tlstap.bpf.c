// SPDX-License-Identifier: GPL-2.0
/*
 * tlstap: plaintext of TLS library calls, captured at the call's return.
 *
 * probe_enter (uprobe) remembers the buffer and, for the _ex functions, the
 * size_t * out-parameter, keyed by thread. probe_return (uretprobe) learns the
 * real byte count and copies the plaintext, chunk by chunk, through a per-CPU
 * staging buffer into the ring buffer. It never writes to user memory.
 */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "tlstap.h"

char LICENSE[] SEC("license") = "GPL";

/* Settings, written by user space before load. */
const volatile __u32 targ_pid = 0; /* 0: every process */
const volatile __u32 targ_uid = 0;
const volatile __u8 filter_uid = 0;
const volatile char targ_comm[TLSTAP_COMM_LEN] = {};
const volatile __u8 filter_comm = 0;
const volatile __u32 max_call_bytes = TLSTAP_DEFAULT_CALL_BYTES;
/* Wake the reader only once this much is waiting; it also polls on a short timer. */
const volatile __u32 wakeup_bytes = 256 * 1024;

/* Keeps struct tlstap_data_event in the object's BTF, where tests check its layout. */
const volatile struct tlstap_data_event *const event_type_for_btf = 0;

struct call_args {
	__u64 ssl;
	__u64 buf;
	__u64 out_len; /* size_t * of the _ex functions, else 0 */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLSTAP_MAX_INFLIGHT);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct call_args);
} inflight SEC(".maps");

struct staging {
	__u8 raw[sizeof(struct tlstap_data_event) + TLSTAP_CHUNK_SIZE];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct staging);
} staging SEC(".maps");

/* Size set by user space before load (--ring-buffer). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TLSTAP_CTR__COUNT);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 counter, __u64 n)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &counter);

	if (value)
		*value += n;
}

/*
 * A wakeup per record costs the traced thread an interrupt and the reader a context switch;
 * under load, wake it only for a sizeable backlog.
 */
static __always_inline __u64 wakeup_flag(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
									    : BPF_RB_NO_WAKEUP;
}

static __always_inline int comm_matches(void)
{
	char comm[TLSTAP_COMM_LEN];

	bpf_get_current_comm(comm, sizeof(comm));
	for (int i = 0; i < TLSTAP_COMM_LEN; i++) {
		if (comm[i] != targ_comm[i])
			return 0;
		if (!comm[i])
			break;
	}
	return 1;
}

static __always_inline int wanted(__u64 pid_tgid)
{
	if (targ_pid && (__u32)(pid_tgid >> 32) != targ_pid)
		return 0;
	if (filter_uid && (__u32)bpf_get_current_uid_gid() != targ_uid)
		return 0;
	if (filter_comm && !comm_matches())
		return 0;
	return 1;
}

static __always_inline int is_ex(__u32 func)
{
	return func == TLSTAP_FUNC_SSL_READ_EX || func == TLSTAP_FUNC_SSL_WRITE_EX;
}

SEC("uprobe")
int BPF_KPROBE(probe_enter, void *ssl, void *buf, __u64 num, void *out_len)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 func = TLSTAP_COOKIE_FUNC(bpf_get_attach_cookie(ctx));
	struct call_args args = {};

	if (!wanted(pid_tgid))
		return 0;
	args.ssl = (__u64)ssl;
	args.buf = (__u64)buf;
	args.out_len = is_ex(func) ? (__u64)out_len : 0;
	bpf_map_update_elem(&inflight, &pid_tgid, &args, BPF_ANY);
	return 0;
}

/* The number of bytes the call moved, or 0 when it failed. */
static __always_inline __u64 call_length(struct pt_regs *ctx, __u32 func, const struct call_args *args)
{
	int ret = (int)PT_REGS_RC(ctx);
	__u64 len = 0;

	if (!is_ex(func))
		return ret > 0 ? (__u64)ret : 0;
	if (ret != 1 || !args->out_len)
		return 0;
	if (bpf_probe_read_user(&len, sizeof(len), (void *)args->out_len))
		return 0;
	return len;
}

SEC("uretprobe")
int BPF_KRETPROBE(probe_return)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 func = TLSTAP_COOKIE_FUNC(cookie);
	struct tlstap_data_event *ev;
	struct call_args args, *found;
	__u32 zero = 0;
	__u64 captured;
	struct staging *st;
	__u64 len;

	found = bpf_map_lookup_elem(&inflight, &pid_tgid);
	if (!found)
		return 0;
	args = *found;
	bpf_map_delete_elem(&inflight, &pid_tgid);

	len = call_length(ctx, func, &args);
	if (!len)
		return 0;
	count(TLSTAP_CTR_CALLS, 1);
	if (len > 0xffffffffULL)
		len = 0xffffffffULL;

	st = bpf_map_lookup_elem(&staging, &zero);
	if (!st)
		return 0;
	ev = (struct tlstap_data_event *)st->raw;

	captured = len < max_call_bytes ? len : max_call_bytes;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->ssl = args.ssl;
	ev->cookie = cookie;
	ev->kind = TLSTAP_EVENT_DATA;
	ev->pid = pid_tgid >> 32;
	ev->tid = (__u32)pid_tgid;
	ev->uid = (__u32)bpf_get_current_uid_gid();
	ev->total_len = (__u32)len;
	ev->truncated = (__u32)len - captured;
	ev->func = func;
	ev->dir = (func == TLSTAP_FUNC_SSL_WRITE || func == TLSTAP_FUNC_SSL_WRITE_EX) ? TLSTAP_DIR_WRITE
										   : TLSTAP_DIR_READ;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));

	for (int i = 0; i < TLSTAP_MAX_CHUNKS; i++) {
		/* 64-bit arithmetic keeps the verifier's bounds on n unsigned and exact. */
		__u64 off = (__u64)i * TLSTAP_CHUNK_SIZE;
		__u64 n;

		if (off >= captured)
			break;
		n = captured - off;
		if (n > TLSTAP_CHUNK_SIZE)
			n = TLSTAP_CHUNK_SIZE;
		ev->chunk_offset = (__u32)off;
		ev->chunk_len = (__u32)n;
		if (bpf_probe_read_user(ev->data, n, (void *)(args.buf + off))) {
			count(TLSTAP_CTR_READ_FAULTS, 1);
			count(TLSTAP_CTR_READ_FAULT_BYTES, captured - off);
			break;
		}
		if (bpf_ringbuf_output(&events, ev, sizeof(*ev) + n, wakeup_flag())) {
			/* No room: this chunk and every later one of the call are lost, and counted. */
			count(TLSTAP_CTR_RINGBUF_DROPPED_EVENTS,
			      (captured - off + TLSTAP_CHUNK_SIZE - 1) / TLSTAP_CHUNK_SIZE);
			count(TLSTAP_CTR_RINGBUF_DROPPED_BYTES, captured - off);
			break;
		}
	}
	return 0;
}
