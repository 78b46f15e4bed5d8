/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The file, directory and /proc requests: positional reads and listings under a root directory. */
#ifndef TLSTAP_AGENT_FILES_H
#define TLSTAP_AGENT_FILES_H

#include "wire.h"

#include <stdint.h>

/* Every path a request names is looked up under this directory ("" for /); set once at start. */
void files_set_root(const char *root);
const char *files_root(void);

/* Each appends its result to out and returns 0, or returns a negative errno. */
int files_stat(const char *path, uint32_t flags, struct buf *out);
int files_pread(const char *path, uint64_t offset, uint32_t length, struct buf *out);
int files_readdir(const char *path, struct buf *out);
int files_readlink(const char *path, struct buf *out);
int files_readfile(const char *path, uint32_t max, struct buf *out);
/* Closes the files kept open between reads. */
void files_close_all(void);

#endif
