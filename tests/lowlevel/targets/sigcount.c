/* Counts SIGRTMIN deliveries (real-time signals queue, so none may be lost); prints "count=<n>" every 10 ms. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t count;
static void on_rt(int sig) { (void)sig; count++; }

int main(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_rt;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGRTMIN, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");
	for (;;) {
		printf("count=%d\n", (int)count);
		usleep(10000);
	}
}
