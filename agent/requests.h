/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Serving one request of protocol.h, and the ring buffer's record batches (TFRM frames). */
#ifndef TLSTAP_AGENT_REQUESTS_H
#define TLSTAP_AGENT_REQUESTS_H

#include "wire.h"

#include <stddef.h>
#include <stdint.h>

/* The agent's version (package.json's), set by scripts/build-agent.sh. */
#ifndef TLSTAP_AGENT_VERSION
#define TLSTAP_AGENT_VERSION "dev"
#endif

/* Runs a request payload; the result goes to out. Returns 0 or a negative errno; *bye is set by BYE. */
int request_run(const uint8_t *payload, size_t len, struct buf *out, uint32_t *op, int *bye);
/* The message of a failed request. */
const char *request_error(uint32_t op, int status);

/* Where TFRM frames go: stdout (live) or a recording file. */
void ring_output(int fd);
/* While polling: the fd that is readable when records wait (else -1), and the timer in ms (else -1). */
int ring_fd(void);
int ring_timeout_ms(void);
/* Hands waiting records on as frames; returns 0 or the first write error. */
int ring_service(void);
/*
 * The end of a recording: detaches every probe, writes every record left, then the kernel's
 * counters as one last record (as the front end ends a --record). Returns 0, or the write
 * error, or the error reading the ring buffer.
 */
int ring_finish(void);
/* Detaches every probe at once and releases the core; records still waiting are not read. */
void requests_release(void);

#endif
