// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "files.h"

#include "protocol.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char root[PATH_MAX];

/*
 * Files read by PREAD stay open for the next reads: looking up symbols takes hundreds of small
 * reads of one file. The entry is keyed by path, so the reads of one lookup see one file even if
 * the path is replaced meanwhile (the front end compares identities from STAT).
 */
#define OPEN_FILES 16
static struct {
	char *path;
	int fd;
	unsigned long used;
} open_files[OPEN_FILES];
static unsigned long use_clock;

void files_set_root(const char *dir)
{
	size_t n = strlen(dir);
	while (n > 0 && dir[n - 1] == '/')
		n--;
	if (n >= sizeof(root))
		n = sizeof(root) - 1;
	memcpy(root, dir, n);
	root[n] = '\0';
}

const char *files_root(void)
{
	return root[0] ? root : "/";
}

/* The path under the root; the request's path must be absolute. */
static int full_path(const char *path, char *out)
{
	if (path[0] != '/')
		return -EINVAL;
	size_t r = strlen(root), p = strlen(path);
	if (r + p >= PATH_MAX)
		return -ENAMETOOLONG;
	memcpy(out, root, r);
	memcpy(out + r, path, p + 1);
	return 0;
}

int files_stat(const char *path, uint32_t flags, struct buf *out)
{
	char full[PATH_MAX];
	struct stat st;
	int err = full_path(path, full);
	if (err)
		return err;
	if ((flags & TLSTAP_AGENT_STAT_NOFOLLOW ? lstat(full, &st) : stat(full, &st)) != 0)
		return -errno;
	buf_add32(out, st.st_mode);
	buf_add32(out, st.st_uid);
	buf_add32(out, st.st_gid);
	buf_add32(out, (uint32_t)st.st_nlink);
	buf_add64(out, st.st_dev);
	buf_add64(out, st.st_ino);
	buf_add64(out, (uint64_t)st.st_size);
	buf_add64(out, (uint64_t)((int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec));
	buf_add64(out, st.st_rdev);
	return 0;
}

static int open_cached(const char *path, int *fd)
{
	int victim = 0;
	for (int i = 0; i < OPEN_FILES; i++) {
		if (open_files[i].path && strcmp(open_files[i].path, path) == 0) {
			open_files[i].used = ++use_clock;
			*fd = open_files[i].fd;
			return 0;
		}
		if (open_files[i].used < open_files[victim].used)
			victim = i;
	}
	char full[PATH_MAX];
	int err = full_path(path, full);
	if (err)
		return err;
	int f = open(full, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -errno;
	char *copy = strdup(path);
	if (!copy) {
		close(f);
		return -ENOMEM;
	}
	if (open_files[victim].path) {
		close(open_files[victim].fd);
		free(open_files[victim].path);
	}
	open_files[victim].path = copy;
	open_files[victim].fd = f;
	open_files[victim].used = ++use_clock;
	*fd = f;
	return 0;
}

void files_close_all(void)
{
	for (int i = 0; i < OPEN_FILES; i++) {
		if (!open_files[i].path)
			continue;
		close(open_files[i].fd);
		free(open_files[i].path);
		open_files[i].path = NULL;
		open_files[i].used = 0;
	}
}

int files_pread(const char *path, uint64_t offset, uint32_t length, struct buf *out)
{
	int fd;
	if (length > TLSTAP_AGENT_MAX_READ)
		return -EINVAL;
	if (offset > (uint64_t)INT64_MAX)
		return -EINVAL;
	int err = open_cached(path, &fd);
	if (err)
		return err;
	size_t start = out->len;
	uint8_t *at = buf_grow(out, length);
	if (!at && length)
		return -ENOMEM;
	size_t done = 0;
	while (done < length) {
		ssize_t r = pread(fd, at + done, length - done, (off_t)(offset + done));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			out->len = start;
			return -errno;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	out->len = start + done;
	return 0;
}

int files_readdir(const char *path, struct buf *out)
{
	char full[PATH_MAX];
	int err = full_path(path, full);
	if (err)
		return err;
	DIR *dir = opendir(full);
	if (!dir)
		return -errno;
	struct dirent *d;
	errno = 0;
	while ((d = readdir(dir)) != NULL) {
		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		size_t n = strlen(d->d_name);
		uint8_t head[2] = { d->d_type, 0 };
		buf_add(out, head, 2);
		buf_add16(out, (uint16_t)n);
		buf_add(out, d->d_name, n);
		if (out->len > TLSTAP_AGENT_MAX_PAYLOAD - 1024) {
			closedir(dir);
			return -E2BIG;
		}
	}
	err = errno ? -errno : 0;
	closedir(dir);
	return err;
}

int files_readlink(const char *path, struct buf *out)
{
	char full[PATH_MAX], target[PATH_MAX];
	int err = full_path(path, full);
	if (err)
		return err;
	ssize_t n = readlink(full, target, sizeof(target));
	if (n < 0)
		return -errno;
	if ((size_t)n == sizeof(target))
		return -ENAMETOOLONG;
	buf_add(out, target, (size_t)n);
	return 0;
}

int files_readfile(const char *path, uint32_t max, struct buf *out)
{
	char full[PATH_MAX];
	int err = full_path(path, full);
	if (err)
		return err;
	if (max > TLSTAP_AGENT_MAX_READ)
		max = TLSTAP_AGENT_MAX_READ;
	int fd = open(full, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* /proc files report size 0: read until end of file, one byte past max to know if there is more. */
	size_t flags_at = out->len;
	buf_add32(out, 0);
	size_t start = out->len;
	uint8_t *at = buf_grow(out, (size_t)max + 1);
	if (!at) {
		close(fd);
		return -ENOMEM;
	}
	size_t done = 0;
	while (done < (size_t)max + 1) {
		ssize_t r = read(fd, at + done, (size_t)max + 1 - done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			close(fd);
			out->len = flags_at;
			return err;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	close(fd);
	if (done > max) {
		put32(out->data + flags_at, TLSTAP_AGENT_READFILE_TRUNCATED);
		done = max;
	}
	out->len = start + done;
	return 0;
}
