/* Descriptors of several kinds: a pipe holding 21 bytes, an eventfd (count 7), an epoll watching it, a signalfd
 * (SIGUSR2|SIGTERM), a timerfd (interval 7 s). Prints "ready r w efd ep sfd tfd" and sleeps. */
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

int main(void)
{
	int p[2];
	pipe(p);
	write(p[1], "pipe-bytes-in-flight\n", 21);
	int efd = eventfd(7, 0);
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0xfeed };
	epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR2);
	sigaddset(&m, SIGTERM);
	sigprocmask(SIG_BLOCK, &m, NULL);
	int sfd = signalfd(-1, &m, 0);
	int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
	struct itimerspec its = { .it_interval = { 7, 0 }, .it_value = { 100, 0 } };
	timerfd_settime(tfd, 0, &its, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d %d %d %d %d %d\n", p[0], p[1], efd, ep, sfd, tfd);
	for (;;)
		pause();
}
