// SPDX-License-Identifier: GPL-2.0
/*
 * tlstap: plaintext of TLS library calls, captured at the call's return, and the
 * connection each call belongs to.
 *
 * probe_enter (uprobe) remembers the buffer and, for the _ex functions, the
 * size_t * out-parameter, keyed by thread. While the thread is inside the call,
 * the socket syscalls it makes (per-syscall tracepoints, or raw_syscalls where
 * those are missing) reveal the fd. A TLS library over a memory BIO (Node,
 * Python asyncio) makes no syscall inside the call: its fd is the socket the
 * thread read right before the call, or wrote right after it. probe_return
 * (uretprobe) learns the real byte count, finds or creates the connection of
 * (process, SSL *), and copies the plaintext chunk by chunk from the process
 * straight into ring-buffer records. It never writes to user memory, and it
 * reads no TLS library struct: the fd comes from syscalls, the addresses from
 * the kernel's socket (CO-RE), so no per-version offsets exist.
 */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tlstap.h"
#include "settings.bpf.h"
#include "syscall_nr.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define S_IFMT 0170000
#define S_IFSOCK 0140000

/* Settings, the ring buffer and the counters: bpf/settings.bpf.h. */

/* Keeps struct tlstap_data_event and tlstap_conn_event in the object's BTF, where tests check their layout. */
const volatile struct tlstap_data_event *const data_event_type_for_btf = 0;
const volatile struct tlstap_conn_event *const conn_event_type_for_btf = 0;

/*
 * Connection ids, unique within a run, from a per-CPU count interleaved over the CPUs
 * (id = count * nr_cpus + cpu + 1). Atomic fetch-and-add would need 5.12: kernels before it
 * refuse an object that holds one even in code they never run.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} conn_id_counts SEC(".maps");

/* The kernel structs read to go from an fd to its socket's addresses; only the fields used. */
struct tlstap_in6 {
	__u8 bytes[16];
};

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	struct tlstap_in6 skc_v6_daddr;
	struct tlstap_in6 skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct socket {
	struct sock *sk;
} __attribute__((preserve_access_index));

struct inode {
	unsigned short i_mode;
} __attribute__((preserve_access_index));

struct file {
	struct inode *f_inode;
	void *private_data;
} __attribute__((preserve_access_index));

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
} __attribute__((preserve_access_index));

struct files_struct {
	struct fdtable *fdt;
} __attribute__((preserve_access_index));

struct task_struct {
	struct files_struct *files;
} __attribute__((preserve_access_index));

/*
 * The start of both syscalls:sys_enter_* (int __syscall_nr, then each argument in 8 bytes) and
 * raw_syscalls:sys_enter (long id, unsigned long args[6]): the number's low 32 bits and the
 * arguments are at the same offsets (both architectures are little-endian).
 */
struct syscall_enter {
	__u64 common;
	__s32 nr;
	__s32 nr_high;
	__u64 args[6];
};

/*
 * A thread's call in flight. The entry of a thread stays in the inflight map between its calls
 * (active = 0), so a call's entry and return write it in place instead of inserting and deleting,
 * and it keeps the fd of the thread's last connection for its next call on the same one.
 */
struct call_args {
	__u64 ssl;
	__u64 buf;
	__u64 out_len; /* size_t * of the _ex functions, else 0 */
	__u64 cookie;  /* TLSTAP_COOKIE(file_index, func) of the entry probe */
	__s32 fd;      /* the socket fd the call used: its connection's fd (last_fd) until a syscall shows it */
	__u16 flags;   /* TLSTAP_FLAG_* */
	__u8 fd_seen;  /* a socket syscall of this call confirmed fd */
	__u8 active;   /* the thread is inside the call */
	__u8 write;    /* the call sends plaintext (is_write) */
	__s32 last_fd; /* the fd of the connection of the thread's last call (last_ssl), -1 for none */
	__u64 last_ssl;
	__u64 last_gen; /* conn_gen when last_fd was read: a later change of any connection voids it */
};

struct conn_key {
	__u32 pid;
	__u32 pad;
	__u64 ssl;
};

struct conn_state {
	__u64 id;
	__u32 seq;
	__s32 fd;
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u8 reason;
	__u8 announced; /* enum announced */
	__u8 laddr[16];
	__u8 raddr[16];
};

struct fd_key {
	__u32 pid;
	__s32 fd;
};

/* Whether a connection's records go out. */
enum announced {
	NOT_ANNOUNCED = 0, /* --port/--host excluded it: nothing goes out */
	ANNOUNCED = 1,     /* its open record went out: it passed --port/--host, if set */
	/*
	 * Under --port/--host, without addresses yet (a memory BIO before its socket syscall, or no
	 * kernel BTF): its records go out so user space can decide once the addresses are known,
	 * or count it as excluded without addresses.
	 */
	TENTATIVE = 2,
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLSTAP_MAX_INFLIGHT);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct call_args);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLSTAP_MAX_CONNS);
	__type(key, struct conn_key);
	__type(value, struct conn_state);
} conns SEC(".maps");

/* Processes that have connections, so their exit can end them. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLSTAP_MAX_CONNS);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} conn_pids SEC(".maps");

/*
 * Memory BIO: processes with a TLS call whose connection had no fd; the socket each of their
 * threads read last (outside a TLS call); and the connection (SSL *) of a thread's last TLS call
 * without an fd, which the thread's next socket write (its ciphertext) names.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLSTAP_MAX_CONNS);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} bio_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLSTAP_MAX_INFLIGHT);
	__type(key, __u64); /* pid_tgid */
	__type(value, __s32);
} bio_last_read SEC(".maps");

/* A TLS call whose ciphertext the thread's next socket write should carry. */
struct pending_write {
	__u64 ssl;
	__u64 min_len; /* the plaintext it wrote: its ciphertext is longer */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLSTAP_MAX_INFLIGHT);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct pending_write);
} bio_pending_write SEC(".maps");

/* (process, fd) -> SSL *, to end a connection when its fd is closed. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TLSTAP_MAX_CONNS);
	__type(key, struct fd_key);
	__type(value, __u64);
} fd_conns SEC(".maps");

/*
 * Set once a traced process has a call without an fd (a memory BIO): until then the memory-BIO
 * bookkeeping (bio_pids and the rest) costs no map operation.
 */
__u8 bio_seen = 0;

/* Changes whenever a connection ends or its fd changes (see call_args.last_fd). */
__u64 conn_gen = 0;

static __always_inline void count(__u32 counter, __u64 n)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &counter);

	if (value)
		*value += n;
}

/* When the reader was last woken (CLOCK_MONOTONIC ns, any CPU's clock): see wakeup_flag. */
__u64 last_wakeup_ns = 0;
/*
 * A wakeup costs the traced thread an interrupt and the reader a context switch: wake the reader
 * only while a backlog of wakeup_bytes or more waits (below that it reads on its short timer), and
 * at most once per wakeup_gap_ns (while it is awake but behind, or just woken). The test is on the
 * backlog's level, not on the record that takes it past wakeup_bytes: records reserved on two CPUs
 * at once both see the backlog with both in it, so a crossing could go by unseen, and the reader
 * then slept until its timer while the ring filled (at 16 KiB calls, ~15 MiB in those 20 ms).
 * now: the record's time; a CPU whose clock is behind the last wakeup's does not wake.
 */
static __always_inline __u64 wakeup_flag(__u64 now)
{
	if ((__s64)(now - last_wakeup_ns) < wakeup_gap_ns ||
	    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) < wakeup_bytes)
		return BPF_RB_NO_WAKEUP;
	last_wakeup_ns = now;
	return BPF_RB_FORCE_WAKEUP;
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

static __always_inline int is_write(__u32 func)
{
	switch (func) {
	case TLSTAP_FUNC_SSL_WRITE:
	case TLSTAP_FUNC_SSL_WRITE_EX:
	case TLSTAP_FUNC_GNUTLS_SEND:
	case TLSTAP_FUNC_PR_WRITE:
	case TLSTAP_FUNC_PR_SEND:
	case TLSTAP_FUNC_GO_WRITE:
		return 1;
	}
	return 0;
}

static __always_inline int is_nspr(__u32 func)
{
	return func >= TLSTAP_FUNC_PR_READ && func <= TLSTAP_FUNC_PR_SEND;
}

/* Whether an NSPR descriptor has a layer (the SSL one) pushed above NSPR's own I/O layer. */
static __always_inline int nspr_is_layered(void *fd)
{
	__s32 identity = 0;

	if (bpf_probe_read_user(&identity, sizeof(identity), fd + TLSTAP_PRFILEDESC_IDENTITY_OFFSET))
		return 0;
	return identity != 0;
}

static __always_inline void fill_header(struct tlstap_event_header *h, __u32 kind, __u64 pid_tgid, __u64 ssl,
					__u64 cookie, __u64 conn_id)
{
	h->ts_ns = bpf_ktime_get_ns();
	h->ssl = ssl;
	h->cookie = cookie;
	h->conn_id = conn_id;
	h->kind = kind;
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/*
 * Whether the kernel's BTF is there to read its structs. Without it, user space gives libbpf an
 * empty BTF: this check is then 0 and every CO-RE read below it is dead code the verifier drops.
 */
static __always_inline int have_kernel_btf(void)
{
	return bpf_core_type_exists(struct task_struct);
}

/* The socket behind fd in the current process, or 0 with the reason. */
static __always_inline struct sock *socket_of_fd(__s32 fd, __u8 *reason)
{
	struct task_struct *task;
	struct fdtable *fdt;
	struct file **fds;
	struct file *file = 0;
	struct socket *sock;

	if (!have_kernel_btf()) {
		*reason = TLSTAP_REASON_NO_BTF;
		return 0;
	}
	task = (struct task_struct *)bpf_get_current_task();
	fdt = BPF_CORE_READ(task, files, fdt);
	*reason = TLSTAP_REASON_FD_UNREADABLE;
	if (!fdt || fd < 0 || (__u32)fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return 0;
	if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFSOCK) {
		*reason = TLSTAP_REASON_NOT_SOCKET;
		return 0;
	}
	sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return 0;
	*reason = TLSTAP_REASON_NONE;
	return BPF_CORE_READ(sock, sk);
}

/* Whether fd is a socket; without kernel BTF every fd is taken for one (the first the call used). */
static __always_inline int fd_is_socket(__s32 fd)
{
	__u8 reason;

	if (!have_kernel_btf())
		return fd >= 0;
	return socket_of_fd(fd, &reason) != 0;
}

/* Fills the state's addresses from its fd's socket (or the reason they are unknown). */
static __always_inline void resolve_addresses(struct conn_state *st)
{
	struct sock *sk = socket_of_fd(st->fd, &st->reason);
	__u16 family;

	st->family = 0;
	if (!sk)
		return;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_INET) {
		BPF_CORE_READ_INTO((__be32 *)st->laddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__be32 *)st->raddr, sk, __sk_common.skc_daddr);
	} else if (family == AF_INET6) {
		BPF_CORE_READ_INTO((struct tlstap_in6 *)st->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct tlstap_in6 *)st->raddr, sk, __sk_common.skc_v6_daddr);
	} else {
		st->reason = TLSTAP_REASON_NOT_INET;
		return;
	}
	st->family = family;
	st->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	st->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
}

static __always_inline void emit_conn_event(__u32 kind, __u64 pid_tgid, __u64 ssl, __u64 cookie,
					    const struct conn_state *st, __u8 reason)
{
	struct tlstap_conn_event ev = {};

	fill_header(&ev.h, kind, pid_tgid, ssl, cookie, st->id);
	ev.fd = st->fd;
	ev.family = st->family;
	ev.lport = st->lport;
	ev.rport = st->rport;
	ev.reason = reason;
	ev.seq = st->seq;
	__builtin_memcpy(ev.laddr, st->laddr, sizeof(ev.laddr));
	__builtin_memcpy(ev.raddr, st->raddr, sizeof(ev.raddr));
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), wakeup_flag(ev.h.ts_ns)))
		count(TLSTAP_CTR_RINGBUF_DROPPED_EVENTS, 1);
}

/* Whether addr (of a socket of the given family) is the --host address. */
static __always_inline int host_is(const __u8 *addr, __u16 family)
{
	int at = 0, len = 16;

	if (targ_host_family == AF_INET && family == AF_INET6) {
		/* A dual-stack socket holds IPv4 peers as ::ffff:a.b.c.d. */
		for (int i = 0; i < 10; i++)
			if (addr[i])
				return 0;
		if (addr[10] != 0xff || addr[11] != 0xff)
			return 0;
		at = 12;
		len = 4;
	} else if (family != targ_host_family) {
		return 0;
	} else if (family == AF_INET) {
		len = 4;
	}
	for (int i = 0; i < 16; i++) {
		if (i >= len)
			break;
		if (addr[(at + i) & 15] != targ_host[i])
			return 0;
	}
	return 1;
}

static __always_inline int address_matches(const struct conn_state *st)
{
	if (targ_port && st->lport != targ_port && st->rport != targ_port)
		return 0;
	if (!targ_host_family)
		return 1;
	return host_is(st->laddr, st->family) || host_is(st->raddr, st->family);
}

static __always_inline int address_filter_set(void)
{
	return targ_port || targ_host_family;
}

/* Whether a connection's records go out (enum announced), from what is known of it now. */
static __always_inline __u8 announcement(const struct conn_state *st)
{
	if (!address_filter_set())
		return ANNOUNCED;
	if (st->family)
		return address_matches(st) ? ANNOUNCED : NOT_ANNOUNCED;
	/* Addresses that may still become known: user space decides then. */
	if (st->reason == TLSTAP_REASON_NO_FD || st->reason == TLSTAP_REASON_NO_BTF)
		return TENTATIVE;
	return NOT_ANNOUNCED;
}

/* A new connection id (see conn_id_counts). */
static __always_inline __u64 new_conn_id(void)
{
	__u32 zero = 0;
	__u64 *count;
	__u64 id;

	count = bpf_map_lookup_elem(&conn_id_counts, &zero);
	if (!count)
		return 0;
	/*
	 * Programs do not nest on a CPU. On a fully preemptible kernel a uprobe program runs with
	 * migration, not preemption, disabled: a program of another task could run between this
	 * read and the write below and take the same id. The window is these two instructions.
	 */
	id = *count * nr_cpus + bpf_get_smp_processor_id() + 1;
	*count += 1;
	return id;
}

/*
 * The connection's next call number. `shared`: the TLS object may be inside two calls at once, as
 * a Go tls.Conn is (one goroutine reads while another writes): an atomic fetch-and-add, which needs
 * 5.12, and Go's programs load only from 5.15 (attach cookies). Otherwise a read, then a plain
 * atomic add: only two threads inside one TLS object at once, which TLS libraries forbid, could
 * share a number. `shared` is a constant at each call site: the library programs carry no fetch.
 */
static __always_inline __u32 next_seq(struct conn_state *st, int shared)
{
	__u32 seq;

	if (shared)
		return __sync_fetch_and_add(&st->seq, 1);
	seq = st->seq;
	__sync_fetch_and_add(&st->seq, 1);
	return seq;
}

/* Remembers fd for this connection, resolves its addresses, and lets close() of the fd end it. */
static __always_inline void learn_fd(struct conn_state *st, __s32 fd, __u64 pid_tgid, __u64 ssl)
{
	struct fd_key fk = { .pid = pid_tgid >> 32, .fd = fd };

	st->fd = fd;
	conn_gen++;
	resolve_addresses(st);
	bpf_map_update_elem(&fd_conns, &fk, &ssl, BPF_ANY);
}

/* Lets the process's exit end its announced connections. */
static __always_inline void note_conn_pid(__u64 pid_tgid)
{
	__u32 pid = pid_tgid >> 32;
	__u8 one = 1;

	bpf_map_update_elem(&conn_pids, &pid, &one, BPF_ANY);
}

/* The stored state of the connection of (process, ssl), 0 when there is none. */
static __always_inline struct conn_state *lookup_conn(__u64 pid_tgid, __u64 ssl)
{
	struct conn_key key = { .pid = pid_tgid >> 32, .ssl = ssl };

	return bpf_map_lookup_elem(&conns, &key);
}

/*
 * The connection of (process, ssl), given st = lookup_conn(pid_tgid, ssl): created on first
 * sighting (st 0) with a new id. fd is the socket the current call used (-1: none seen); a new
 * or changed fd is learnt. A connection is announced (its open record) once it passes
 * --port/--host, which may be only when its fd is learnt; connections that never pass send no
 * record at all.
 */
static __always_inline struct conn_state *track_conn(struct conn_state *st, __u64 pid_tgid, __u64 ssl, __u64 cookie,
						     __s32 fd)
{
	struct conn_key key = { .pid = pid_tgid >> 32, .ssl = ssl };
	struct conn_state fresh = {};

	if (!st) {
		fresh.id = new_conn_id();
		fresh.fd = -1;
		fresh.reason = have_kernel_btf() ? TLSTAP_REASON_NO_FD : TLSTAP_REASON_NO_BTF;
		if (fd >= 0)
			learn_fd(&fresh, fd, pid_tgid, ssl);
		fresh.announced = announcement(&fresh);
		/* Announce only what was stored: a thread that lost the race uses the winner's state. */
		if (!bpf_map_update_elem(&conns, &key, &fresh, BPF_NOEXIST) && fresh.announced) {
			emit_conn_event(TLSTAP_EVENT_CONN_OPEN, pid_tgid, ssl, cookie, &fresh, fresh.reason);
			note_conn_pid(pid_tgid);
		}
		return bpf_map_lookup_elem(&conns, &key);
	}
	if (fd < 0 || fd == st->fd)
		return st;
	learn_fd(st, fd, pid_tgid, ssl);
	if (st->announced) {
		/* A tentative connection's user space decides on these addresses; the kernel does too. */
		emit_conn_event(TLSTAP_EVENT_CONN_FD, pid_tgid, ssl, cookie, st, st->reason);
		if (st->announced == TENTATIVE)
			st->announced = announcement(st);
	} else if (announcement(st) == ANNOUNCED) {
		st->announced = ANNOUNCED;
		emit_conn_event(TLSTAP_EVENT_CONN_OPEN, pid_tgid, ssl, cookie, st, st->reason);
		note_conn_pid(pid_tgid);
	}
	return st;
}

/* track_conn after a lookup of its own. */
static __always_inline struct conn_state *find_conn(__u64 pid_tgid, __u64 ssl, __u64 cookie, __s32 fd)
{
	return track_conn(lookup_conn(pid_tgid, ssl), pid_tgid, ssl, cookie, fd);
}

static __always_inline void end_conn(__u64 pid_tgid, __u64 ssl, __u64 cookie, __u8 reason)
{
	struct conn_key key = { .pid = pid_tgid >> 32, .ssl = ssl };
	struct conn_state *st = bpf_map_lookup_elem(&conns, &key);
	struct fd_key fk = { .pid = pid_tgid >> 32 };

	if (!st)
		return;
	conn_gen++;
	if (st->announced)
		emit_conn_event(TLSTAP_EVENT_CONN_CLOSE, pid_tgid, ssl, cookie, st, reason);
	fk.fd = st->fd;
	if (st->fd >= 0)
		bpf_map_delete_elem(&fd_conns, &fk);
	bpf_map_delete_elem(&conns, &key);
}

/*
 * Sizes a data record's payload is reserved at: bpf_ringbuf_reserve takes a constant size, so a
 * chunk of n bytes goes in the smallest class >= n, four classes per doubling (the padding is
 * under a quarter of the payload, and zero when n is a class: 1 KiB, 16 KiB). X(class, the class
 * below): the bytes from the class below up are zeroed before the chunk is read over them.
 */
#define DATA_CLASSES(X)                                                                                    \
	X(16, 0) X(32, 16) X(48, 32) X(64, 48) X(80, 64) X(96, 80) X(112, 96) X(128, 112) X(160, 128)      \
	X(192, 160) X(224, 192) X(256, 224) X(320, 256) X(384, 320) X(448, 384) X(512, 448) X(640, 512)    \
	X(768, 640) X(896, 768) X(1024, 896) X(1280, 1024) X(1536, 1280) X(1792, 1536) X(2048, 1792)       \
	X(2560, 2048) X(3072, 2560) X(3584, 3072) X(4096, 3584) X(5120, 4096) X(6144, 5120) X(7168, 6144)  \
	X(8192, 7168) X(10240, 8192) X(12288, 10240) X(14336, 12288) X(16384, 14336)
#define DATA_PAD_MAX 2048 /* the largest step between two classes */
_Static_assert(TLSTAP_CHUNK_SIZE == 16384, "the largest data class is TLSTAP_CHUNK_SIZE");

/* What the padding of a record is copied from. */
const volatile __u8 zero_pad[DATA_PAD_MAX] = {};

/* How a data record went (emit_chunk). */
enum chunk_result {
	CHUNK_SENT = 0,
	CHUNK_NO_ROOM = 1,    /* the ring buffer is full */
	CHUNK_READ_FAULT = 2, /* the process's memory could not be read */
};

/*
 * One data record of a class (`size` bytes of payload; the class below it is `below`): head with
 * chunk_offset off and chunk_len n, its bytes read from the process at src straight into the ring
 * buffer. Only the call's last chunk (last != 0) may wake the reader.
 */
static __always_inline int emit_in_class(const struct tlstap_data_event *head, __u64 src, __u64 off, __u64 n,
					 __u64 last, __u64 size, __u64 below)
{
	struct tlstap_data_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev) + size, 0);

	if (!ev)
		return CHUNK_NO_ROOM;
	/*
	 * The caller checked this; the verifier needs it here, on n itself, as one comparison (older
	 * verifiers do not carry a bound from n - 1 back to n).
	 */
	barrier_var(n);
	if (n > size) {
		bpf_ringbuf_discard(ev, BPF_RB_NO_WAKEUP);
		return CHUNK_NO_ROOM;
	}
	__builtin_memcpy(ev, head, sizeof(*ev));
	ev->chunk_offset = (__u32)off;
	ev->chunk_len = (__u32)n;
	/* Stale ring-buffer bytes must not follow the chunk (a --redact'ed recording keeps records whole). */
	if (n < size)
		bpf_probe_read_kernel(ev->data + below, size - below, (const void *)zero_pad);
	if (bpf_probe_read_user(ev->data, n, (void *)src)) {
		bpf_ringbuf_discard(ev, BPF_RB_NO_WAKEUP);
		return CHUNK_READ_FAULT;
	}
	bpf_ringbuf_submit(ev, last ? wakeup_flag(head->h.ts_ns) : BPF_RB_NO_WAKEUP);
	return CHUNK_SENT;
}

/*
 * One function per class, called, not inlined: the compiler would otherwise merge the classes'
 * reservations into one call whose size the verifier must then follow through every path (older
 * verifiers lose it and refuse the program). Each function's sizes are constants of its own.
 */
#define CLASS_FUNC(size, prev)                                                                             \
	static __noinline int emit_class_##size(const struct tlstap_data_event *head, __u64 src, __u64 off, \
						__u64 n, __u64 last)                                        \
	{                                                                                                  \
		return emit_in_class(head, src, off, n, last, size, prev);                                 \
	}
DATA_CLASSES(CLASS_FUNC)
#undef CLASS_FUNC

/*
 * One data record: head with chunk_offset off and chunk_len n (1..TLSTAP_CHUNK_SIZE), in the
 * smallest class that holds it, its bytes read from the process at buf + off. `last`: see
 * emit_in_class.
 */
static __always_inline enum chunk_result emit_chunk(const struct tlstap_data_event *head, __u64 buf, __u64 off,
						    __u64 n, __u64 last)
{
#define CHUNK_CLASS(size, prev)                                                                    \
	if (n <= (size))                                                                            \
		return emit_class_##size(head, buf + off, off, n, last);
	DATA_CLASSES(CHUNK_CLASS)
#undef CHUNK_CLASS
	return CHUNK_NO_ROOM;
}

/* Counts the bytes of a call from offset off on, lost to a full ring buffer or a read fault. */
static __always_inline void count_lost(enum chunk_result why, __u64 off, __u64 captured)
{
	if (why == CHUNK_NO_ROOM) {
		/* This chunk and every later one of the call. */
		count(TLSTAP_CTR_RINGBUF_DROPPED_EVENTS, (captured - off + TLSTAP_CHUNK_SIZE - 1) / TLSTAP_CHUNK_SIZE);
		count(TLSTAP_CTR_RINGBUF_DROPPED_BYTES, captured - off);
		return;
	}
	count(TLSTAP_CTR_READ_FAULTS, 1);
	count(TLSTAP_CTR_READ_FAULT_BYTES, captured - off);
	/* Its first chunk: the call never arrives, and user space must not take it for a drop. */
	if (!off)
		count(TLSTAP_CTR_READ_FAULT_CALLS, 1);
}

/*
 * Sends the first `captured` bytes of a call, read from the process at buf, as data records in
 * chunk_offset order; head holds every field but chunk_offset and chunk_len. Every chunk is
 * TLSTAP_CHUNK_SIZE bytes but the last. Counts what is lost.
 */
static __always_inline void emit_data(const struct tlstap_data_event *head, __u64 buf, __u64 captured)
{
	/*
	 * The whole chunks and the last one's size come from captured alone, never from the loop's
	 * count: the loop's exits then reach the last chunk's code in one state, checked once.
	 */
	__u64 tail = ((captured - 1) & (TLSTAP_CHUNK_SIZE - 1)) + 1;
	__u64 whole = (captured - 1) / TLSTAP_CHUNK_SIZE;
	enum chunk_result result = CHUNK_SENT;
	__u64 off = 0;

	if (!captured || captured > TLSTAP_MAX_CALL_BYTES)
		return;
	/* Opaque to the compiler, which would otherwise compare the loop's offsets with captured. */
	barrier_var(whole);
	/* A loss only ends the loop: the verifier checks its accounting once, not once per chunk. */
	for (int i = 0; i < TLSTAP_MAX_CHUNKS - 1; i++) {
		if (i >= whole)
			break;
		/* 64-bit arithmetic keeps the verifier's bounds unsigned and exact. */
		off = (__u64)i * TLSTAP_CHUNK_SIZE;
		result = emit_chunk(head, buf, off, TLSTAP_CHUNK_SIZE, 0);
		if (result != CHUNK_SENT)
			break;
	}
	if (result == CHUNK_SENT) {
		off = captured - tail;
		result = emit_chunk(head, buf, off, tail, 1);
	}
	if (result != CHUNK_SENT)
		count_lost(result, off, captured);
}

/*
 * Sends a call's plaintext, len (> 0) bytes at args->buf, on the connection of (process,
 * args->ssl): st is lookup_conn's answer for it (0: none yet), fd the socket the call used (-1:
 * none seen). Numbers the call within its connection; sets *conn_fd to the connection's fd (-1:
 * none known) first.
 */
static __always_inline void emit_call_on(struct conn_state *st, __u64 pid_tgid, const struct call_args *args,
					 __u64 len, __s32 fd, __s32 *conn_fd, int shared_object)
{
	struct tlstap_data_event head = {};
	__u32 func = TLSTAP_COOKIE_FUNC(args->cookie);
	__u64 cap = max_call_bytes < TLSTAP_MAX_CALL_BYTES ? max_call_bytes : TLSTAP_MAX_CALL_BYTES;
	__u64 captured;
	__u32 seq;

	if (len > 0xffffffffULL)
		len = 0xffffffffULL;
	st = track_conn(st, pid_tgid, args->ssl, args->cookie, fd);
	*conn_fd = st ? st->fd : -1;
	if (st) {
		if (!st->announced)
			return; /* not (yet) a connection --port/--host asked for */
		seq = next_seq(st, shared_object);
	} else {
		/*
		 * The connection map refused the entry: the plaintext still goes out, without a
		 * connection, unless an address filter needs the connection to decide.
		 */
		count(TLSTAP_CTR_UNTRACKED_CALLS, 1);
		if (address_filter_set())
			return;
		seq = 0;
	}
	count(TLSTAP_CTR_CALLS, 1);

	captured = len < cap ? len : cap;
	/*
	 * A copy the verifier knows nothing about: the paths that led here (each return convention,
	 * truncated or not) then reach the chunk loop in one state, checked once instead of per path.
	 */
	bpf_probe_read_kernel(&captured, sizeof(captured), &captured);
	fill_header(&head.h, TLSTAP_EVENT_DATA, pid_tgid, args->ssl, args->cookie, st ? st->id : 0);
	head.total_len = (__u32)len;
	head.truncated = (__u32)(len - captured);
	head.seq = seq;
	head.fd = st ? st->fd : fd;
	head.func = func;
	/* args->write, not is_write(func): a switch here doubles what the verifier checks. */
	head.dir = args->write ? TLSTAP_DIR_WRITE : TLSTAP_DIR_READ;
	head.flags = args->flags;
	emit_data(&head, args->buf, captured);
}

/*
 * emit_call_on with a lookup of its own, for return probes that keep their calls themselves
 * (keyed otherwise than by thread, as Go's per goroutine) and know the fd in args->fd. Their TLS
 * objects may be inside a read and a write at once (Go's), so call numbers are taken atomically.
 */
static __always_inline __attribute__((unused)) void emit_call(__u64 pid_tgid, const struct call_args *args, __u64 len)
{
	struct call_args call = *args;
	__s32 conn_fd;

	call.write = is_write(TLSTAP_COOKIE_FUNC(call.cookie));
	emit_call_on(lookup_conn(pid_tgid, call.ssl), pid_tgid, &call, len, call.fd, &conn_fd, 1);
}

/*
 * Remembers a data call's arguments until its return (finish_call), keyed by thread (pid_tgid).
 * out_len: the size_t * of the _ex functions, else 0; cookie: TLSTAP_COOKIE(file, func).
 */
static __always_inline void start_call(__u64 pid_tgid, __u64 ssl, __u64 buf, __u64 out_len, __u64 cookie)
{
	struct call_args args = {
		.ssl = ssl,
		.buf = buf,
		.out_len = out_len,
		.cookie = cookie,
		.fd = -1,
		.active = 1,
		.write = is_write(TLSTAP_COOKIE_FUNC(cookie)),
	};
	struct call_args *slot = bpf_map_lookup_elem(&inflight, &pid_tgid);

	if (!slot) {
		args.last_fd = -1;
		bpf_map_update_elem(&inflight, &pid_tgid, &args, BPF_ANY);
		return;
	}
	args.last_fd = slot->last_fd;
	args.last_ssl = slot->last_ssl;
	args.last_gen = slot->last_gen;
	/* The thread's last connection, unchanged since: its fd lets the syscall hook skip all checks. */
	if (ssl == args.last_ssl && args.last_gen == conn_gen)
		args.fd = args.last_fd;
	*slot = args;
}

/*
 * A call's entry: lifecycle functions act at once; data functions remember their arguments in
 * the thread's inflight entry (the connection is looked up once, at the return).
 */
static __always_inline int on_enter(struct pt_regs *ctx, __u64 cookie)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 func = TLSTAP_COOKIE_FUNC(cookie);
	void *ssl = (void *)PT_REGS_PARM1(ctx);
	void *buf = (void *)PT_REGS_PARM2(ctx);

	if (!wanted(pid_tgid))
		return 0;
	switch (func) {
	case TLSTAP_FUNC_SSL_SET_FD:
	case TLSTAP_FUNC_SSL_SET_RFD:
	case TLSTAP_FUNC_SSL_SET_WFD:
	case TLSTAP_FUNC_GNUTLS_SET_INT2:
		/* The second argument is the fd; it is a socket for every normal program. */
		find_conn(pid_tgid, (__u64)ssl, cookie, (__s32)(__u64)buf);
		return 0;
	case TLSTAP_FUNC_SSL_SHUTDOWN:
	case TLSTAP_FUNC_GNUTLS_BYE:
		end_conn(pid_tgid, (__u64)ssl, cookie, TLSTAP_REASON_SHUTDOWN);
		return 0;
	case TLSTAP_FUNC_SSL_FREE:
	case TLSTAP_FUNC_GNUTLS_DEINIT:
	case TLSTAP_FUNC_PR_CLOSE:
		end_conn(pid_tgid, (__u64)ssl, cookie, TLSTAP_REASON_FREE);
		return 0;
	}
	if (func >= TLSTAP_FUNC__DATA_COUNT)
		return 0;
	if (is_nspr(func) && !nspr_is_layered(ssl))
		return 0;
	start_call(pid_tgid, (__u64)ssl, (__u64)buf, is_ex(func) ? (__u64)PT_REGS_PARM4(ctx) : 0, cookie);
	return 0;
}

/* Kernels with attach cookies (5.15+): one entry program for every probe, the cookie names both. */
SEC("uprobe")
int BPF_KPROBE(probe_enter)
{
	return on_enter(ctx, bpf_get_attach_cookie(ctx));
}

/*
 * Kernels without attach cookies: one entry program per function (it knows its function), and
 * the file from the probe's address through probe_sites (see TLSTAP_FILE_AMBIGUOUS). At a
 * uprobe's handler the instruction pointer is the probed address on every architecture.
 */
static __always_inline int on_enter_func(struct pt_regs *ctx, __u32 func)
{
	struct tlstap_probe_site site = { .func = func, .page_offset = PT_REGS_IP(ctx) & TLSTAP_PAGE_OFFSET_MASK };
	__u32 *file = bpf_map_lookup_elem(&probe_sites, &site);

	return on_enter(ctx, TLSTAP_COOKIE(file ? *file : TLSTAP_FILE_AMBIGUOUS, func));
}

#define TLSTAP_ENTER_FUNC(n)                       \
	SEC("uprobe")                              \
	int BPF_KPROBE(probe_enter_##n)            \
	{                                          \
		return on_enter_func(ctx, n);      \
	}

TLSTAP_ENTER_FUNC(0)
TLSTAP_ENTER_FUNC(1)
TLSTAP_ENTER_FUNC(2)
TLSTAP_ENTER_FUNC(3)
TLSTAP_ENTER_FUNC(4)
TLSTAP_ENTER_FUNC(5)
TLSTAP_ENTER_FUNC(6)
TLSTAP_ENTER_FUNC(7)
TLSTAP_ENTER_FUNC(8)
TLSTAP_ENTER_FUNC(9)
TLSTAP_ENTER_FUNC(10)
TLSTAP_ENTER_FUNC(11)
TLSTAP_ENTER_FUNC(12)
TLSTAP_ENTER_FUNC(13)
TLSTAP_ENTER_FUNC(14)
TLSTAP_ENTER_FUNC(15)
TLSTAP_ENTER_FUNC(16)
TLSTAP_ENTER_FUNC(17)
TLSTAP_ENTER_FUNC(18)
_Static_assert(TLSTAP_FUNC__LIBRARY_COUNT == 19, "one probe_enter_N program per enum tlstap_func");

#include "go.bpf.h"

/* Whether fd is the socket the kernel already knows for the call's connection (fd_conns). */
static __always_inline int is_conn_fd(__u64 pid_tgid, __s32 fd, __u64 ssl)
{
	struct fd_key fk = { .pid = pid_tgid >> 32, .fd = fd };
	__u64 *owner = bpf_map_lookup_elem(&fd_conns, &fk);

	return owner && *owner == ssl;
}

/*
 * A socket syscall of a thread inside a TLS call tells the call's fd (the first argument).
 * Reads of other files (a library reading /dev/urandom, say) are not the connection. The
 * connection's known fd needs no look at the kernel's file table.
 */
static __always_inline void fd_io_in_call(__u64 pid_tgid, struct call_args *args, __s32 fd)
{
	if (fd == args->fd) {
		args->fd_seen = 1;
		return;
	}
	if (!args->fd_seen) {
		/* The first socket of the call; it replaces the connection's earlier fd, if any. */
		if (!is_conn_fd(pid_tgid, fd, args->ssl) && !fd_is_socket(fd))
			return;
		args->fd = fd;
		args->fd_seen = 1;
	} else if (fd_is_socket(fd)) {
		args->flags |= TLSTAP_FLAG_FD_CONFLICT;
	}
}

/*
 * Socket I/O of a memory-BIO process outside its TLS calls: a read is remembered as the
 * candidate of the thread's next SSL_read; a write right after a TLS call without an fd carries
 * that call's ciphertext, so its fd is the connection's.
 */
static __always_inline void fd_io_outside_call(__u64 pid_tgid, __s32 fd, int write, __u64 count)
{
	__u32 tgid = pid_tgid >> 32;
	struct pending_write *pending;
	__u64 ssl;

	if (!bio_seen || !bpf_map_lookup_elem(&bio_pids, &tgid))
		return;
	if (!write) {
		if (fd_is_socket(fd))
			bpf_map_update_elem(&bio_last_read, &pid_tgid, &fd, BPF_ANY);
		return;
	}
	pending = bpf_map_lookup_elem(&bio_pending_write, &pid_tgid);
	if (!pending)
		return;
	/* Too short to hold the call's ciphertext: another connection's bytes; the call's may follow. */
	if (count && count < pending->min_len)
		return;
	ssl = pending->ssl;
	bpf_map_delete_elem(&bio_pending_write, &pid_tgid);
	if (fd_is_socket(fd))
		find_conn(pid_tgid, ssl, 0, fd);
}

/* count: the bytes a write(2) or sendto(2) asks to send, 0 when unknown (writev, sendmsg, reads). */
static __always_inline void on_fd_io(__s32 fd, int write, __u64 count)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct call_args *args = bpf_map_lookup_elem(&inflight, &pid_tgid);

	go_fd_io(pid_tgid, fd);
	if (args && args->active)
		fd_io_in_call(pid_tgid, args, fd);
	else
		fd_io_outside_call(pid_tgid, fd, write, count);
}

/* close() of a connection's fd ends the connection. */
static __always_inline void on_close(__s32 fd)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct fd_key fk = { .pid = pid_tgid >> 32, .fd = fd };
	struct conn_key key = { .pid = fk.pid };
	struct conn_state *st;
	__u64 *ssl;

	ssl = bpf_map_lookup_elem(&fd_conns, &fk);
	if (!ssl)
		return;
	key.ssl = *ssl;
	bpf_map_delete_elem(&fd_conns, &fk);
	st = bpf_map_lookup_elem(&conns, &key);
	/* Only the fd the connection uses now: an older one may be closed after the switch. */
	if (st && st->fd == fk.fd)
		end_conn(pid_tgid, key.ssl, 0, TLSTAP_REASON_FD_CLOSED);
}

static __always_inline int is_write_syscall(__s32 nr)
{
	return nr == TLSTAP_NR_WRITE || nr == TLSTAP_NR_WRITEV || nr == TLSTAP_NR_SENDTO || nr == TLSTAP_NR_SENDMSG;
}

/* The byte count of write(fd, buf, count) and sendto(fd, buf, len, ...); 0 for the others. */
static __always_inline __u64 write_count(const struct syscall_enter *ctx)
{
	return ctx->nr == TLSTAP_NR_WRITE || ctx->nr == TLSTAP_NR_SENDTO ? ctx->args[2] : 0;
}

/* syscalls:sys_enter_{read,write,recvfrom,sendto,recvmsg,sendmsg,readv,writev}. */
SEC("tracepoint")
int syscall_fd_io(struct syscall_enter *ctx)
{
	on_fd_io((__s32)ctx->args[0], is_write_syscall(ctx->nr), write_count(ctx));
	return 0;
}

/* syscalls:sys_enter_close. */
SEC("tracepoint")
int syscall_close(struct syscall_enter *ctx)
{
	on_close((__s32)ctx->args[0]);
	return 0;
}

/* raw_syscalls:sys_enter, where per-syscall tracepoints are missing: every system call, picked by number. */
SEC("tracepoint")
int raw_syscall(struct syscall_enter *ctx)
{
	switch (ctx->nr) {
	case TLSTAP_NR_READ:
	case TLSTAP_NR_READV:
	case TLSTAP_NR_RECVFROM:
	case TLSTAP_NR_RECVMSG:
		on_fd_io((__s32)ctx->args[0], 0, 0);
		break;
	case TLSTAP_NR_WRITE:
	case TLSTAP_NR_WRITEV:
	case TLSTAP_NR_SENDTO:
	case TLSTAP_NR_SENDMSG:
		on_fd_io((__s32)ctx->args[0], 1, write_count(ctx));
		break;
	case TLSTAP_NR_CLOSE:
		on_close((__s32)ctx->args[0]);
		break;
	}
	return 0;
}

/* The format of the sched:sched_process_exit tracepoint is not needed: the current task exits. */
SEC("tracepoint")
int process_exit(void *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct conn_state none = { .fd = -1 };
	struct call_args *cut = bpf_map_lookup_elem(&inflight, &pid_tgid);

	/* A thread that exits inside a write (killed): what it was sending is never seen. */
	if (cut) {
		if (cut->active && cut->write)
			count(TLSTAP_CTR_EXIT_CUT_WRITES, 1);
		bpf_map_delete_elem(&inflight, &pid_tgid);
	}
	/* The whole process is gone when its leader thread exits. */
	if ((__u32)pid_tgid != tgid || !bpf_map_lookup_elem(&conn_pids, &tgid))
		return 0;
	bpf_map_delete_elem(&conn_pids, &tgid);
	emit_conn_event(TLSTAP_EVENT_PROCESS_EXIT, pid_tgid, 0, 0, &none, TLSTAP_REASON_NONE);
	return 0;
}

/* The number of bytes the call moved, or 0 when it failed. */
static __always_inline __u64 call_length(struct pt_regs *ctx, __u32 func, const struct call_args *args)
{
	int ret = (int)PT_REGS_RC(ctx);
	long sret = (long)PT_REGS_RC(ctx);
	__u64 len = 0;

	if (func == TLSTAP_FUNC_GNUTLS_RECV || func == TLSTAP_FUNC_GNUTLS_SEND)
		return sret > 0 ? (__u64)sret : 0;
	if (!is_ex(func))
		return ret > 0 ? (__u64)ret : 0;
	if (ret != 1 || !args->out_len)
		return 0;
	if (bpf_probe_read_user(&len, sizeof(len), (void *)args->out_len))
		return 0;
	return len;
}

/*
 * A call whose connection has no fd (a memory BIO): its process's socket I/O is followed from now
 * on, the thread's next socket write names the connection (its ciphertext), and a read's
 * candidate fd is the socket the thread read last. Returns the fd to learn, -1 for none.
 */
static __always_inline __s32 bio_call(__u64 pid_tgid, const struct call_args *args, __u64 len)
{
	struct pending_write pending = { .ssl = args->ssl, .min_len = args->write ? len : 0 };
	__u32 tgid = pid_tgid >> 32;
	__s32 *last_read;
	__u8 one = 1;

	bio_seen = 1;
	bpf_map_update_elem(&bio_pids, &tgid, &one, BPF_ANY);
	bpf_map_update_elem(&bio_pending_write, &pid_tgid, &pending, BPF_ANY);
	if (args->write)
		return -1;
	last_read = bpf_map_lookup_elem(&bio_last_read, &pid_tgid);
	return last_read ? *last_read : -1;
}

/*
 * The end of a data call that start_call remembered, of the thread pid_tgid, that moved len bytes
 * (0: it failed): looks the connection up (once), does the memory-BIO bookkeeping of a call
 * without an fd, and sends the plaintext (emit_call_on). Sets *conn_fd to the connection's fd
 * (-1: none known) first.
 */
static __always_inline void finish_call(__u64 pid_tgid, const struct call_args *args, __u64 len, __s32 *conn_fd)
{
	struct conn_state *st = lookup_conn(pid_tgid, args->ssl);
	__u32 tgid = pid_tgid >> 32;
	__s32 fd = args->fd;

	if (!args->fd_seen && (!st || st->fd < 0)) {
		/* No socket syscall inside, and no fd known. */
		fd = bio_call(pid_tgid, args, len);
	} else if (bio_seen && bpf_map_lookup_elem(&bio_pids, &tgid)) {
		/* The socket write after an earlier call without an fd no longer tells that call's fd. */
		bpf_map_delete_elem(&bio_pending_write, &pid_tgid);
	}
	*conn_fd = st ? st->fd : -1;
	if (len)
		emit_call_on(st, pid_tgid, args, len, fd, conn_fd, 0);
}

/*
 * The return of a data function, whatever entry program ran: the cookie (function and file)
 * comes from the entry, so this one program serves kernels with and without attach cookies.
 */
SEC("uretprobe")
int BPF_KRETPROBE(probe_return)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct call_args *found = bpf_map_lookup_elem(&inflight, &pid_tgid);
	struct call_args args;
	/* Read before the connection is looked up: a change after this voids what is kept below. */
	__u64 gen = conn_gen;
	__u32 func;

	if (!found || !found->active)
		return 0;
	args = *found;
	found->active = 0;
	func = TLSTAP_COOKIE_FUNC(args.cookie);
	if (func >= TLSTAP_FUNC__DATA_COUNT)
		return 0;
	finish_call(pid_tgid, &args, call_length(ctx, func, &args), &found->last_fd);
	found->last_ssl = args.ssl;
	found->last_gen = gen;
	return 0;
}
