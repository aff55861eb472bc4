// SPDX-License-Identifier: GPL-2.0
/*
 * atomic-write DEV OFFSET LEN BYTE
 *
 * One O_DIRECT write of LEN bytes, each BYTE, at byte OFFSET of DEV, asked
 * for as an atomic write (RWF_ATOMIC: the device gets all of it or none).
 * Prints "ok" and exits 0 if all LEN bytes were written; otherwise prints
 * "error NAME" (EINVAL, EIO, ...; the number if the name is not known
 * here) or "short N" and exits 1. Exits 2 on bad arguments. For
 * tests/44-atomic.sh; the guest's image builds it statically.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef RWF_ATOMIC
#define RWF_ATOMIC 0x00000040 /* Linux 6.11 and later; older libc headers lack it */
#endif

static const char *errno_name(int e)
{
	switch (e) {
	case EINVAL: return "EINVAL";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EIO: return "EIO";
	case ENOSPC: return "ENOSPC";
	case EPERM: return "EPERM";
	case ENOMEM: return "ENOMEM";
	case EAGAIN: return "EAGAIN";
	default: return NULL;
	}
}

static int number(const char *s, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno == 0 && end != s && *end == '\0' && s[0] != '-';
}

int main(int argc, char **argv)
{
	unsigned long long off, len, byte;
	struct iovec iov;
	const char *name;
	void *buf;
	ssize_t n;
	int fd;

	if (argc != 5 || !number(argv[2], &off) || !number(argv[3], &len) ||
	    !number(argv[4], &byte) || len == 0 || len > (1ULL << 30) || byte > 255) {
		fprintf(stderr, "usage: atomic-write DEV OFFSET LEN BYTE\n");
		return 2;
	}
	fd = open(argv[1], O_RDWR | O_DIRECT);
	if (fd < 0) {
		perror(argv[1]);
		return 2;
	}
	if (posix_memalign(&buf, 4096, len)) {
		fprintf(stderr, "atomic-write: no memory for %llu bytes\n", len);
		return 2;
	}
	memset(buf, (int)byte, len);
	iov.iov_base = buf;
	iov.iov_len = len;
	n = pwritev2(fd, &iov, 1, (off_t)off, RWF_ATOMIC);
	if (n == (ssize_t)len) {
		printf("ok\n");
		return 0;
	}
	if (n >= 0) {
		printf("short %zd\n", n);
		return 1;
	}
	name = errno_name(errno);
	if (name)
		printf("error %s\n", name);
	else
		printf("error %d\n", errno);
	return 1;
}
