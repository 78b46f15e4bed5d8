/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The load-time settings (`const volatile`, written by user space before load) and the maps user
 * space reads, shared by tlstap.bpf.c and floor.bpf.c so that one session code drives both.
 * For BPF programs only.
 */
#ifndef TLSTAP_SETTINGS_BPF_H
#define TLSTAP_SETTINGS_BPF_H

#include "tlstap.h"

const volatile __u32 targ_pid = 0; /* 0: every process */
const volatile __u32 targ_uid = 0;
const volatile __u8 filter_uid = 0;
const volatile char targ_comm[TLSTAP_COMM_LEN] = {};
const volatile __u8 filter_comm = 0;
const volatile __u32 max_call_bytes = TLSTAP_DEFAULT_CALL_BYTES;
/* Wake the reader only once this much is waiting; it also polls on a short timer. */
const volatile __u32 wakeup_bytes = 256 * 1024;
/* ...and at most once per this many ns: less than the ring takes to fill at the fastest rate. */
const volatile __u32 wakeup_gap_ns = 1000000;
/* --port / --host: keep only connections with a matching local or remote side. */
const volatile __u16 targ_port = 0;
const volatile __u16 targ_host_family = 0;
const volatile __u8 targ_host[16] = {};
/* Possible CPUs (libbpf_num_possible_cpus), for connection ids unique over the per-CPU counts. */
const volatile __u32 nr_cpus = 1;

/* (function, page offset) -> file index, for the per-function entry programs (TLSTAP_FILE_AMBIGUOUS). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tlstap_probe_site);
	__type(value, __u32);
} probe_sites SEC(".maps");

/* Size set by user space before load (--ring-buffer). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

/* Per-CPU counters (enum tlstap_counter); user space sums them over CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TLSTAP_CTR__COUNT);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

#endif /* TLSTAP_SETTINGS_BPF_H */
