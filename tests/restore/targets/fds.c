/* Round-trip target for descriptors: a pipe with queued bytes, an eventfd with a count, a signalfd for SIGUSR1,
 * a periodic timerfd and an epoll instance watching the pipe (data 42) and the eventfd (data 43). Every 100 ms
 * it logs which epoll targets are ready, without consuming anything. Fds: 3/4 pipe, 5 eventfd, 6 signalfd,
 * 7 timerfd, 8 epoll. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int p[2], efd, sfd, tfd, ep, log;
	sigset_t mask;
	struct itimerspec its = { { 10, 0 }, { 10, 0 } };
	struct epoll_event ev;
	long n;

	if (argc < 2)
		return 2;
	if (pipe(p) || p[0] != 3)
		return 3;
	if (write(p[1], "hello-pipe", 10) != 10)
		return 4;
	efd = eventfd(5, 0);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK);
	tfd = timerfd_create(CLOCK_MONOTONIC, 0);
	timerfd_settime(tfd, 0, &its, NULL);
	ep = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.u64 = 42;
	epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
	ev.data.u64 = 43;
	epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
	log = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (efd != 5 || sfd != 6 || tfd != 7 || ep != 8)
		return 5;
	for (n = 0;; n++) {
		struct epoll_event out[4];
		int k = epoll_wait(ep, out, 4, 0);
		unsigned long sum = 0;
		for (int i = 0; i < k; i++)
			sum += out[i].data.u64;
		dprintf(log, "pid=%ld n=%ld ready=%d sum=%lu\n", syscall(SYS_getpid), n, k, sum);
		usleep(100000);
	}
}
