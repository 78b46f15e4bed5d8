// See spill.h. One mutex guards the queue and the file; the producer holds it to copy one block in
// (a memcpy, or a pwrite that the page cache takes), the consumer only to take one out of the queue
// and to count it (its bytes are copied out, or read back, without the lock). It inherits
// priority: the producer (a real-time poller) waiting for it lends its priority to a consumer that
// was preempted while holding it, instead of waiting behind every ordinary thread that runs.
#define _GNU_SOURCE
#include "spill.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

// Free space the file leaves on its filesystem, whatever its limit.
#define SPILL_DISK_RESERVE (256ull << 20)
// Consumed file ranges are given back to the filesystem in steps of this size.
#define SPILL_PUNCH_STEP (16ull << 20)

struct block {
	struct block *next;
	uint8_t *data; // NULL: in the file at file_offset
	void *owner;   // not NULL: data is held by reference (tlstap_spill_push_ref), charged `charge`
	size_t charge;
	uint64_t file_offset;
	size_t len;
	uint32_t tag;
	uint64_t pushed_ns;
};

struct tlstap_spill {
	pthread_mutex_t lock;
	pthread_cond_t ready;
	struct block *head, *tail;
	struct tlstap_spill_limits limits;
	char dir[PATH_MAX];
	int fd;             // -1 until the first block goes to the file
	uint64_t write_off; // where the next file block goes
	uint64_t read_off;  // where the oldest file block starts
	uint64_t punched;   // the file is a hole below this offset
	uint64_t memory_bytes;
	int closed;
	struct tlstap_spill_stats stats;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct tlstap_spill *tlstap_spill_new(const struct tlstap_spill_limits *limits)
{
	struct tlstap_spill *spill = calloc(1, sizeof(*spill));
	if (!spill)
		return NULL;
	pthread_mutexattr_t lock_attr;
	pthread_mutexattr_init(&lock_attr);
	pthread_mutexattr_setprotocol(&lock_attr, PTHREAD_PRIO_INHERIT);
	pthread_mutex_init(&spill->lock, &lock_attr);
	pthread_mutexattr_destroy(&lock_attr);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&spill->ready, &attr);
	pthread_condattr_destroy(&attr);
	spill->limits = *limits;
	const char *dir = limits->dir ? limits->dir : getenv("TMPDIR");
	snprintf(spill->dir, sizeof(spill->dir), "%s", dir && *dir ? dir : "/tmp");
	spill->limits.dir = spill->dir;
	spill->fd = -1;
	return spill;
}

void tlstap_spill_free(struct tlstap_spill *spill)
{
	if (!spill)
		return;
	for (struct block *b = spill->head, *next; b; b = next) {
		next = b->next;
		if (!b->owner)
			free(b->data);
		free(b);
	}
	if (spill->fd >= 0)
		close(spill->fd);
	pthread_cond_destroy(&spill->ready);
	pthread_mutex_destroy(&spill->lock);
	free(spill);
}

// Makes the file: a private 0700 directory, a 0600 file in it, both removed at once (the open
// descriptor keeps the file's space until it is closed). 0 or -errno.
static int open_file(struct tlstap_spill *spill)
{
	char dir[PATH_MAX], path[PATH_MAX + 8];
	if (snprintf(dir, sizeof(dir), "%s/tlstap-spill-XXXXXX", spill->dir) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	if (!mkdtemp(dir))
		return -errno;
	snprintf(path, sizeof(path), "%s/spill", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	int err = fd < 0 ? -errno : 0;
	if (fd >= 0)
		unlink(path);
	rmdir(dir);
	if (err)
		return err;
	spill->fd = fd;
	return 0;
}

// Whether the filesystem keeps its reserve after len more bytes.
static int disk_has_room(int fd, size_t len)
{
	struct statvfs vfs;
	if (fstatvfs(fd, &vfs) != 0)
		return 1; // unknown: the write itself will say
	return (uint64_t)vfs.f_bavail * vfs.f_frsize >= len + SPILL_DISK_RESERVE;
}

// Writes (writing) or reads len bytes at offset, whatever the calls return short; 0 or -errno.
static int io_all(int fd, uint8_t *p, size_t len, uint64_t offset, int writing)
{
	while (len > 0) {
		ssize_t n = writing ? pwrite(fd, p, len, (off_t)offset) : pread(fd, p, len, (off_t)offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		offset += (uint64_t)n;
	}
	return 0;
}

// Puts the block in the file; 0 or -errno (-ENOSPC when over the limit or the disk reserve).
static int to_file(struct tlstap_spill *spill, struct block *b, const void *data)
{
	if (spill->stats.file_bytes + b->len > spill->limits.file_bytes)
		return -ENOSPC;
	if (spill->fd < 0) {
		int err = open_file(spill);
		if (err) {
			spill->stats.file_error = -err;
			return -ENOSPC;
		}
	}
	if (!disk_has_room(spill->fd, b->len))
		return -ENOSPC;
	int err = io_all(spill->fd, (uint8_t *)data, b->len, spill->write_off, 1); /* only read from */
	if (err) {
		spill->stats.file_error = -err;
		return -ENOSPC;
	}
	b->file_offset = spill->write_off;
	spill->write_off += b->len;
	spill->stats.file_bytes += b->len;
	if (spill->stats.file_bytes > spill->stats.peak_file_bytes)
		spill->stats.peak_file_bytes = spill->stats.file_bytes;
	return 0;
}

// Queues a block: by reference (owner not NULL) or by a copy in memory while memory has room, else
// by a copy in the file. 1 held by reference, 0 copied, or -errno.
static int push(struct tlstap_spill *spill, void *data, size_t len, size_t charge, void *owner, uint32_t tag)
{
	if (len == 0)
		return -EINVAL; // a length of 0 means "no block" to tlstap_spill_wait
	struct block *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->len = len;
	b->tag = tag;
	pthread_mutex_lock(&spill->lock);
	int err = 0, held;
	// Memory while it has room, else the file; the queue keeps the order across both.
	if (owner && spill->memory_bytes + charge <= spill->limits.memory_bytes) {
		b->data = data;
		b->owner = owner;
		b->charge = charge;
		spill->memory_bytes += charge;
	} else if (!owner && spill->memory_bytes + len <= spill->limits.memory_bytes && (b->data = malloc(len)) != NULL) {
		memcpy(b->data, data, len);
		b->charge = len;
		spill->memory_bytes += len;
	} else {
		err = to_file(spill, b, data);
	}
	if (err) {
		spill->stats.full_waits++;
		pthread_mutex_unlock(&spill->lock);
		free(b);
		return err;
	}
	b->pushed_ns = now_ns();
	if (spill->tail)
		spill->tail->next = b;
	else
		spill->head = b;
	spill->tail = b;
	spill->stats.bytes += len;
	if (spill->stats.bytes > spill->stats.peak_bytes)
		spill->stats.peak_bytes = spill->stats.bytes;
	/* Read before the unlock: the delivery thread may take (and free) b at once after it. */
	held = b->owner != NULL;
	pthread_cond_signal(&spill->ready);
	pthread_mutex_unlock(&spill->lock);
	return held;
}

int tlstap_spill_push(struct tlstap_spill *spill, const void *data, size_t len, uint32_t tag)
{
	int ret = push(spill, (void *)data, len, len, NULL, tag); /* only read from */
	return ret < 0 ? ret : 0;
}

int tlstap_spill_push_ref(struct tlstap_spill *spill, void *data, size_t len, size_t charge, void *owner, uint32_t tag)
{
	if (!owner || charge < len)
		return -EINVAL;
	return push(spill, data, len, charge, owner, tag);
}

size_t tlstap_spill_wait(struct tlstap_spill *spill, int timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&spill->lock);
	while (!spill->head && !spill->closed) {
		if (pthread_cond_timedwait(&spill->ready, &spill->lock, &until) == ETIMEDOUT)
			break;
	}
	size_t len = spill->head ? spill->head->len : 0;
	pthread_mutex_unlock(&spill->lock);
	return len;
}

// The file's consumed start goes back to the filesystem: all of it once the file is empty,
// else in SPILL_PUNCH_STEP holes below the oldest block.
static void give_back(struct tlstap_spill *spill)
{
	if (spill->stats.file_bytes == 0) {
		if (spill->write_off > 0 && ftruncate(spill->fd, 0) == 0)
			spill->write_off = spill->read_off = spill->punched = 0;
		return;
	}
	if (spill->read_off - spill->punched >= SPILL_PUNCH_STEP &&
	    fallocate(spill->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)spill->punched,
		      (off_t)(spill->read_off - spill->punched)) == 0)
		spill->punched = spill->read_off;
}

long tlstap_spill_pop_ref(struct tlstap_spill *spill, void *dst, size_t cap, uint32_t *tag, void **owner)
{
	*owner = NULL;
	pthread_mutex_lock(&spill->lock);
	struct block *b = spill->head;
	if (!b || (!b->owner && b->len > cap)) {
		pthread_mutex_unlock(&spill->lock);
		return b ? -EMSGSIZE : 0;
	}
	spill->head = b->next;
	if (!spill->head)
		spill->tail = NULL;
	if (b->data)
		spill->memory_bytes -= b->charge;
	pthread_mutex_unlock(&spill->lock);

	// The block is this thread's alone now, so its bytes are copied out without the lock: the
	// producer never waits for this copy or read. Its file range stays counted in file_bytes until
	// the read is done, so the file is not truncated and written again under it meanwhile.
	long ret = (long)b->len;
	int err = 0;
	if (b->owner)
		*owner = b->owner;
	else if (b->data)
		memcpy(dst, b->data, b->len);
	else
		err = io_all(spill->fd, dst, b->len, b->file_offset, 0);

	pthread_mutex_lock(&spill->lock);
	if (!b->data) {
		spill->stats.file_bytes -= b->len;
		spill->read_off = b->file_offset + b->len;
		give_back(spill);
		if (err) {
			spill->stats.file_error = -err;
			spill->stats.lost_blocks++;
			spill->stats.lost_bytes += b->len;
			spill->stats.lost_tags += b->tag;
			ret = err;
		}
	}
	spill->stats.bytes -= b->len;
	uint64_t waited = now_ns() - b->pushed_ns;
	if (waited > spill->stats.max_delay_ns)
		spill->stats.max_delay_ns = waited;
	*tag = b->tag;
	pthread_mutex_unlock(&spill->lock);
	if (!b->owner)
		free(b->data);
	free(b);
	return ret;
}

void tlstap_spill_close(struct tlstap_spill *spill)
{
	pthread_mutex_lock(&spill->lock);
	spill->closed = 1;
	pthread_cond_broadcast(&spill->ready);
	pthread_mutex_unlock(&spill->lock);
}

int tlstap_spill_done(struct tlstap_spill *spill)
{
	pthread_mutex_lock(&spill->lock);
	int done = spill->closed && !spill->head;
	pthread_mutex_unlock(&spill->lock);
	return done;
}

void tlstap_spill_get_stats(struct tlstap_spill *spill, struct tlstap_spill_stats *out)
{
	pthread_mutex_lock(&spill->lock);
	*out = spill->stats;
	out->delay_ns = spill->head ? now_ns() - spill->head->pushed_ns : 0;
	pthread_mutex_unlock(&spill->lock);
}
