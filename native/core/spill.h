// A bounded first-in first-out store of byte blocks between a producer that must not wait (the
// ring-buffer poller) and a consumer that goes at its own pace (the outputs). Blocks are held in
// memory up to one limit, then appended to a 0600 file in a private temporary directory up to a
// second limit. The file is unlinked and its directory removed as soon as it is open, so nothing
// is left on disk when the process ends, however it ends. Plain C, no N-API: any front end can use it.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tlstap_spill;

struct tlstap_spill_limits {
	uint64_t memory_bytes; // held in memory at most
	uint64_t file_bytes;   // held in the file at most (0: no file)
	const char *dir;       // where the private directory is made; NULL: $TMPDIR, else /tmp
};

struct tlstap_spill_stats {
	uint64_t bytes;           // held now, memory and file
	uint64_t file_bytes;      // of which in the file
	uint64_t peak_bytes;      // the most held at once
	uint64_t peak_file_bytes; // the most held in the file at once
	uint64_t delay_ns;        // how long the oldest block held has waited (0 when empty)
	uint64_t max_delay_ns;    // the longest a block waited, over the whole run
	uint64_t full_waits;      // pushes refused because the spill was full
	uint64_t lost_blocks;     // blocks the file could not give back (a read error)
	uint64_t lost_bytes;      // their bytes
	uint64_t lost_tags;       // the sum of their tags (the records they held, for the poller)
	int file_error;           // errno of the last failure to make or write the file, 0 if none
};

// A new, empty spill; NULL (errno set) when out of memory. The file is made on first need.
struct tlstap_spill *tlstap_spill_new(const struct tlstap_spill_limits *limits);
// Frees everything; no push or pop may be running. Blocks held by reference (tlstap_spill_push_ref)
// are not the spill's to free: take them out first.
void tlstap_spill_free(struct tlstap_spill *spill);
// Copies a block (not empty) in. 0, or -ENOSPC when it does not fit now (nothing taken: try
// again later), -EINVAL for an empty block.
int tlstap_spill_push(struct tlstap_spill *spill, const void *data, size_t len, uint32_t tag);
// Takes a block (not empty) by reference, without copying it while memory has room: the spill then
// holds data, charged `charge` bytes (what the buffer costs, len or more) against its memory limit,
// until tlstap_spill_pop_ref gives `owner` back. 1: held by reference; 0: copied to the file instead
// (data and owner are the caller's again); -ENOSPC and -EINVAL as tlstap_spill_push.
int tlstap_spill_push_ref(struct tlstap_spill *spill, void *data, size_t len, size_t charge, void *owner, uint32_t tag);
// Waits up to timeout_ms for a block and returns its length (0: none came, or closed and empty).
size_t tlstap_spill_wait(struct tlstap_spill *spill, int timeout_ms);
// Takes the oldest block: its length, 0 when empty, or -errno when the file could not be read
// (the block is then lost, and counted in the stats' lost_* fields). A block held by reference
// comes back without a copy: *owner is its owner (dst is not used). Any other block is copied into
// dst (cap bytes at least tlstap_spill_wait's length; one thread at a time takes blocks out, and
// the copy is made without holding up the producer), and *owner is NULL.
long tlstap_spill_pop_ref(struct tlstap_spill *spill, void *dst, size_t cap, uint32_t *tag, void **owner);
// No more pushes: waiters wake, and tlstap_spill_wait returns 0 once the spill is empty.
void tlstap_spill_close(struct tlstap_spill *spill);
// Whether tlstap_spill_close was called and every block was taken.
int tlstap_spill_done(struct tlstap_spill *spill);
// A consistent snapshot of the counters.
void tlstap_spill_get_stats(struct tlstap_spill *spill, struct tlstap_spill_stats *out);

#ifdef __cplusplus
}
#endif
