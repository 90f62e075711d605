/* Shared memory objects: a memfd "testmemfd" (3 pages written, a hole, F_SEAL_SHRINK) open on a fd at pos 5 and
 * mapped shared; a 16-page MAP_SHARED|MAP_ANONYMOUS area with two pages written. Prints "ready fd shm memfdmap". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void)
{
	int fd = memfd_create("testmemfd", MFD_ALLOW_SEALING);
	ftruncate(fd, 8 * 4096);
	char *m = mmap(NULL, 8 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	memset(m, 'a', 4096);
	memset(m + 4096, 'b', 4096);
	memset(m + 6 * 4096, 'g', 4096);
	fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK);
	lseek(fd, 5, SEEK_SET);
	char *shm = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	memset(shm + 2 * 4096, 'x', 4096);
	memset(shm + 9 * 4096, 'y', 4096);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d %lx %lx\n", fd, (unsigned long)shm, (unsigned long)m);
	for (;;)
		pause();
}
