/* Keeps creating short-lived and long-lived threads as fast as it can (a seize race target). */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *shortlived(void *arg) { (void)arg; return NULL; }
static void *longlived(void *arg) { (void)arg; for (;;) pause(); return NULL; }

int main(void)
{
	pthread_t t;
	unsigned long n = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");
	for (;;) {
		if (pthread_create(&t, NULL, (n % 64 == 0 && n < 64 * 40) ? longlived : shortlived, NULL) == 0)
			pthread_detach(t);
		n++;
	}
}
