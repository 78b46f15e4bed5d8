// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Destroying links. Each detach waits for the kernel's RCU grace period (~0.2 s), so they run on a
 * few parallel threads, which share the wait, instead of one after another. */
#include "core_internal.h"

#include <bpf/libbpf.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_WORKERS 32

struct tlstap_core_links {
	struct core_link *items;
	size_t count;
	atomic_size_t next;
};

static void release_link(struct core_link *l)
{
	if (l->link)
		bpf_link__destroy(l->link);
	else if (l->fd >= 0)
		close(l->fd);
}

static void *work(void *arg)
{
	struct tlstap_core_links *links = arg;
	for (size_t i = atomic_fetch_add(&links->next, 1); i < links->count; i = atomic_fetch_add(&links->next, 1))
		release_link(&links->items[i]);
	return NULL;
}

struct tlstap_core_links *tlstap_core_take_links(struct tlstap_core *c)
{
	if (!c || c->nlinks == 0)
		return NULL;
	struct tlstap_core_links *links = malloc(sizeof(*links));
	if (!links)
		return NULL;
	links->items = c->links;
	links->count = c->nlinks;
	atomic_init(&links->next, 0);
	c->links = NULL;
	c->nlinks = c->links_cap = 0;
	return links;
}

void tlstap_core_links_destroy(struct tlstap_core_links *links)
{
	if (!links)
		return;
	pthread_t workers[MAX_WORKERS];
	size_t started = 0;
	size_t want = links->count < MAX_WORKERS ? links->count - 1 : MAX_WORKERS;
	/* Small stacks: a worker only calls close(). No more threads: this one finishes the list. */
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	while (started < want && pthread_create(&workers[started], &attr, work, links) == 0)
		started++;
	pthread_attr_destroy(&attr);
	work(links);
	for (size_t i = 0; i < started; i++)
		pthread_join(workers[i], NULL);
	free(links->items);
	free(links);
}

int tlstap_core_detach_all(struct tlstap_core *c)
{
	if (!c)
		return 0;
	struct tlstap_core_links *links = tlstap_core_take_links(c);
	if (!links && c->nlinks) {
		/* No memory for the hand-over: one after another, here. */
		for (size_t i = 0; i < c->nlinks; i++)
			release_link(&c->links[i]);
		c->nlinks = 0;
	}
	tlstap_core_links_destroy(links);
	return 0;
}
