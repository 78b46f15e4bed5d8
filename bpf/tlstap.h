/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one definition of what crosses from the BPF program to user space.
 * Included by bpf/tlstap.bpf.c and by native/ (which reports sizeof/offsetof
 * to TypeScript, where src/events/layout.ts mirrors it and a test checks the mirror).
 */
#ifndef TLSTAP_H
#define TLSTAP_H

#include <linux/types.h>

#define TLSTAP_COMM_LEN 16

/* Payload bytes per ring-buffer record at most: the largest of the sizes a record is reserved at. */
#define TLSTAP_CHUNK_SIZE 16384
/* Bound of the copy loop; the per-call cap can never exceed CHUNK_SIZE * MAX_CHUNKS (4 MiB). */
#define TLSTAP_MAX_CHUNKS 256
#define TLSTAP_MAX_CALL_BYTES (TLSTAP_CHUNK_SIZE * TLSTAP_MAX_CHUNKS)
#define TLSTAP_DEFAULT_CALL_BYTES (1024 * 1024)

/* Number of threads that may be inside a probed call at once (LRU: a thread killed mid-call ages out). */
#define TLSTAP_MAX_INFLIGHT 16384

/*
 * Attach cookie: the low byte is the probed function, the next 24 bits the
 * index of the probed file in the attach plan, so every event names its file.
 */
#define TLSTAP_COOKIE(file_index, func) ((((__u64)(file_index)) << 8) | (__u64)(func))
#define TLSTAP_COOKIE_FUNC(cookie) ((__u32)((cookie) & 0xff))
#define TLSTAP_COOKIE_FILE(cookie) ((__u32)((cookie) >> 8))
/*
 * Kernels without attach cookies (before 5.15) run one entry program per probed function, which
 * knows its function; the file comes from the probe's address: a file maps at page-aligned
 * offsets, so the address's offset within a 4 KiB page equals the probed function's file offset's.
 * User space fills (function, page offset) -> file index for every probe of the plan; two files
 * whose same function shares a page offset cannot be told apart this way and get this index.
 */
#define TLSTAP_FILE_AMBIGUOUS 0xffffff
#define TLSTAP_PAGE_OFFSET_MASK 0xfff

/* A key of the probe_sites map (kernels without attach cookies). */
struct tlstap_probe_site {
	__u32 func;        /* enum tlstap_func */
	__u32 page_offset; /* the function's file offset & TLSTAP_PAGE_OFFSET_MASK */
};

/* Number of LRU entries for connections and fd -> connection lookups. */
#define TLSTAP_MAX_CONNS 65536

/* Functions probed. The return value convention follows from the function. */
enum tlstap_func {
	/* OpenSSL, BoringSSL, LibreSSL */
	TLSTAP_FUNC_SSL_READ = 0,     /* int SSL_read(SSL *, void *, int): bytes read, <= 0 failure */
	TLSTAP_FUNC_SSL_WRITE = 1,    /* int SSL_write(SSL *, const void *, int) */
	TLSTAP_FUNC_SSL_READ_EX = 2,  /* int SSL_read_ex(SSL *, void *, size_t, size_t *readbytes): 1 success */
	TLSTAP_FUNC_SSL_WRITE_EX = 3, /* int SSL_write_ex(SSL *, const void *, size_t, size_t *written) */
	/* GnuTLS: ssize_t gnutls_record_recv(gnutls_session_t, void *, size_t): bytes, <= 0 failure */
	TLSTAP_FUNC_GNUTLS_RECV = 4,
	TLSTAP_FUNC_GNUTLS_SEND = 5,
	/* NSS: PRInt32 PR_Read(PRFileDesc *, void *, PRInt32), PR_Recv(fd, buf, amount, flags, timeout) */
	TLSTAP_FUNC_PR_READ = 6,
	TLSTAP_FUNC_PR_WRITE = 7,
	TLSTAP_FUNC_PR_RECV = 8,
	TLSTAP_FUNC_PR_SEND = 9,
	/* Lifecycle: entry probes only. */
	TLSTAP_FUNC_SSL_SET_FD = 10,  /* int SSL_set_fd(SSL *, int fd) */
	TLSTAP_FUNC_SSL_SET_RFD = 11,
	TLSTAP_FUNC_SSL_SET_WFD = 12,
	TLSTAP_FUNC_SSL_SHUTDOWN = 13, /* int SSL_shutdown(SSL *) */
	TLSTAP_FUNC_SSL_FREE = 14,     /* void SSL_free(SSL *) */
	TLSTAP_FUNC_GNUTLS_SET_INT2 = 15, /* void gnutls_transport_set_int2(session, int recv_fd, int send_fd) */
	TLSTAP_FUNC_GNUTLS_BYE = 16,
	TLSTAP_FUNC_GNUTLS_DEINIT = 17,
	TLSTAP_FUNC_PR_CLOSE = 18,     /* PRStatus PR_Close(PRFileDesc *) */
	/* Go's crypto/tls, probed by its own programs (bpf/go.bpf.h): (c *Conn) Read/Write(b []byte) (int, error) */
	TLSTAP_FUNC_GO_READ = 19,
	TLSTAP_FUNC_GO_WRITE = 20,
	TLSTAP_FUNC__COUNT = 21,
};

/* The TLS libraries' functions (0 .. this - 1): each has a probe_enter_N program for kernels without attach cookies. */
#define TLSTAP_FUNC__LIBRARY_COUNT 19

/* Library functions below this number carry plaintext (the rest only tell about the connection); Go's two do too. */
#define TLSTAP_FUNC__DATA_COUNT 10

/*
 * NSPR's public struct PRFileDesc { methods, secret, lower, higher, dtor; PRDescIdentity identity; }:
 * on 64-bit, identity is at byte 40. NSPR's own bottom layer has identity PR_NSPR_IO_LAYER (0);
 * a PR_* call on a descriptor whose top layer is 0 is plain file or socket I/O, not TLS.
 */
#define TLSTAP_PRFILEDESC_IDENTITY_OFFSET 40

enum tlstap_dir {
	TLSTAP_DIR_READ = 0,  /* plaintext the process received */
	TLSTAP_DIR_WRITE = 1, /* plaintext the process sent */
};

enum tlstap_event_kind {
	TLSTAP_EVENT_DATA = 1,       /* struct tlstap_data_event */
	TLSTAP_EVENT_CONN_OPEN = 2,  /* struct tlstap_conn_event: first sighting of a connection */
	TLSTAP_EVENT_CONN_FD = 3,    /* its fd (and so its addresses) became known, or changed */
	TLSTAP_EVENT_CONN_CLOSE = 4, /* SSL_shutdown, SSL_free or close() of its fd */
	TLSTAP_EVENT_PROCESS_EXIT = 5, /* struct tlstap_conn_event, conn_id 0: a process with connections exited */
	TLSTAP_EVENT_COUNTERS = 6,     /* struct tlstap_counters_event: written by user space at the end of a --record */
};

/* Why a connection's addresses are unknown, or what closed it (struct tlstap_conn_event.reason). */
enum tlstap_conn_reason {
	TLSTAP_REASON_NONE = 0,
	TLSTAP_REASON_NO_FD = 1,         /* no socket syscall seen inside its TLS calls (memory BIO?) */
	TLSTAP_REASON_NOT_SOCKET = 2,    /* the fd is not a socket */
	TLSTAP_REASON_NOT_INET = 3,      /* a socket, but not AF_INET/AF_INET6 (e.g. AF_UNIX) */
	TLSTAP_REASON_FD_UNREADABLE = 4, /* the fd was closed or could not be read */
	TLSTAP_REASON_SHUTDOWN = 5,      /* close: SSL_shutdown */
	TLSTAP_REASON_FREE = 6,          /* close: SSL_free */
	TLSTAP_REASON_FD_CLOSED = 7,     /* close: close() of its fd */
	TLSTAP_REASON_NO_BTF = 8,        /* no kernel BTF: the socket's addresses cannot be read */
};

/* struct tlstap_data_event.flags */
#define TLSTAP_FLAG_FD_CONFLICT 1 /* two different socket fds were used inside one call */

/* Per-CPU counters; user space sums them over CPUs. */
enum tlstap_counter {
	TLSTAP_CTR_RINGBUF_DROPPED_EVENTS = 0, /* records the ring buffer had no room for */
	TLSTAP_CTR_RINGBUF_DROPPED_BYTES = 1,  /* payload bytes of the calls those records belonged to */
	TLSTAP_CTR_READ_FAULTS = 2,            /* records lost because user memory could not be read */
	TLSTAP_CTR_READ_FAULT_BYTES = 3,       /* payload bytes lost that way */
	TLSTAP_CTR_CALLS = 4,                  /* successful calls seen at return */
	TLSTAP_CTR_UNTRACKED_CALLS = 5,        /* calls whose connection state could not be stored: sent without one, or dropped under --port/--host */
	TLSTAP_CTR_READ_FAULT_CALLS = 6,       /* calls of which not one byte could be read: no record of them exists */
	TLSTAP_CTR_EXIT_CUT_WRITES = 7,        /* writes in flight when their thread exited (killed inside SSL_write) */
	TLSTAP_CTR__COUNT = 8,
};

/*
 * Every record starts with this header; `kind` says which struct follows.
 */
struct tlstap_event_header {
	__u64 ts_ns;   /* CLOCK_MONOTONIC: a call's return, or the connection event */
	__u64 ssl;     /* the TLS object (SSL *) */
	__u64 cookie;  /* TLSTAP_COOKIE(file_index, func) of the probe, 0 for syscall hooks */
	__u64 conn_id; /* unique within a run; 0 when the call has no connection */
	__u32 kind;    /* enum tlstap_event_kind */
	__u32 pid;     /* process (tgid) */
	__u32 tid;     /* thread */
	__u32 uid;
	char comm[TLSTAP_COMM_LEN];
};

/*
 * A chunk of one call's plaintext. All chunks of a call share tid and ts_ns and
 * arrive in chunk_offset order; calls of one connection carry increasing seq.
 * The record may be longer than data[chunk_len]: the ring buffer takes records of a few
 * constant sizes (bpf/tlstap.bpf.c, DATA_CLASSES), the bytes past the chunk are zero.
 */
struct tlstap_data_event {
	struct tlstap_event_header h;
	__u32 total_len;    /* bytes the call moved, captured or not */
	__u32 truncated;    /* bytes of the call beyond the per-call cap, never copied */
	__u32 chunk_offset; /* offset of data[0] within the call */
	__u32 chunk_len;    /* bytes in data[] */
	__u32 seq;          /* the call's number within its connection, from 0 */
	__s32 fd;           /* the socket's fd, -1 when unknown */
	__u8 func;          /* enum tlstap_func */
	__u8 dir;           /* enum tlstap_dir */
	__u8 flags;         /* TLSTAP_FLAG_* */
	__u8 pad[5];
	__u8 data[];
};

/* A connection's lifecycle: open, fd learnt, close. Addresses in network byte order. */
struct tlstap_conn_event {
	struct tlstap_event_header h;
	__s32 fd;        /* -1 when unknown */
	__u16 family;    /* AF_INET (2), AF_INET6 (10), 0 when unknown */
	__u16 lport;     /* host byte order */
	__u16 rport;     /* host byte order */
	__u8 reason;     /* enum tlstap_conn_reason */
	__u8 pad;
	__u32 seq;       /* for close: how many calls the connection had */
	__u8 laddr[16];  /* IPv4 in the first 4 bytes */
	__u8 raddr[16];
};

/*
 * The kernel counters at the end of a capture, summed over CPUs. User space appends it to a
 * --record file, so a replay reports the losses the live capture had.
 */
struct tlstap_counters_event {
	struct tlstap_event_header h;
	__u64 values[TLSTAP_CTR__COUNT]; /* indexed by enum tlstap_counter */
};

#endif /* TLSTAP_H */
