/* Memory patterns for the dump tests: an 8 MiB malloc'd buffer with a per-page pattern, a 1 TiB MAP_NORESERVE
 * area with 3 written pages and one page only read (mapped to the zero page), a PROT_NONE page holding data.
 * Prints "ready <buf> <big> <none>" (hex) and sleeps. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void)
{
	size_t n = 8 << 20;
	uint64_t *buf = aligned_alloc(4096, n);
	for (size_t i = 0; i < n / 8; i++)
		buf[i] = (i / 512) * 2654435761u + 7;
	size_t big_len = 1ULL << 40;
	char *big = mmap(NULL, big_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	memset(big, 0xa1, 4096);
	memset(big + (1ULL << 39), 0xb2, 4096);
	memset(big + big_len - 4096, 0xc3, 4096);
	volatile char sink = big[1ULL << 30]; /* read only: the zero page */
	(void)sink;
	char *none = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(none, 0xd4, 4096);
	mprotect(none, 4096, PROT_NONE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %lx %lx %lx\n", (unsigned long)buf, (unsigned long)big, (unsigned long)none);
	for (;;)
		pause();
}
