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

/* Payload bytes per ring-buffer record. A per-CPU map value is limited to 32 KiB. */
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

/* Functions probed. The return value convention follows from the function. */
enum tlstap_func {
	TLSTAP_FUNC_SSL_READ = 0,     /* int SSL_read(SSL *, void *, int): bytes read, <= 0 failure */
	TLSTAP_FUNC_SSL_WRITE = 1,    /* int SSL_write(SSL *, const void *, int) */
	TLSTAP_FUNC_SSL_READ_EX = 2,  /* int SSL_read_ex(SSL *, void *, size_t, size_t *readbytes): 1 success */
	TLSTAP_FUNC_SSL_WRITE_EX = 3, /* int SSL_write_ex(SSL *, const void *, size_t, size_t *written) */
	TLSTAP_FUNC__COUNT = 4,
};

enum tlstap_dir {
	TLSTAP_DIR_READ = 0,  /* plaintext the process received */
	TLSTAP_DIR_WRITE = 1, /* plaintext the process sent */
};

enum tlstap_event_kind {
	TLSTAP_EVENT_DATA = 1,
};

/* Per-CPU counters; user space sums them over CPUs. */
enum tlstap_counter {
	TLSTAP_CTR_RINGBUF_DROPPED_EVENTS = 0, /* records the ring buffer had no room for */
	TLSTAP_CTR_RINGBUF_DROPPED_BYTES = 1,  /* payload bytes of the calls those records belonged to */
	TLSTAP_CTR_READ_FAULTS = 2,            /* records lost because user memory could not be read */
	TLSTAP_CTR_READ_FAULT_BYTES = 3,       /* payload bytes lost that way */
	TLSTAP_CTR_CALLS = 4,                  /* successful calls seen at return */
	TLSTAP_CTR__COUNT = 5,
};

/*
 * One record in the ring buffer: a chunk of one call's plaintext. All chunks
 * of a call share tid and ts_ns and arrive in chunk_offset order.
 */
struct tlstap_data_event {
	__u64 ts_ns;        /* CLOCK_MONOTONIC at the call's return */
	__u64 ssl;          /* the TLS object (SSL *) the call was made on */
	__u64 cookie;       /* TLSTAP_COOKIE(file_index, func) of the probe */
	__u32 kind;         /* enum tlstap_event_kind */
	__u32 pid;          /* process (tgid) */
	__u32 tid;          /* thread */
	__u32 uid;
	__u32 total_len;    /* bytes the call moved, captured or not */
	__u32 truncated;    /* bytes of the call beyond the per-call cap, never copied */
	__u32 chunk_offset; /* offset of data[0] within the call */
	__u32 chunk_len;    /* bytes in data[] */
	__u8 func;          /* enum tlstap_func */
	__u8 dir;           /* enum tlstap_dir */
	__u8 pad[6];
	char comm[TLSTAP_COMM_LEN];
	__u8 data[];
};

#endif /* TLSTAP_H */
