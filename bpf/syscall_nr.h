/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The system call numbers the raw_syscalls:sys_enter hook picks out, per architecture
 * (the kernel's UAPI: asm/unistd_64.h on x86_64, asm-generic/unistd.h on arm64). Kernels
 * without per-syscall tracepoints (no CONFIG_FTRACE_SYSCALLS: Android GKI) still have
 * raw_syscalls, which fire for every system call with its number. test/syscall-nr.test.ts
 * checks these against the UAPI headers.
 */
#ifndef TLSTAP_SYSCALL_NR_H
#define TLSTAP_SYSCALL_NR_H

#if defined(__TARGET_ARCH_x86)
#define TLSTAP_NR_READ 0
#define TLSTAP_NR_WRITE 1
#define TLSTAP_NR_CLOSE 3
#define TLSTAP_NR_READV 19
#define TLSTAP_NR_WRITEV 20
#define TLSTAP_NR_SENDTO 44
#define TLSTAP_NR_RECVFROM 45
#define TLSTAP_NR_SENDMSG 46
#define TLSTAP_NR_RECVMSG 47
#elif defined(__TARGET_ARCH_arm64)
#define TLSTAP_NR_CLOSE 57
#define TLSTAP_NR_READ 63
#define TLSTAP_NR_WRITE 64
#define TLSTAP_NR_READV 65
#define TLSTAP_NR_WRITEV 66
#define TLSTAP_NR_SENDTO 206
#define TLSTAP_NR_RECVFROM 207
#define TLSTAP_NR_SENDMSG 211
#define TLSTAP_NR_RECVMSG 212
#else
#error "tlstap knows the system call numbers of x86_64 and arm64 only"
#endif

#endif /* TLSTAP_SYSCALL_NR_H */
