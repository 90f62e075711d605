/* Timers: ITIMER_REAL 5 s / 3 s, a POSIX CLOCK_MONOTONIC timer (SIGRTMIN+1, sival 0x1234, 7 s interval) and a
 * SIGEV_THREAD_ID one (SIGUSR2 to the main thread, 100 s), all signals blocked. Prints "ready <id1> <id2>". */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int main(void)
{
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	struct itimerval it = { .it_interval = { 3, 0 }, .it_value = { 5, 0 } };
	setitimer(ITIMER_REAL, &it, NULL);
	timer_t t1, t2;
	struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 1 };
	ev.sigev_value.sival_ptr = (void *)0x1234;
	timer_create(CLOCK_MONOTONIC, &ev, &t1);
	struct itimerspec ts = { .it_interval = { 7, 0 }, .it_value = { 50, 0 } };
	timer_settime(t1, 0, &ts, NULL);
	struct sigevent ev2 = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGUSR2 };
	ev2._sigev_un._tid = syscall(SYS_gettid);
	timer_create(CLOCK_REALTIME, &ev2, &t2);
	struct itimerspec ts2 = { .it_value = { 100, 0 } };
	timer_settime(t2, 0, &ts2, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %ld %ld\n", (long)t1, (long)t2);
	for (;;)
		pause();
}
