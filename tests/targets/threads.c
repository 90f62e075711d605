/* N threads (argv[1], default 4) each incrementing its own counter; main prints the sum every 20 ms. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static volatile unsigned long counters[64];

static void *worker(void *arg)
{
	long i = (long)arg;
	for (;;) {
		counters[i]++;
		if ((counters[i] & 0xfff) == 0)
			usleep(100);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 4;
	pthread_t t;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (long i = 0; i < n && i < 64; i++)
		pthread_create(&t, NULL, worker, (void *)i);
	printf("ready\n");
	for (;;) {
		unsigned long s = 0;
		for (int i = 0; i < 64; i++)
			s += counters[i];
		printf("sum=%lu\n", s);
		usleep(20000);
	}
}
