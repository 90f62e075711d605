/* A main thread that sleeps and a helper thread that counts (as a driver's helper thread would work): prints
 * "ready <counter address> <helper tid>" once both run. The counter moves only while the helper runs. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile unsigned long counter;
static volatile long helper_tid;

static void *helper(void *arg)
{
	(void)arg;
	helper_tid = syscall(SYS_gettid);
	for (;;) {
		counter++;
		usleep(1000);
	}
	return NULL;
}

int main(void)
{
	pthread_t t;
	setvbuf(stdout, NULL, _IOLBF, 0);
	pthread_create(&t, NULL, helper, NULL);
	while (!helper_tid || counter < 2)
		usleep(1000);
	printf("ready %lx %ld\n", (unsigned long)&counter, helper_tid);
	for (;;)
		sleep(1);
}
