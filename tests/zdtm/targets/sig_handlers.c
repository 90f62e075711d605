/* sig_handlers.c: every signal 1..64 but SIGKILL/SIGSTOP gets a disposition with its own flags and mask
 * (handlers, SIG_IGN, SIG_DFL; SA_RESTART, SA_ONSTACK, SA_SIGINFO, SA_NODEFER, SA_RESETHAND, SA_NOCLDSTOP), set
 * and read back with the raw rt_sigaction syscall so that glibc's reserved 32 and 33 are covered too.  A
 * sigaltstack is set.  After restore the target compares every rt_sigaction and the alt stack with what it read
 * before the dump, then delivers a few signals to itself: SA_ONSTACK runs on the alt stack, SA_SIGINFO gets its
 * siginfo, SA_NODEFER leaves the signal unblocked in its handler, sa_mask is applied, SA_RESETHAND resets.
 */
#include "zdtm.h"
#include <stdint.h>
#include <sys/syscall.h>

struct ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

#define SA_RESTORER_ 0x04000000

static struct ksigaction before[65];
static char altstack[65536] __attribute__((aligned(16)));
static volatile int ran[65], on_alt[65], nodefer_ok, mask_ok, info_ok;

static int ksa(int sig, const struct ksigaction *act, struct ksigaction *old)
{
	return syscall(SYS_rt_sigaction, sig, act, old, 8);
}

static uint64_t blocked_now(void)
{
	uint64_t m = 0;

	syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &m, 8);
	return m;
}

static void note(int sig)
{
	char here;

	ran[sig]++;
	on_alt[sig] = &here >= altstack && &here < altstack + sizeof(altstack);
	if (sig == SIGUSR1)
		nodefer_ok = !(blocked_now() & (1ULL << (sig - 1)));
	if (sig == SIGURG) /* sa_mask of SIGURG holds SIGTTIN and SIGTTOU */
		mask_ok = (blocked_now() & (1ULL << (SIGTTIN - 1))) && (blocked_now() & (1ULL << (SIGTTOU - 1)));
}

static void h_plain(int sig)
{
	note(sig);
}

static void h_info(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	note(sig);
	if (sig == SIGWINCH)
		info_ok = si->si_signo == SIGWINCH && si->si_code == SI_TKILL && si->si_pid == getpid();
}

static void h_usr2(int sig)
{
	zdtm_check_requested = 1;
}

int main(void)
{
	static const unsigned long flag_sets[] = {
		SA_RESTART, SA_ONSTACK, SA_SIGINFO, SA_NODEFER, SA_RESETHAND, SA_RESTART | SA_SIGINFO | SA_ONSTACK,
		0, SA_NODEFER | SA_RESTART,
	};
	struct ksigaction glibc;
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack) }, ss_before, ss_after;

	/* glibc's restorer (__restore_rt) comes from a sigaction() it made */
	signal(SIGUSR1, h_plain);
	zdtm_setup(!ksa(SIGUSR1, NULL, &glibc), "rt_sigaction get");
	zdtm_setup(!sigaltstack(&ss, NULL), "sigaltstack");
	for (int sig = 1; sig <= 64; sig++) {
		struct ksigaction a = { 0 };

		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		a.flags = flag_sets[sig % 8] | SA_RESTORER_;
		a.restorer = glibc.restorer;
		a.handler = (a.flags & SA_SIGINFO) ? (void *)h_info : (void *)h_plain;
		a.mask = (0x9e3779b97f4a7c15ULL * sig) & ~((1ULL << (SIGKILL - 1)) | (1ULL << (SIGSTOP - 1)));
		if (sig % 11 == 3)
			a.handler = SIG_IGN;
		if (sig % 13 == 5)
			a.handler = SIG_DFL;
		switch (sig) {
		case SIGUSR1: /* delivered after restore: plain handler, SA_NODEFER, on the alt stack */
			a.flags = SA_NODEFER | SA_ONSTACK | SA_RESTORER_;
			a.handler = (void *)h_plain;
			break;
		case SIGWINCH: /* SA_SIGINFO, not on the alt stack */
			a.flags = SA_SIGINFO | SA_RESTART | SA_RESTORER_;
			a.handler = (void *)h_info;
			break;
		case SIGURG: /* sa_mask applied while it runs */
			a.flags = SA_RESTORER_;
			a.handler = (void *)h_plain;
			a.mask = (1ULL << (SIGTTIN - 1)) | (1ULL << (SIGTTOU - 1));
			break;
		case SIGHUP: /* SA_RESETHAND: back to SIG_DFL after one delivery */
			a.flags = SA_RESETHAND | SA_RESTORER_;
			a.handler = (void *)h_plain;
			break;
		case SIGUSR2: /* the harness's "check yourself" */
			a.flags = SA_ONSTACK | SA_RESTORER_;
			a.handler = (void *)h_usr2;
			break;
		case SIGCHLD:
			a.flags |= SA_NOCLDSTOP;
			break;
		}
		zdtm_setup(!ksa(sig, &a, NULL), "rt_sigaction set");
	}
	for (int sig = 1; sig <= 64; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			zdtm_setup(!ksa(sig, NULL, &before[sig]), "rt_sigaction get");
	zdtm_setup(!sigaltstack(NULL, &ss_before), "sigaltstack get");
	zdtm_ready();
	zdtm_wait_check();

	{
		char bad[400] = "";
		int nbad = 0, first = 0;
		struct ksigaction now, first_now = { 0 };

		for (int sig = 1; sig <= 64; sig++) {
			if (sig == SIGKILL || sig == SIGSTOP)
				continue;
			if (ksa(sig, NULL, &now))
				zdtm_fail("rt_sigaction(%d): %s", sig, strerror(errno));
			if (now.handler != before[sig].handler || now.flags != before[sig].flags ||
			    now.restorer != before[sig].restorer || now.mask != before[sig].mask) {
				if (!nbad++) {
					first = sig;
					first_now = now;
				}
				snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), " %d", sig);
			}
		}
		if (nbad) /* every signal that differs, and the details of the first */
			zdtm_fail("%d dispositions differ:%s; signal %d: handler %p flags %#lx restorer %p mask %#lx, "
				  "was %p %#lx %p %#lx", nbad, bad, first, first_now.handler, first_now.flags,
				  first_now.restorer, (unsigned long)first_now.mask, before[first].handler,
				  before[first].flags, before[first].restorer, (unsigned long)before[first].mask);
	}
	zdtm_setup(!sigaltstack(NULL, &ss_after), "sigaltstack get");
	if (ss_after.ss_sp != ss_before.ss_sp || ss_after.ss_size != ss_before.ss_size ||
	    ss_after.ss_flags != ss_before.ss_flags)
		zdtm_fail("sigaltstack %p/%zu/%d, was %p/%zu/%d", ss_after.ss_sp, ss_after.ss_size, ss_after.ss_flags,
			  ss_before.ss_sp, ss_before.ss_size, ss_before.ss_flags);

	raise(SIGUSR1);
	raise(SIGWINCH);
	raise(SIGURG);
	raise(SIGHUP);
	if (ran[SIGUSR1] != 1 || !on_alt[SIGUSR1] || !nodefer_ok)
		zdtm_fail("SIGUSR1: ran %d, on alt stack %d, unblocked in handler (SA_NODEFER) %d", ran[SIGUSR1],
			  on_alt[SIGUSR1], nodefer_ok);
	if (ran[SIGWINCH] != 1 || on_alt[SIGWINCH] || !info_ok)
		zdtm_fail("SIGWINCH: ran %d, on alt stack %d, siginfo ok %d", ran[SIGWINCH], on_alt[SIGWINCH], info_ok);
	if (ran[SIGURG] != 1 || !mask_ok)
		zdtm_fail("SIGURG: ran %d, sa_mask applied %d", ran[SIGURG], mask_ok);
	{
		struct ksigaction hup;

		ksa(SIGHUP, NULL, &hup);
		if (ran[SIGHUP] != 1 || hup.handler != SIG_DFL)
			zdtm_fail("SIGHUP (SA_RESETHAND): ran %d, handler now %p", ran[SIGHUP], hup.handler);
	}
	zdtm_pass();
}
