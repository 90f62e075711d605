/* SIGTRAP caught and blocked: a forced single-step SIGTRAP would reset its handler if it were blocked then. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void on_trap(int sig) { (void)sig; }

int main(void)
{
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_trap;
	sigaction(SIGTRAP, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGTRAP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");
	for (;;)
		usleep(10000);
}
