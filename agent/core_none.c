// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * agent/core.h without a capture core: every capture request fails with ENOSYS and a message
 * that says so. The file, directory and /proc requests do not need the core.
 */
#include "core.h"

#include <errno.h>

const char *tlstap_core_error(struct tlstap_core *c)
{
	(void)c;
	return "this tlstap-agent was built without the capture core (file and /proc requests only)";
}

int tlstap_core_open(struct tlstap_core **out)
{
	*out = NULL;
	return -ENOSYS;
}

int tlstap_core_set_global(struct tlstap_core *c, const char *s, const char *n, const void *v, size_t z)
{
	(void)c, (void)s, (void)n, (void)v, (void)z;
	return -ENOSYS;
}

int tlstap_core_set_map_max_entries(struct tlstap_core *c, const char *m, uint32_t e)
{
	(void)c, (void)m, (void)e;
	return -ENOSYS;
}

int tlstap_core_use_uprobe_multi(struct tlstap_core *c, const char *p)
{
	(void)c, (void)p;
	return -ENOSYS;
}

int tlstap_core_load(struct tlstap_core *c)
{
	(void)c;
	return -ENOSYS;
}

int tlstap_core_attach_uprobe(struct tlstap_core *c, const char *p, const char *f, uint64_t o, int pid, int r,
			      uint64_t k)
{
	(void)c, (void)p, (void)f, (void)o, (void)pid, (void)r, (void)k;
	return -ENOSYS;
}

int tlstap_core_attach_uprobe_multi(struct tlstap_core *c, const char *p, const char *f, const uint64_t *o,
				    const uint64_t *k, uint32_t n, int pid, int r)
{
	(void)c, (void)p, (void)f, (void)o, (void)k, (void)n, (void)pid, (void)r;
	return -ENOSYS;
}

int tlstap_core_attach_tracepoint(struct tlstap_core *c, const char *p, const char *cat, const char *n)
{
	(void)c, (void)p, (void)cat, (void)n;
	return -ENOSYS;
}

int tlstap_core_ring_open(struct tlstap_core *c, const char *m, tlstap_core_record_fn fn, void *ctx)
{
	(void)c, (void)m, (void)fn, (void)ctx;
	return -ENOSYS;
}

int tlstap_core_ring_fd(struct tlstap_core *c)
{
	(void)c;
	return -ENOSYS;
}

int tlstap_core_consume(struct tlstap_core *c)
{
	(void)c;
	return -ENOSYS;
}

int tlstap_core_sum_percpu(struct tlstap_core *c, const char *m, uint64_t *s, size_t max)
{
	(void)c, (void)m, (void)s, (void)max;
	return -ENOSYS;
}

int tlstap_core_detach_all(struct tlstap_core *c)
{
	(void)c;
	return 0;
}

void tlstap_core_close(struct tlstap_core *c)
{
	(void)c;
}
