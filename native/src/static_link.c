// SPDX-License-Identifier: GPL-2.0-only
// What Debian's static libbpf.a and libelf.a need to be linked into a shared object, the addon.
// Their objects are compiled for executables (position-independent executables, not -fPIC):
// - libbpf's default printer reads libc's `stderr` PC-relatively, which only an executable can (the
//   variable is copied into it); here a hidden `stderr` of the addon's own, set from libc's at load,
//   takes that reference.
// - libelf keeps its error number in a thread-local variable reached with the local-exec TLS model,
//   which only an executable may use: x86_64's linker refuses it in a shared object, and arm64's
//   links it silently into one that writes to the wrong thread-local memory once dlopen()ed. libelf's
//   error functions are defined again here, position-independent. These objects come first on the
//   link line, so the linker never takes elf_error.o from the archive (it would fail on a duplicate
//   symbol if libelf ever needed more from that member). The messages are libelf's (elfutils 0.188),
//   by error number; test/packaging.test.ts checks them against the msgstr table of the libelf.a of
//   each architecture we link.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>

#define HIDDEN __attribute__((visibility("hidden")))

HIDDEN FILE *stderr;

__attribute__((constructor)) static void set_stderr(void)
{
	FILE **libc_stderr = dlsym(RTLD_DEFAULT, "stderr");

	stderr = libc_stderr ? *libc_stderr : NULL;
}

static const char *const messages[] = {
	"no error",
	"unknown error",
	"unknown version",
	"unknown type",
	"invalid `Elf' handle",
	"invalid size of source operand",
	"invalid size of destination operand",
	"invalid encoding",
	"out of memory",
	"invalid file descriptor",
	"invalid ELF file data",
	"invalid operation",
	"ELF version not set",
	"invalid command",
	"offset out of range",
	"invalid fmag field in archive header",
	"invalid archive file",
	"descriptor is not for an archive",
	"no index available",
	"cannot read data from file",
	"cannot write data to file",
	"invalid binary class",
	"invalid section index",
	"invalid operand",
	"invalid section",
	"invalid command",
	"executable header not created first",
	"file descriptor disabled",
	"archive/member file descriptor mismatch",
	"offset out of range",
	"cannot manipulate null section",
	"data/scn mismatch",
	"invalid section header",
	"invalid data",
	"unknown data encoding",
	"section `sh_size' too small for data",
	"invalid section alignment",
	"invalid section entry size",
	"update() for write on read-only file",
	"no such file",
	"only relocatable files can contain section groups",
	"program header only allowed in executables, shared objects, and core files",
	"file has no program header",
	"invalid offset",
	"invalid section type",
	"invalid section flags",
	"section does not contain compressed data",
	"section contains compressed data",
	"unknown compression type",
	"cannot compress data",
	"cannot decompress data",
};

enum { NO_ERROR = 0, UNKNOWN_ERROR = 1, COUNT = sizeof(messages) / sizeof(messages[0]) };

static _Thread_local int last_error;

// The last error number, which is then cleared (libelf.h).
HIDDEN int elf_errno(void)
{
	int error = last_error;
	last_error = NO_ERROR;
	return error;
}

// libelf's internal setter: numbers it does not know become "unknown error".
HIDDEN void __libelf_seterrno(int value)
{
	last_error = value >= 0 && value < COUNT ? value : UNKNOWN_ERROR;
}

// 0: the last error's message, NULL if none; -1: the last error's message; else that number's.
HIDDEN const char *elf_errmsg(int error)
{
	if (error == 0)
		return last_error != NO_ERROR ? messages[last_error] : NULL;
	if (error == -1)
		return messages[last_error];
	return error > 0 && error < COUNT ? messages[error] : messages[UNKNOWN_ERROR];
}
