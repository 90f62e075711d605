/* counter.c [--pipe] [--inotify] [--sysv-shm] [--exit N] [--mem MIB]: a busy task for the CLI's behaviour tests.
 *
 * It blocks SIGHUP and SIGUSR1, optionally holds a pipe (fds 3 and 4, one byte queued), an inotify fd (fd 5),
 * an attached (and removed) 64 KiB SysV shm segment with a pattern, and a MIB-sized memory pattern, then
 * runs the register loop of gpr_loop.h (counting in `counter`).  On SIGUSR2 it checks that no register changed,
 * that the blocked mask is as it set it, that nothing is pending and that no signal other than SIGUSR2 (or
 * SIGCONT, which job control and --leave-stopped users send) reached
 * a handler (a failed or --leave-running dump must leave no trace), and that the memory pattern is intact.
 * Then it says PASS and exits with status N (default 0).
 */
#include "zdtm.h"
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "gpr_loop.h"

static volatile int stray;

static void on_usr2(int sig)
{
	(void)sig;
	stop = 1;
	zdtm_check_requested = 1;
}

static void on_other(int sig)
{
	stray = sig;
}

int main(int argc, char **argv)
{
	int status = 0, want_pipe = 0, want_inotify = 0, want_shm = 0;
	unsigned long *shm = NULL;
	unsigned long mib = 0, *mem = NULL;
	struct sigaction sa = { .sa_handler = on_usr2 };
	sigset_t block, now, pend;
	long bad;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pipe"))
			want_pipe = 1;
		else if (!strcmp(argv[i], "--inotify"))
			want_inotify = 1;
		else if (!strcmp(argv[i], "--sysv-shm"))
			want_shm = 1;
		else if (!strcmp(argv[i], "--exit") && i + 1 < argc)
			status = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--mem") && i + 1 < argc)
			mib = strtoul(argv[++i], NULL, 0);
	}
	sigemptyset(&sa.sa_mask);
	zdtm_setup(!sigaction(SIGUSR2, &sa, NULL), "sigaction");
	sa.sa_handler = on_other;
	for (int s = 1; s < 32; s++)
		if (s != SIGKILL && s != SIGSTOP && s != SIGCONT && s != SIGUSR2 && s != SIGSEGV && s != SIGBUS && s != SIGILL &&
		    s != SIGFPE && s != SIGABRT)
			sigaction(s, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGUSR1);
	zdtm_setup(!sigprocmask(SIG_BLOCK, &block, NULL), "sigprocmask");
	if (want_pipe) {
		int p[2];

		zdtm_setup(!pipe(p), "pipe");
		zdtm_setup(dup2(p[0], 3) == 3 && dup2(p[1], 4) == 4, "dup2");
		zdtm_setup(write(4, "x", 1) == 1, "write to pipe");
	}
	if (want_inotify) {
		int fd = inotify_init1(0);

		zdtm_setup(fd >= 0 && dup2(fd, 5) == 5, "inotify");
		close(fd);
		zdtm_setup(inotify_add_watch(5, ".", IN_CREATE) >= 0, "inotify_add_watch");
	}
	if (want_shm) {
		int id = shmget(IPC_PRIVATE, 65536, IPC_CREAT | 0600);

		zdtm_setup(id >= 0, "shmget");
		shm = shmat(id, NULL, 0);
		zdtm_setup(shm != (void *)-1, "shmat");
		zdtm_setup(!shmctl(id, IPC_RMID, NULL), "shmctl IPC_RMID");
		for (unsigned long i = 0; i < 65536 / 8; i++)
			shm[i] = zdtm_pattern(6, i);
	}
	if (mib) {
		mem = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		zdtm_setup(mem != MAP_FAILED, "mmap");
		for (unsigned long i = 0; i < (mib << 20) / 8; i++)
			mem[i] = zdtm_pattern(5, i);
	}
	bad = gpr_loop();
	if (bad)
		zdtm_fail("register %ld changed under the task (after %lu iterations)", bad, counter);
	sigprocmask(SIG_BLOCK, NULL, &now);
	for (int s = 1; s <= 64; s++)
		if (s != 32 && s != 33 && sigismember(&now, s) != sigismember(&block, s))
			zdtm_fail("blocked mask changed at signal %d", s);
	sigpending(&pend);
	for (int s = 1; s <= 64; s++)
		if (sigismember(&pend, s))
			zdtm_fail("signal %d is pending", s);
	if (stray)
		zdtm_fail("signal %d reached its handler", stray);
	for (unsigned long i = 0; i < (mib << 20) / 8; i++)
		if (mem[i] != zdtm_pattern(5, i))
			zdtm_fail("memory word %lu changed", i);
	for (unsigned long i = 0; shm && i < 65536 / 8; i++)
		if (shm[i] != zdtm_pattern(6, i))
			zdtm_fail("SysV shm word %lu changed", i);
	if (want_pipe) {
		char c = 0;

		if (read(3, &c, 1) != 1 || c != 'x')
			zdtm_fail("the pipe lost its byte");
	}
	zdtm_msg("INFO: %lu iterations", counter);
	zdtm_msg("PASS");
	return status;
}
