/* zdtm.h: the one protocol every C target follows (header-only).
 *
 * stdout (fd 1) is a file the harness reads.  A target sets up its state, then calls zdtm_ready(), which writes
 * "READY".  The harness dumps and restores it, then sends SIGUSR2 ("check yourself").  The target verifies its
 * own state and writes exactly one verdict line, "PASS" or "FAIL: why", then exits 0.  "INFO: ..." lines are
 * free-form notes.  Only raw write(2) is used, never stdio buffers, so nothing is lost or duplicated across a
 * dump.
 *
 * zdtm_wait_check() sleeps in 10 ms nanosleep steps until SIGUSR2 arrived: no sigsuspend (which would show a
 * temporary mask in SigBlk while the task is dumped) and no race between testing the flag and sleeping.
 */
#ifndef ZDTM_H
#define ZDTM_H
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t zdtm_check_requested;

static inline void zdtm_usr2(int sig)
{
	(void)sig;
	zdtm_check_requested = 1;
}

static inline void zdtm_say(const char *fmt, va_list ap)
{
	char buf[1024];
	int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);

	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	for (int off = 0; off < n;) {
		ssize_t w = write(1, buf + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += w;
	}
}

static inline void zdtm_msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	zdtm_say(fmt, ap);
	va_end(ap);
}

/* Install the default SIGUSR2 handler: no SA_RESTART, so it also interrupts blocking syscalls. */
static inline void zdtm_init(void)
{
	struct sigaction sa = { .sa_handler = zdtm_usr2 };

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR2, &sa, NULL)) {
		zdtm_msg("FAIL: sigaction(SIGUSR2): %s", strerror(errno));
		exit(1);
	}
}

static inline void zdtm_ready(void)
{
	zdtm_msg("READY");
}

static inline void zdtm_wait_check(void)
{
	while (!zdtm_check_requested) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static inline void zdtm_pass(void)
{
	zdtm_msg("PASS");
	exit(0);
}

static inline void zdtm_fail(const char *fmt, ...)
{
	char buf[900];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	zdtm_msg("FAIL: %s", buf);
	exit(1);
}

/* Errors while setting up are bugs of the target or the machine, not of criu-core: report them as such. */
#define zdtm_setup(cond, what)                                                   \
	do {                                                                     \
		if (!(cond))                                                     \
			zdtm_fail("setup: %s: %s", what, strerror(errno));       \
	} while (0)

/* A cheap 64-bit pattern for page i of a region tagged t. */
static inline unsigned long zdtm_pattern(unsigned long t, unsigned long i)
{
	unsigned long x = (t + 1) * 0x9e3779b97f4a7c15UL ^ (i * 0xbf58476d1ce4e5b9UL);

	x ^= x >> 31;
	return x ? x : 1;
}

#endif
