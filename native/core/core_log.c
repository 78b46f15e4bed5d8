// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libbpf's messages: a bounded tail in memory (and stderr when TLSTAP_LIBBPF_DEBUG is set), so a
 * failed load can carry the verifier's last words in its error. libbpf's printer is process-wide. */
#include "tlstap_core.h"

#include <bpf/libbpf.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAIL_BYTES 8192

static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;
static char log_tail[LOG_TAIL_BYTES];
static size_t log_len;
static int log_to_stderr;

/* Appends text, keeping the last LOG_TAIL_BYTES bytes. */
static void keep(const char *text, size_t n)
{
	pthread_mutex_lock(&log_mutex);
	if (n >= LOG_TAIL_BYTES) {
		memcpy(log_tail, text + n - LOG_TAIL_BYTES, LOG_TAIL_BYTES);
		log_len = LOG_TAIL_BYTES;
	} else {
		if (log_len + n > LOG_TAIL_BYTES) {
			size_t drop = log_len + n - LOG_TAIL_BYTES;
			memmove(log_tail, log_tail + drop, log_len - drop);
			log_len -= drop;
		}
		memcpy(log_tail + log_len, text, n);
		log_len += n;
	}
	pthread_mutex_unlock(&log_mutex);
}

static int print_to_tail(enum libbpf_print_level level, const char *format, va_list args)
{
	va_list copy;
	va_copy(copy, args);
	int needed = vsnprintf(NULL, 0, format, copy);
	va_end(copy);
	if (needed <= 0)
		return 0;
	/* One message can be a whole verifier log: format it whole, keep its end. */
	char *line = malloc((size_t)needed + 1);
	if (!line)
		return 0;
	vsnprintf(line, (size_t)needed + 1, format, args);
	if (log_to_stderr)
		fputs(line, stderr);
	if (level != LIBBPF_DEBUG || log_to_stderr)
		keep(line, (size_t)needed);
	free(line);
	return 0;
}

void tlstap_core_init(void)
{
#if LIBBPF_MAJOR_VERSION < 1
	/* libbpf 0.x returns error pointers unless told otherwise; the core checks for NULL and errno. */
	libbpf_set_strict_mode((enum libbpf_strict_mode)(LIBBPF_STRICT_CLEAN_PTRS | LIBBPF_STRICT_DIRECT_ERRS));
#endif
	log_to_stderr = getenv("TLSTAP_LIBBPF_DEBUG") != NULL;
	libbpf_set_print(print_to_tail);
}

size_t tlstap_core_log(char *out, size_t size)
{
	pthread_mutex_lock(&log_mutex);
	size_t n = log_len < size ? log_len : size - 1;
	if (size > 0) {
		memcpy(out, log_tail + log_len - n, n);
		out[n] = '\0';
	}
	pthread_mutex_unlock(&log_mutex);
	return n;
}

void tlstap_core_log_clear(void)
{
	pthread_mutex_lock(&log_mutex);
	log_len = 0;
	pthread_mutex_unlock(&log_mutex);
}
