/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one definition of the agent protocol (docs/agent.md): the byte stream between the tlstap
 * front end and tlstap-agent over the agent's stdin and stdout. src/remote/protocol.ts mirrors
 * these values and a test checks the mirror against this file.
 *
 * Every message is a frame with the same 16-byte header as the frames of a --record file
 * (docs/record-format.md): 4 ASCII marker bytes, then little-endian u32 payload length,
 * u32 field (request id, or record count for record frames), u32 CRC32 (zlib) of header
 * bytes 4..11 followed by the payload. Record batches travel as TFRM frames, byte for byte what
 * --record writes.
 */
#ifndef TLSTAP_AGENT_PROTOCOL_H
#define TLSTAP_AGENT_PROTOCOL_H

/* Version of this protocol; HELLO exchanges it and each side refuses another. */
#define TLSTAP_AGENT_PROTOCOL 1

#define TLSTAP_AGENT_FRAME_HEADER 16
/* Largest request payload the agent accepts (paths, settings, attach lists). */
#define TLSTAP_AGENT_MAX_REQUEST (1 << 20)
/* Largest payload of any frame (MAX_FRAME_PAYLOAD of the record format). */
#define TLSTAP_AGENT_MAX_PAYLOAD (64 << 20)
/* Most bytes one PREAD or READFILE answers with. */
#define TLSTAP_AGENT_MAX_READ (4 << 20)

/* Frame markers. */
#define TLSTAP_AGENT_MARK_REQUEST "TREQ"  /* front end -> agent; field = request id */
#define TLSTAP_AGENT_MARK_RESPONSE "TRSP" /* agent -> front end; field = the request's id */
#define TLSTAP_AGENT_MARK_RECORDS "TFRM"  /* agent -> front end; field = record count */
#define TLSTAP_AGENT_MARK_LOG "TLOG"      /* agent -> front end; field = level; payload = text */

/*
 * A request payload is a u32 op followed by its arguments; a response payload is an i32 status
 * (0, or a negative errno) followed by the result, or by a UTF-8 message when the status is negative.
 * Strings that end an argument list run to the end of the payload (no NUL).
 */
enum tlstap_agent_op {
	TLSTAP_AGENT_OP_HELLO = 1,    /* u32 protocol -> u32 protocol, JSON object */
	TLSTAP_AGENT_OP_STAT = 2,     /* u32 flags, path -> struct (TLSTAP_AGENT_STAT_SIZE bytes) */
	TLSTAP_AGENT_OP_PREAD = 3,    /* u64 offset, u32 length, path -> bytes (fewer only at end of file) */
	TLSTAP_AGENT_OP_READDIR = 4,  /* path -> entries: u8 type, u8 0, u16 name length, name */
	TLSTAP_AGENT_OP_READLINK = 5, /* path -> target */
	TLSTAP_AGENT_OP_READFILE = 6, /* u32 max, path -> u32 flags (bit 0: more than max), bytes */
	TLSTAP_AGENT_OP_CLOCK = 7,    /* -> u64 CLOCK_MONOTONIC ns, u64 CLOCK_REALTIME ns, read back to back */
	/* Capture, served by the shared native core (native/core/tlstap_core.h). */
	TLSTAP_AGENT_OP_SET_GLOBAL = 16,     /* u16 section len, section, u16 name len, name, value */
	TLSTAP_AGENT_OP_SET_MAP_MAX = 17,    /* u32 entries, map name */
	TLSTAP_AGENT_OP_USE_MULTI = 18,      /* program name */
	TLSTAP_AGENT_OP_LOAD = 19,           /* (nothing) */
	TLSTAP_AGENT_OP_ATTACH_UPROBE = 20,  /* u64 offset, u64 cookie, i32 pid, u8 ret, u8 0, u16 prog len, prog, path -> u32 link */
	TLSTAP_AGENT_OP_ATTACH_MULTI = 21,   /* u32 count, i32 pid, u8 ret, u8 0, u16 prog len, prog, u64 offsets[count], u64 cookies[count], path -> u32 link */
	TLSTAP_AGENT_OP_ATTACH_TP = 22,      /* u16 prog len, prog, u16 category len, category, name -> u32 link */
	TLSTAP_AGENT_OP_START = 23,          /* u32 batch bytes, u32 timeout ms, ring map name: TFRM frames follow */
	TLSTAP_AGENT_OP_PAUSE = 24,          /* u8 paused */
	TLSTAP_AGENT_OP_COUNTERS = 25,       /* map name -> u64 sums[] */
	TLSTAP_AGENT_OP_DETACH = 26,         /* destroys every link; no record is made after the response */
	TLSTAP_AGENT_OP_STOP = 27,           /* drains the ring buffer: the last TFRM precedes the response */
	TLSTAP_AGENT_OP_SET_AUTOLOAD = 28,   /* u8 autoload, u8 0, program name */
	TLSTAP_AGENT_OP_UPDATE_ELEM = 29,    /* u16 map len, map, u32 key len, key, value */
	TLSTAP_AGENT_OP_BYE = 31,            /* releases everything, answers, exits 0 */
};

/* STAT flags. */
#define TLSTAP_AGENT_STAT_NOFOLLOW 1u

/* STAT result: u32 mode, uid, gid, nlink; u64 dev, ino, size; i64 mtime in ns; u64 rdev. */
#define TLSTAP_AGENT_STAT_SIZE 56

/*
 * A plan (docs/agent.md, "Recording on the device alone"): this magic, u32 version, u32 0, then a
 * THDR frame (the recording's JSON header, with the two placeholders below), TCHK frames (u64 size,
 * i64 mtime ns, u64 inode, path: the file must still be the one the plan was made for) and TREQ frames.
 */
#define TLSTAP_AGENT_PLAN_MAGIC "TLSTAPPL"
#define TLSTAP_AGENT_PLAN_VERSION 1
#define TLSTAP_AGENT_MARK_PLAN_HEADER "THDR"
#define TLSTAP_AGENT_MARK_PLAN_CHECK "TCHK"
#define TLSTAP_AGENT_PLAN_CREATED_AT "@CREATED_AT@"
#define TLSTAP_AGENT_PLAN_MONOTONIC_TO_WALL "@MONOTONIC_TO_WALL_NS@"
/* The recording it makes (docs/record-format.md: FILE_MAGIC, RECORD_FORMAT_VERSION). */
#define TLSTAP_AGENT_RECORD_MAGIC "TLSTAPRC"
#define TLSTAP_AGENT_RECORD_VERSION 1

/* READFILE flags. */
#define TLSTAP_AGENT_READFILE_TRUNCATED 1u

#endif
