/* Counter with N MiB (argv[1]) of malloc'd, touched memory; prints "n=<n>" every 100 ms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
	char *p = malloc(mib << 20);
	for (size_t i = 0; i < (mib << 20); i += 4096)
		p[i] = (char)(i >> 12);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (unsigned long n = 0;; n++) {
		printf("n=%lu\n", n);
		usleep(100000);
	}
}
