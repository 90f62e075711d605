/* Round-trip target for process state: an ITIMER_REAL whose SIGALRM handler runs on a sigaltstack, a blocked
 * SIGUSR1, no_new_privs and a seccomp filter making getppid fail with EPERM. The main loop pause()s and logs
 * one line per tick: n, ticks, whether the handler ran on the alt stack, the mask bit, and the filter's effect. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

static volatile long ticks;
static volatile int onalt;
static char altstack[65536];

static void on_alarm(int sig)
{
	char here;
	(void)sig;
	onalt = &here >= altstack && &here < altstack + sizeof(altstack);
	ticks++;
}

int main(int argc, char **argv)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = 4, .filter = code };
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack) };
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_ONSTACK | SA_RESTART };
	struct itimerval it = { { 0, 50000 }, { 0, 50000 } };
	sigset_t mask;
	int fd;
	long n;

	if (argc < 2)
		return 2;
	fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
	sigaltstack(&ss, NULL);
	sigaction(SIGALRM, &sa, NULL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return 4;
	setitimer(ITIMER_REAL, &it, NULL);
	for (n = 0;; n++) {
		sigset_t cur;
		int sc;
		pause();
		sigprocmask(SIG_BLOCK, NULL, &cur);
		sc = syscall(SYS_getppid) == -1 && errno == EPERM;
		dprintf(fd, "pid=%ld n=%ld ticks=%ld onalt=%d usr1=%d sc=%d\n", syscall(SYS_getpid), n, ticks, onalt,
			sigismember(&cur, SIGUSR1), sc);
	}
}
