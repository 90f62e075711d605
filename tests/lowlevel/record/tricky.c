/* Recording target: tricky comm, a deleted mapped file, a file name with spaces, and fds of every special kind
 * (eventfd, epoll, inotify, signalfd, timerfd). Prints "ready" and sleeps. Used by record_proc.py only. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/tmp";
	char path[4096];
	prctl(PR_SET_NAME, "a) b");

	snprintf(path, sizeof(path), "%s/deleted file", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ftruncate(fd, 8192);
	void *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	((char *)p)[0] = 1;
	unlink(path);

	snprintf(path, sizeof(path), "%s/with spaces (x) .bin", dir);
	int fd2 = open(path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0600);
	ftruncate(fd2, 4096);
	mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd2, 0);
	lseek(fd2, 123, SEEK_SET);

	int efd = eventfd(5, EFD_NONBLOCK);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u64 = 0x1234 };
	epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
	int in = inotify_init1(0);
	inotify_add_watch(in, dir, IN_CREATE | IN_DELETE);
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	sigaddset(&m, SIGTERM);
	sigprocmask(SIG_BLOCK, &m, NULL);
	int sfd = signalfd(-1, &m, SFD_NONBLOCK);
	int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
	struct itimerspec its = { .it_interval = { 7, 0 }, .it_value = { 100, 500 } };
	timerfd_settime(tfd, 0, &its, NULL);
	signal(SIGPIPE, SIG_IGN);
	kill(getpid(), SIGUSR1); /* stays pending: blocked */

	void *big = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	memset(big, 1, 4096);
	printf("ready %d %d %d %d %d %d %d\n", fd, fd2, efd, ep, in, sfd, tfd);
	fflush(stdout);
	for (;;)
		pause();
}
