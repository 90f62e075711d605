/*
 * Target of the uprobes plugin's live tests (compile: gcc -O2 -fcf-protection=none).
 *
 * uprobe_target(): its first instruction is "movl $0,-4(%rsp)", which x86 cannot emulate: a uprobe on it
 * runs the instruction out of line, so the first hit maps the [uprobes] XOL page.
 * nop5_target(): a 5-byte nop (the USDT probe-site pattern) then ret: on Linux 6.18+ a uprobe on it gets
 * optimised into a call to a [uprobes-trampoline] page.
 *
 * argv[1]: "xol" calls uprobe_target, "nop5" calls nop5_target, "both" calls both; every 50 ms, printing
 * "iter N". A SIGTRAP (a stale breakpoint: no uprobe behind it) prints "SIGTRAP si_code=0x.." and exits 42.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline)) int uprobe_target(void)
{
	volatile int x = 0;
	x += 1;
	return x;
}

__attribute__((noinline, naked)) void nop5_target(void)
{
	__asm__ volatile(".byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n\tret\n");
}

static void on_trap(int sig, siginfo_t *si, void *uc)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "SIGTRAP si_code=%#x\n", si->si_code);

	(void)sig;
	(void)uc;
	if (write(1, buf, n) < 0)
		_exit(43);
	_exit(42);
}

int main(int argc, char **argv)
{
	int (*volatile xol)(void) = uprobe_target;
	void (*volatile nop5)(void) = nop5_target;
	const char *mode = argc > 1 ? argv[1] : "xol";
	int do_xol = !strcmp(mode, "xol") || !strcmp(mode, "both");
	int do_nop5 = !strcmp(mode, "nop5") || !strcmp(mode, "both");
	struct sigaction sa;
	unsigned long i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_trap;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGTRAP, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("pid %d\n", getpid());
	for (i = 0;; i++) {
		if (do_xol)
			xol();
		if (do_nop5)
			nop5();
		printf("iter %lu\n", i);
		usleep(50000);
	}
}
