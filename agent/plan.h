/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Recording on the device alone: running a plan the front end made into a --record file. */
#ifndef TLSTAP_AGENT_PLAN_H
#define TLSTAP_AGENT_PLAN_H

#include <signal.h>

/* Set by SIGINT, SIGTERM and SIGHUP. */
extern volatile sig_atomic_t agent_stop_signal;

/*
 * Checks the plan's files, runs its requests, writes the recording's prefix and header, then its
 * record frames until a signal or `duration` seconds (0: no limit). Returns the exit status.
 */
int plan_record(const char *plan_path, const char *record_path, unsigned long duration);

#endif
