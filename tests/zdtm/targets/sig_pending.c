/* sig_pending.c: signals pending while blocked survive, shared and per-thread, with their siginfo.
 *
 * Blocked: SIGHUP, SIGUSR1, SIGPIPE, signals 40 and 41.  Pending before the dump:
 *   shared (kill / sigqueue):         SIGHUP, SIGPIPE, 40 three times with si_value 1, 2, 3 (SI_QUEUE)
 *   per-thread (tgkill / tgsigqueue): SIGUSR1, 41 with si_value 77 (SI_QUEUE)
 * After restore the target checks its blocked mask, /proc/self/status SigPnd (per-thread) and ShdPnd (shared),
 * then unblocks: every signal must be delivered exactly as queued (RT ones in order, with values), and no other.
 */
#include "zdtm.h"
#include <stdint.h>
#include <sys/syscall.h>

#define BIT(s) (1ULL << ((s) - 1))

static volatile int count[65];
static volatile int rt40_values[8], rt40_n, rt41_value, codes_ok = 1;

static void h(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	count[sig]++;
	if (si->si_pid != getpid())
		codes_ok = 0;
	if (sig == 40) {
		if (si->si_code != SI_QUEUE)
			codes_ok = 0;
		if (rt40_n < 8)
			rt40_values[rt40_n++] = si->si_value.sival_int;
	}
	if (sig == 41) {
		if (si->si_code != SI_QUEUE)
			codes_ok = 0;
		rt41_value = si->si_value.sival_int;
	}
}

static uint64_t status_mask(const char *key)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");
	uint64_t v = 0;

	zdtm_setup(f, "/proc/self/status");
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtoull(line + strlen(key), NULL, 16);
	fclose(f);
	return v;
}

int main(void)
{
	const uint64_t shared = BIT(SIGHUP) | BIT(SIGPIPE) | BIT(40), thread = BIT(SIGUSR1) | BIT(41);
	struct sigaction sa = { .sa_sigaction = h, .sa_flags = SA_SIGINFO };
	sigset_t block, old, now;
	siginfo_t si = { 0 };
	int sigs[] = { SIGHUP, SIGUSR1, SIGPIPE, 40, 41 };

	zdtm_init();
	sigemptyset(&block);
	for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sigaddset(&block, sigs[i]);
		zdtm_setup(!sigaction(sigs[i], &sa, NULL), "sigaction");
	}
	zdtm_setup(!sigprocmask(SIG_BLOCK, &block, &old), "sigprocmask");
	zdtm_setup(!kill(getpid(), SIGHUP), "kill");
	zdtm_setup(!kill(getpid(), SIGPIPE), "kill");
	for (int v = 1; v <= 3; v++)
		zdtm_setup(!sigqueue(getpid(), 40, (union sigval){ .sival_int = v }), "sigqueue");
	zdtm_setup(!syscall(SYS_tgkill, getpid(), gettid(), SIGUSR1), "tgkill");
	si.si_signo = 41;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_int = 77;
	zdtm_setup(!syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), 41, &si), "rt_tgsigqueueinfo");
	if (status_mask("ShdPnd:") != shared || status_mask("SigPnd:") != thread)
		zdtm_fail("setup: ShdPnd %#lx SigPnd %#lx", (unsigned long)status_mask("ShdPnd:"),
			  (unsigned long)status_mask("SigPnd:"));
	zdtm_ready();
	zdtm_wait_check();

	sigprocmask(SIG_BLOCK, NULL, &now);
	for (int s = 1; s <= 64; s++)
		if (sigismember(&now, s) != sigismember(&block, s) && s != 32 && s != 33)
			zdtm_fail("blocked mask: signal %d is %sblocked", s, sigismember(&now, s) ? "" : "not ");
	if (status_mask("ShdPnd:") != shared)
		zdtm_fail("shared pending %#lx, expected %#lx", (unsigned long)status_mask("ShdPnd:"),
			  (unsigned long)shared);
	if (status_mask("SigPnd:") != thread)
		zdtm_fail("per-thread pending %#lx, expected %#lx", (unsigned long)status_mask("SigPnd:"),
			  (unsigned long)thread);
	for (int s = 1; s <= 64; s++)
		if (count[s])
			zdtm_fail("signal %d was delivered while blocked", s);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (count[SIGHUP] != 1 || count[SIGPIPE] != 1 || count[SIGUSR1] != 1 || count[41] != 1 || count[40] != 3)
		zdtm_fail("deliveries: HUP %d PIPE %d USR1 %d 40 %d 41 %d", count[SIGHUP], count[SIGPIPE], count[SIGUSR1],
			  count[40], count[41]);
	if (rt40_values[0] != 1 || rt40_values[1] != 2 || rt40_values[2] != 3)
		zdtm_fail("signal 40 values %d %d %d, expected 1 2 3", rt40_values[0], rt40_values[1], rt40_values[2]);
	if (rt41_value != 77)
		zdtm_fail("signal 41 value %d, expected 77", rt41_value);
	if (!codes_ok)
		zdtm_fail("a siginfo lost its si_code or si_pid");
	zdtm_pass();
}
