/* Round-trip target: a counter that checks a memory pattern and logs one line every 100 ms.
 * Each line: pid from the raw getpid syscall, the count, and whether 16 MiB of patterned heap is intact. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	size_t size = 16 << 20;
	unsigned char *buf = malloc(size);
	int fd;
	long n;

	if (argc < 2 || !buf)
		return 2;
	for (size_t i = 0; i < size; i++)
		buf[i] = (unsigned char)(i * 7 + 3);
	fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0)
		return 3;
	for (n = 0;; n++) {
		int ok = 1;
		for (size_t i = 0; i < size; i += 4096 * 37 + 11)
			if (buf[i] != (unsigned char)(i * 7 + 3))
				ok = 0;
		dprintf(fd, "pid=%ld n=%ld mem=%s\n", syscall(SYS_getpid), n, ok ? "ok" : "CORRUPT");
		usleep(100000);
	}
}
