/* An unlinked file (argv[1]) still open on fd 3 at offset 5 and mapped read-only; prints "ready" and sleeps. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0640);
	for (int i = 0; i < 3000; i++)
		dprintf(fd, "line %04d of the ghost\n", i);
	char *m = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, fd, 0);
	(void)m[0];
	lseek(fd, 5, SEEK_SET);
	unlink(argv[1]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", fd);
	for (;;)
		pause();
}
