/* syscalls.c MODE: a task dumped while blocked in a syscall, and what the syscall does after restore.
 *
 * pause      blocked in pause() (-ERESTARTNOHAND): after restore it must still be blocked; it returns only when
 *            SIGUSR2's handler runs (the handler sets a flag; pause returning without it is a FAIL)
 * futex      blocked in FUTEX_WAIT without timeout (-ERESTARTSYS, like read()): re-entered after restore
 * read_pipe  blocked in read() on a pipe it holds both ends of (-ERESTARTSYS): re-entered after restore
 * nanosleep  blocked in a 1-hour nanosleep (-ERESTART_RESTARTBLOCK): as with CRIU, it returns EINTR early after
 *            restore, without any handler having run; the target records that and then waits for SIGUSR2
 * nanosleep_live  the same sleep for --leave-running / failed dumps: the task was never killed, so the kernel
 *            restarts the sleep (restart_syscall) and only SIGUSR2 may end it
 *
 * SIGUSR2's handler is installed without SA_RESTART, so the blocking call returns EINTR when it runs.
 */
#include "zdtm.h"
#include <linux/futex.h>
#include <sys/syscall.h>

static void expect_eintr(long ret, const char *what)
{
	if (!zdtm_check_requested)
		zdtm_fail("%s returned %ld (%s) before SIGUSR2: not re-entered after restore", what, ret,
			  strerror(errno));
	if (ret != -1 || errno != EINTR)
		zdtm_fail("%s returned %ld (%s), expected EINTR", what, ret, strerror(errno));
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	zdtm_init();
	if (!strcmp(mode, "pause")) {
		int ret;

		zdtm_ready();
		ret = pause();
		expect_eintr(ret, "pause");
	} else if (!strcmp(mode, "futex")) {
		static int word;
		long ret;

		zdtm_ready();
		ret = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
		expect_eintr(ret, "futex wait");
	} else if (!strcmp(mode, "read_pipe")) {
		int p[2];
		char c;
		long ret;

		zdtm_setup(!pipe(p), "pipe");
		zdtm_ready();
		ret = read(p[0], &c, 1);
		expect_eintr(ret, "read on a pipe");
	} else if (!strcmp(mode, "nanosleep_live")) {
		struct timespec ts = { 3600, 0 };
		long ret;

		zdtm_ready();
		ret = nanosleep(&ts, NULL);
		expect_eintr(ret, "nanosleep");
	} else if (!strcmp(mode, "nanosleep")) {
		struct timespec ts = { 3600, 0 }, t0, t1;
		int ret, err;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		zdtm_ready();
		ret = nanosleep(&ts, NULL);
		err = errno;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (zdtm_check_requested)
			zdtm_fail("nanosleep was still sleeping when SIGUSR2 came (CRIU makes it return EINTR at restore)");
		if (ret != -1 || err != EINTR)
			zdtm_fail("nanosleep returned %d (%s), expected EINTR", ret, strerror(err));
		zdtm_msg("INFO: nanosleep returned EINTR after %ld s", (long)(t1.tv_sec - t0.tv_sec));
		zdtm_wait_check();
	} else {
		zdtm_fail("unknown mode %s", mode);
	}
	zdtm_pass();
}
