/* tree.c N [inotify]: a tree of N processes (issue 4): process k forks 2k+1 and 2k+2 while they are < N; every
 * process sleeps in 10 ms steps.  The root says READY once /proc shows all N-1 descendants.  After restore,
 * on SIGUSR2 the root passes SIGUSR2 down the tree; every process checks its PID and its parent's PID are the
 * ones it recorded, waits for its children and exits 0 if it and its whole subtree are right, else 1.
 * With "inotify", the last process holds an inotify descriptor (a kind the dump refuses): the whole tree must
 * then be released unchanged.
 */
#include "zdtm.h"
#include <sys/inotify.h>
#include <sys/wait.h>

static pid_t kids[2];
static int nkids;

static int count_descendants(pid_t pid)
{
	char path[64];
	int total = 0, child;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fscanf(f, "%d", &child) == 1)
		total += 1 + count_descendants(child);
	fclose(f);
	return total;
}

static int with_inotify;

static int node(int k, int n)
{
	pid_t me = getpid(), parent = getppid();
	int bad = 0;

	if (with_inotify && k == n - 1)
		zdtm_setup(inotify_init1(0) >= 0, "inotify_init1");

	for (int c = 2 * k + 1; c <= 2 * k + 2 && c < n; c++) {
		pid_t p = fork();

		zdtm_setup(p >= 0, "fork");
		if (p == 0) {
			nkids = 0;
			exit(node(c, n));
		}
		kids[nkids++] = p;
	}
	if (k == 0) {
		while (count_descendants(me) != n - 1) {
			struct timespec ts = { 0, 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		zdtm_ready();
	}
	zdtm_wait_check();
	if (getpid() != me || (k && getppid() != parent))
		bad = 1;
	for (int i = 0; i < nkids; i++) {
		int st;

		kill(kids[i], SIGUSR2);
		if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) || WEXITSTATUS(st))
			bad = 1;
	}
	return bad;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 3;

	with_inotify = argc > 2 && !strcmp(argv[2], "inotify");

	zdtm_init();
	if (node(0, n))
		zdtm_fail("a process of the tree lost its PID, its parent or a child");
	zdtm_pass();
}
