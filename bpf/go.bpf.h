/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Go's crypto/tls: crypto/tls.(*Conn).Write and Read, compiled into a Go program with Go's own
 * calling convention. For tlstap.bpf.c only (it uses its maps and emit helpers).
 *
 * - Never a uretprobe: Go moves goroutine stacks, and a rewritten return address on a moved stack
 *   crashes the program. Write is copied at its entry (the caller's buffer holds what it sends);
 *   Read remembers its buffer at entry and is copied at each of its return instructions (user
 *   space finds them by decoding the function's code and attaches a plain uprobe to each).
 * - The register ABI (Go 1.17+ on amd64, 1.18+ on arm64): the receiver c *tls.Conn, then b's
 *   pointer and length; at a return, n. The connection is (process, c): one per *tls.Conn.
 * - A call in flight is keyed by its goroutine (g: R14 on amd64, R28 on arm64), not by its
 *   thread: a goroutine that blocks inside Read resumes on whichever thread the scheduler picks,
 *   and its thread meanwhile runs other goroutines.
 * - No Go struct is read (no per-version offsets): the connection's fd is the first socket a
 *   read/write system call of the same goroutine names inside the call, told by reading g from
 *   the registers the thread saved at the system call's entry (bpf_task_pt_regs, 5.15+, with
 *   kernel BTF). Without it the connection has no fd and no addresses; its bytes still go out.
 *   The attach cookie names function and file, so Go probes need attach cookies (5.15+ too).
 */
#ifndef TLSTAP_GO_BPF_H
#define TLSTAP_GO_BPF_H

#if defined(__TARGET_ARCH_x86)
/* The user-space struct pt_regs of <asm/ptrace.h>; the kernel's has the same layout. */
#define GO_ARG1(r) ((r)->rax)
#define GO_ARG2(r) ((r)->rbx)
#define GO_ARG3(r) ((r)->rcx)
#define GO_G(r) ((r)->r14)
#elif defined(__TARGET_ARCH_arm64)
/* struct user_pt_regs, the start of the kernel's struct pt_regs (as bpf_tracing.h reads it). */
#define GO_ARG1(r) (((struct user_pt_regs *)(r))->regs[0])
#define GO_ARG2(r) (((struct user_pt_regs *)(r))->regs[1])
#define GO_ARG3(r) (((struct user_pt_regs *)(r))->regs[2])
#define GO_G(r) (((struct user_pt_regs *)(r))->regs[28])
#else
#error "Go probes: amd64 (x86) or arm64 only"
#endif

/* A goroutine of a process: the key of a Go call in flight. */
struct go_key {
	__u32 pid;
	__u32 pad;
	__u64 g;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLSTAP_MAX_INFLIGHT);
	__type(key, struct go_key);
	__type(value, struct call_args);
} go_inflight SEC(".maps");

/* Processes with a Go call whose connection's fd is still to be learnt from its system calls. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLSTAP_MAX_CONNS);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} go_pids SEC(".maps");

/* The call's arguments at a Go entry probe; args->fd is the connection's fd, -1 when not known yet. */
static __always_inline void go_call_args(struct pt_regs *ctx, __u64 pid_tgid, struct call_args *args)
{
	struct conn_key key = { .pid = pid_tgid >> 32, .ssl = GO_ARG1(ctx) };
	struct conn_state *known = bpf_map_lookup_elem(&conns, &key);

	args->ssl = key.ssl;
	args->buf = GO_ARG2(ctx);
	args->cookie = bpf_get_attach_cookie(ctx);
	args->write = is_write(TLSTAP_COOKIE_FUNC(args->cookie));
	args->fd = known ? known->fd : -1;
}

/* Keeps a call in flight for its goroutine; one without an fd has its process's syscalls watched. */
static __always_inline void go_track(__u64 pid_tgid, __u64 g, const struct call_args *args)
{
	struct go_key key = { .pid = pid_tgid >> 32, .g = g };
	__u32 tgid = key.pid;
	__u8 one = 1;

	bpf_map_update_elem(&go_inflight, &key, args, BPF_ANY);
	if (args->fd < 0)
		bpf_map_update_elem(&go_pids, &tgid, &one, BPF_ANY);
}

/* crypto/tls.(*Conn).Write(b []byte) at entry: b is what it sends. */
SEC("uprobe")
int BPF_KPROBE(go_write_enter)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct call_args args = {};
	__u64 len = GO_ARG3(ctx);

	if (!wanted(pid_tgid))
		return 0;
	go_call_args(ctx, pid_tgid, &args);
	/* The socket write inside this call names the connection's fd. */
	if (args.fd < 0)
		go_track(pid_tgid, GO_G(ctx), &args);
	if (len)
		emit_call(pid_tgid, &args, len);
	return 0;
}

/* crypto/tls.(*Conn).Read(b []byte) at entry: remembers b for the return. */
SEC("uprobe")
int BPF_KPROBE(go_read_enter)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct call_args args = {};

	if (!wanted(pid_tgid))
		return 0;
	go_call_args(ctx, pid_tgid, &args);
	go_track(pid_tgid, GO_G(ctx), &args);
	return 0;
}

/* One of Read's return instructions: n bytes arrived in the b remembered at entry. */
SEC("uprobe")
int BPF_KPROBE(go_read_return)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct go_key key = { .pid = pid_tgid >> 32, .g = GO_G(ctx) };
	struct call_args args, *found;
	long n = (long)GO_ARG1(ctx);

	found = bpf_map_lookup_elem(&go_inflight, &key);
	if (!found)
		return 0;
	args = *found;
	bpf_map_delete_elem(&go_inflight, &key);
	if (n > 0)
		emit_call(pid_tgid, &args, (__u64)n);
	return 0;
}

/*
 * A read or write system call of a process with a Go call waiting for its fd: when the calling
 * goroutine is inside such a call, the fd (a socket) is its connection's. g comes from the
 * registers the thread saved at the system call's entry.
 */
static __always_inline void go_fd_io(__u64 pid_tgid, __s32 fd)
{
	struct go_key key = { .pid = pid_tgid >> 32 };
	struct call_args *args;
	struct pt_regs *regs;

	if (!bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_pt_regs))
		return;
	if (!bpf_map_lookup_elem(&go_pids, &key.pid))
		return;
	regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	if (bpf_probe_read_kernel(&key.g, sizeof(key.g), &GO_G(regs)))
		return;
	args = bpf_map_lookup_elem(&go_inflight, &key);
	if (!args || args->fd_seen || !fd_is_socket(fd))
		return;
	args->fd = fd;
	args->fd_seen = 1;
	find_conn(pid_tgid, args->ssl, args->cookie, fd);
	/* A Write was copied at entry and only waited for this; a Read still waits for its return. */
	if (args->write)
		bpf_map_delete_elem(&go_inflight, &key);
}

#endif /* TLSTAP_GO_BPF_H */
