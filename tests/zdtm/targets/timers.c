/* timers.c MODE: interval timers and POSIX timers survive with their values, intervals, ids and clocks.
 *
 * itimers  ITIMER_REAL 1000 s / 500 s, ITIMER_VIRTUAL 2000 s / 300 s, ITIMER_PROF 3000 s / 400 s (far away, so
 *          they never fire: a delivery is a FAIL).  After restore: same intervals, values not above what was
 *          set and not below it by more than the time that passed (plus slack).  Then ITIMER_REAL is re-armed
 *          at 20 ms to show the alarm still works.
 * posix    five timers: REALTIME, MONOTONIC, BOOTTIME, PROCESS_CPUTIME_ID (SIGEV_SIGNAL with values), and one
 *          disarmed SIGEV_NONE; after restore the same ids exist with the same clocks (/proc/self/timers), the
 *          same intervals and sane values; a new timer gets a fresh id; a 10 ms timer still fires.
 * overrun  a 1 ms MONOTONIC timer whose signal (42) is blocked (so it overruns) for 500 ms before the dump:
 *          after restore, on unblocking, the pending timer signal is delivered (SI_TIMER, its si_value) and the
 *          timer keeps firing.  The overrun count itself is reported, not required: CRIU records it, but no
 *          kernel interface lets a restorer give it back to the new timer.
 */
#include "zdtm.h"
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/time.h>

static volatile int fired[65];
static volatile int overrun_seen = -1, code_seen, value_seen;

static void h(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	fired[sig]++;
	if (sig == 42 && overrun_seen < 0) {
		overrun_seen = si->si_overrun;
		code_seen = si->si_code;
		value_seen = si->si_value.sival_int;
	}
}

static double tv(struct timeval t)
{
	return t.tv_sec + t.tv_usec / 1e6;
}

static double ts(struct timespec t)
{
	return t.tv_sec + t.tv_nsec / 1e9;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return ts(t);
}

static void handle(int sig)
{
	struct sigaction sa = { .sa_sigaction = h, .sa_flags = SA_SIGINFO | SA_RESTART };

	zdtm_setup(!sigaction(sig, &sa, NULL), "sigaction");
}

static void itimers(void)
{
	static const int which[3] = { ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF };
	static const int val[3] = { 1000, 2000, 3000 }, ival[3] = { 500, 300, 400 };
	double t0;

	handle(SIGALRM);
	handle(SIGVTALRM);
	handle(SIGPROF);
	t0 = now();
	for (int i = 0; i < 3; i++) {
		struct itimerval it = { { ival[i], 0 }, { val[i], 0 } };

		zdtm_setup(!setitimer(which[i], &it, NULL), "setitimer");
	}
	zdtm_ready();
	zdtm_wait_check();
	for (int i = 0; i < 3; i++) {
		struct itimerval it;
		double elapsed = now() - t0;

		zdtm_setup(!getitimer(which[i], &it), "getitimer");
		if (tv(it.it_interval) != ival[i])
			zdtm_fail("itimer %d interval %.6f, expected %d", which[i], tv(it.it_interval), ival[i]);
		if (tv(it.it_value) > val[i] + 0.1 || tv(it.it_value) < val[i] - elapsed - 5)
			zdtm_fail("itimer %d value %.6f, expected in [%.1f, %d.1]", which[i], tv(it.it_value),
				  val[i] - elapsed - 5, val[i]);
	}
	if (fired[SIGALRM] || fired[SIGVTALRM] || fired[SIGPROF])
		zdtm_fail("an itimer fired: %d %d %d", fired[SIGALRM], fired[SIGVTALRM], fired[SIGPROF]);
	{
		struct itimerval it = { { 0, 0 }, { 0, 20000 } };
		double t1 = now();

		setitimer(ITIMER_REAL, &it, NULL);
		while (!fired[SIGALRM] && now() - t1 < 5)
			usleep(1000);
		if (!fired[SIGALRM])
			zdtm_fail("ITIMER_REAL re-armed after restore did not fire");
	}
}

static int timer_clock_in_proc(timer_t id, int *clock)
{
	char line[256];
	int cur = -1, found = 0;
	FILE *f = fopen("/proc/self/timers", "r");

	zdtm_setup(f, "/proc/self/timers");
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "ID: %d", &cur) == 1)
			continue;
		if (cur == (int)(intptr_t)id && sscanf(line, "ClockID: %d", clock) == 1)
			found = 1;
	}
	fclose(f);
	return found;
}

static void posix(void)
{
	static const clockid_t clocks[4] = { CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_PROCESS_CPUTIME_ID };
	timer_t id[5], extra;
	int clock_before[5];
	double t0;

	for (int i = 0; i < 4; i++) {
		struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = 36 + i };
		struct itimerspec its = { { 100 + i, 250000000 }, { 1000 + i, 0 } };

		handle(36 + i);
		ev.sigev_value.sival_int = 100 + i;
		zdtm_setup(!timer_create(clocks[i], &ev, &id[i]), "timer_create");
		zdtm_setup(!timer_settime(id[i], 0, &its, NULL), "timer_settime");
	}
	{
		struct sigevent ev = { .sigev_notify = SIGEV_NONE };

		zdtm_setup(!timer_create(CLOCK_MONOTONIC, &ev, &id[4]), "timer_create none");
	}
	/* /proc shows the kernel's clock id (CPU clocks are negative): compare it with itself across the dump */
	for (int i = 0; i < 5; i++)
		zdtm_setup(timer_clock_in_proc(id[i], &clock_before[i]), "timer in /proc/self/timers");
	t0 = now();
	zdtm_ready();
	zdtm_wait_check();
	for (int i = 0; i < 5; i++) {
		struct itimerspec its;
		int clock = -1;

		if (timer_gettime(id[i], &its))
			zdtm_fail("timer id %ld is gone: %s", (long)(intptr_t)id[i], strerror(errno));
		if (!timer_clock_in_proc(id[i], &clock))
			zdtm_fail("timer id %ld not in /proc/self/timers", (long)(intptr_t)id[i]);
		if (i == 4) {
			if (clock != clock_before[i])
				zdtm_fail("SIGEV_NONE timer clock %d, was %d", clock, clock_before[i]);
			if (its.it_value.tv_sec || its.it_value.tv_nsec || its.it_interval.tv_sec)
				zdtm_fail("disarmed timer is armed after restore");
			continue;
		}
		if (clock != clock_before[i])
			zdtm_fail("timer %ld clock %d, was %d", (long)(intptr_t)id[i], clock, clock_before[i]);
		if (its.it_interval.tv_sec != 100 + i || its.it_interval.tv_nsec != 250000000)
			zdtm_fail("timer %d interval %.9f", i, ts(its.it_interval));
		if (ts(its.it_value) > 1000 + i || ts(its.it_value) < 1000 + i - (now() - t0) - 5)
			zdtm_fail("timer %d value %.9f", i, ts(its.it_value));
	}
	for (int i = 0; i < 4; i++)
		if (fired[36 + i])
			zdtm_fail("timer %d fired", i);
	{
		struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = 44 };
		struct itimerspec its = { { 0, 0 }, { 0, 10000000 } };
		double t1 = now();

		handle(44);
		zdtm_setup(!timer_create(CLOCK_MONOTONIC, &ev, &extra), "timer_create after restore");
		for (int i = 0; i < 5; i++)
			if (extra == id[i])
				zdtm_fail("new timer got the id %ld of a restored one", (long)(intptr_t)extra);
		timer_settime(extra, 0, &its, NULL);
		while (!fired[44] && now() - t1 < 5)
			usleep(1000);
		if (!fired[44])
			zdtm_fail("a new timer does not fire after restore");
	}
}

static void overrun(void)
{
	struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = 42, .sigev_value.sival_int = 4242 };
	struct itimerspec its = { { 0, 1000000 }, { 0, 1000000 } };
	sigset_t s;
	timer_t id;
	double t1;

	handle(42);
	sigemptyset(&s);
	sigaddset(&s, 42);
	sigprocmask(SIG_BLOCK, &s, NULL);
	zdtm_setup(!timer_create(CLOCK_MONOTONIC, &ev, &id), "timer_create");
	zdtm_setup(!timer_settime(id, 0, &its, NULL), "timer_settime");
	usleep(500000);
	zdtm_ready();
	zdtm_wait_check();
	sigprocmask(SIG_UNBLOCK, &s, NULL);
	if (fired[42] < 1)
		zdtm_fail("the pending timer signal was not delivered after restore");
	if (code_seen != SI_TIMER || value_seen != 4242)
		zdtm_fail("timer signal si_code %d si_value %d, expected SI_TIMER and 4242", code_seen, value_seen);
	zdtm_msg("INFO: si_overrun %d after 500 ms of 1 ms expirations before the dump", overrun_seen);
	t1 = now();
	while (fired[42] < 10 && now() - t1 < 5)
		usleep(1000);
	if (fired[42] < 10)
		zdtm_fail("the 1 ms timer fired %d times in 5 s after restore", fired[42]);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	zdtm_init();
	if (!strcmp(mode, "itimers"))
		itimers();
	else if (!strcmp(mode, "posix"))
		posix();
	else if (!strcmp(mode, "overrun"))
		overrun();
	else
		zdtm_fail("unknown mode %s", mode);
	zdtm_pass();
}
