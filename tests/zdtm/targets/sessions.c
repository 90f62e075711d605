/* sessions.c MODE: process-tree relations of issue 4, checked by the processes themselves.
 *
 * zombie   a child exits with status 7 and is left unreaped: after restore waitpid() still gets it, status 7
 * zombiesig  a child killed by SIGUSR1 is left unreaped: after restore waitpid() gets it, killed by SIGUSR1
 * zombiegrp  child Z leads its own process group and exits unreaped, child B (alive) joined Z's group: after
 *          restore B is still in group Z (whose leader is a zombie) and waitpid() gets Z with status 7
 * clonefiles  a child made by clone(CLONE_FILES|CLONE_FS) shares the parent's descriptor table and fs info:
 *          after restore kcmp says both are still shared, the fd opened before the dump is there, and a
 *          chdir and an open by the parent are seen by the child (/proc/CHILD/cwd, /proc/CHILD/fd)
 * orphangrp  the root (a child subreaper) forks A, which leads its own group, forks B into it and exits: B,
 *          reparented to the root, is in a group whose leader is gone; after restore B is still in group A
 *          (a helper with A's PID made it, as CRIU does) and the group can be signalled
 * waitpid  blocked in waitpid() on a live child (re-entered after restore); SIGUSR2's handler (SA_RESTART)
 *          sends the child SIGTERM, and waitpid must then return that child, killed by SIGTERM
 * pgroups  a session leader with two process groups: child A leads group A, child C joined group A, child B
 *          stays in the leader's group; after restore the leader reads every child's pgrp and session in /proc
 * forker   forks and reaps children as fast as it can (also while being seized); each child must exit 0 and
 *          be reaped by PID; after restore it keeps forking
 * spawner  creates and joins threads as fast as it can (also while being seized): a thread racing in clone()
 *          must not be missed or half-restored; after restore it keeps creating threads
 * shmem    MAP_SHARED|MAP_ANONYMOUS memory shared with a child: after restore a write by the child (on the
 *          parent's request) is seen by the parent, and the content written before the dump is there
 * oldsid   the root (session leader R) forks P, P forks C and then calls setsid(): P leads session P, C is
 *          still in session R and group R, its parent in another session; after restore the root reads
 *          P's and C's ppid, pgrp and session in /proc, and P checks its own and sees C alive
 * rootsid  (started outside a session of its own, dumped and restored with --shell-job) the root forks C,
 *          then calls setsid(): C stays in the outside session and group; after restore the root checks
 *          its own ids and C's ppid, and that C is in another session than its own
 * deadsid  the root (a child subreaper) forks A, which calls setsid(), forks C (in group A) and D (which
 *          leads its own group) and exits: C and D, reparented to the root, are in session A whose leader is
 *          gone; after restore (a helper with A's PID made the session, as CRIU does) the root reads their
 *          ppid, pgrp and session in /proc and signals group A
 * deepsid  the root (session leader R, a child subreaper) forks G, G forks P, P forks C, then P calls setsid()
 *          and then G does: G and P lead their own sessions and C is still in session R, two generations
 *          below its leader (G and P were "born" in session R, as CRIU says); after restore the root reads
 *          G's, P's and C's ppid, pgrp and session in /proc
 * leadersid  the root (session leader R, a child subreaper) forks L, which calls setsid() and forks X; X forks
 *          C (group L) and D (its own group) and exits: C and D, reparented to the root, are in session L,
 *          whose leader is alive elsewhere in the tree (not their parent, nor an ancestor that forked them
 *          before its setsid); after restore (a helper forked by L made them, as CRIU does) the root reads
 *          their ppid, pgrp and session in /proc and signals group L
 * lateleader  the root forks X and Y; X forks M, Y forks L, which leads its own group; M joins L's group:
 *          the leader lives in another subtree, forked after the member on restore; after restore the root
 *          reads M's and L's pgrp and session in /proc and signals group L
 * cow      64 MiB of private memory written before fork() and never touched again: parent and child still
 *          read the pattern (the test also checks, in smaps, that the pages are still shared between them)
 */
#include "zdtm.h"
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/wait.h>

static pid_t child;

static void usr2_kill_child(int sig)
{
	(void)sig;
	zdtm_check_requested = 1;
	kill(child, SIGTERM);
}

static void *short_thread(void *arg)
{
	return arg;
}

static void sleeper(void)
{
	for (;;)
		pause();
}

static void proc_ids(pid_t pid, int *pgrp, int *sid)
{
	char path[64], buf[512], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	zdtm_setup(f && fgets(buf, sizeof(buf), f), path);
	fclose(f);
	p = strrchr(buf, ')');
	zdtm_setup(p && sscanf(p + 2, "%*c %*d %d %d", pgrp, sid) == 2, "parse stat");
}

static int zdtm_stat_ppid(pid_t pid)
{
	char path[64], buf[512], *p;
	int ppid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (f && fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		sscanf(p + 2, "%*c %d", &ppid);
	if (f)
		fclose(f);
	return ppid;
}

static pid_t first_child(pid_t pid)
{
	char path[80];
	pid_t c = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, pid);
	for (;;) {
		f = fopen(path, "r");
		if (f && fscanf(f, "%d", &c) == 1) {
			fclose(f);
			return c;
		}
		if (f)
			fclose(f);
		usleep(1000);
	}
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int st;

	zdtm_init();
	if (!strcmp(mode, "zombie")) {
		char path[64], buf[512];

		child = fork();
		zdtm_setup(child >= 0, "fork");
		if (!child)
			_exit(7);
		snprintf(path, sizeof(path), "/proc/%d/stat", child);
		for (;;) { /* READY only once the child is a zombie */
			FILE *f = fopen(path, "r");
			char *p = f && fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;

			if (f)
				fclose(f);
			if (p && p[2] == 'Z')
				break;
			usleep(1000);
		}
		zdtm_ready();
		zdtm_wait_check();
		if (waitpid(child, &st, WNOHANG) != child)
			zdtm_fail("the zombie child %d is gone", child);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 7)
			zdtm_fail("zombie status %#x, expected exit 7", st);
	} else if (!strcmp(mode, "zombiesig") || !strcmp(mode, "zombiegrp")) {
		int grp = !strcmp(mode, "zombiegrp"), pg, sid;
		pid_t b = 0;

		child = fork();
		zdtm_setup(child >= 0, "fork");
		if (!child) {
			if (grp) {
				setpgid(0, 0);
				_exit(7);
			}
			signal(SIGUSR1, SIG_DFL);
			raise(SIGUSR1);
			_exit(1);
		}
		if (grp) {
			zdtm_setup(!setpgid(child, child) || errno == EACCES, "setpgid Z");
			zdtm_setup((b = fork()) >= 0, "fork");
			if (!b)
				sleeper();
			zdtm_setup(!setpgid(b, child), "setpgid B");
		}
		zdtm_setup(waitid(P_PID, child, NULL, WEXITED | WNOWAIT) == 0, "waitid WNOWAIT");
		zdtm_ready();
		zdtm_wait_check();
		if (grp) {
			proc_ids(b, &pg, &sid);
			if (pg != child || sid != getpid())
				zdtm_fail("B: pgrp %d sid %d, expected %d %d", pg, sid, child, getpid());
		}
		if (waitpid(child, &st, WNOHANG) != child)
			zdtm_fail("the zombie child %d is gone", child);
		if (grp && (!WIFEXITED(st) || WEXITSTATUS(st) != 7))
			zdtm_fail("zombie status %#x, expected exit 7", st);
		if (!grp && (!WIFSIGNALED(st) || WTERMSIG(st) != SIGUSR1))
			zdtm_fail("zombie status %#x, expected killed by SIGUSR1", st);
		if (b) {
			kill(b, SIGKILL);
			waitpid(b, NULL, 0);
		}
	} else if (!strcmp(mode, "clonefiles")) {
		static char stack[64 << 10];
		int fd, fd2;
		char path[64], buf[256];
		ssize_t n;

		fd = open("/dev/null", O_RDONLY);
		zdtm_setup(fd >= 0 && dup2(fd, 40) == 40, "open /dev/null as fd 40");
		close(fd);
		child = clone((int (*)(void *))sleeper, stack + sizeof(stack),
			      CLONE_FILES | CLONE_FS | SIGCHLD, NULL);
		zdtm_setup(child > 0, "clone");
		zdtm_ready();
		zdtm_wait_check();
		if (syscall(SYS_kcmp, getpid(), child, 2 /* KCMP_FILES */, 0, 0) != 0)
			zdtm_fail("the descriptor table is no longer shared with %d", child);
		if (syscall(SYS_kcmp, getpid(), child, 3 /* KCMP_FS */, 0, 0) != 0)
			zdtm_fail("the fs info is no longer shared with %d", child);
		if (fcntl(40, F_GETFD) < 0)
			zdtm_fail("fd 40 is gone");
		zdtm_setup(!chdir("/tmp"), "chdir /tmp");
		fd2 = open("/dev/zero", O_RDONLY);
		snprintf(path, sizeof(path), "/proc/%d/cwd", child);
		n = readlink(path, buf, sizeof(buf) - 1);
		if (n != 4 || memcmp(buf, "/tmp", 4))
			zdtm_fail("the child's cwd did not follow the parent's chdir");
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", child, fd2);
		n = readlink(path, buf, sizeof(buf) - 1);
		if (n != 9 || memcmp(buf, "/dev/zero", 9))
			zdtm_fail("the child does not see fd %d the parent opened", fd2);
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	} else if (!strcmp(mode, "orphangrp")) {
		pid_t a, b = 0;
		int pg, sid;
		char path[64], buf[512];
		FILE *f;

		zdtm_setup(!prctl(PR_SET_CHILD_SUBREAPER, 1), "subreaper");
		zdtm_setup((a = fork()) >= 0, "fork A");
		if (!a) {
			setpgid(0, 0);
			if (!fork())
				sleeper();
			_exit(0);
		}
		zdtm_setup(waitpid(a, &st, 0) == a, "reap A");
		for (;;) { /* B: our only child now, once reparented */
			snprintf(path, sizeof(path), "/proc/%d/task/%d/children", getpid(), getpid());
			f = fopen(path, "r");
			if (f && fscanf(f, "%d", &b) == 1) {
				fclose(f);
				break;
			}
			if (f)
				fclose(f);
			usleep(1000);
		}
		(void)buf;
		zdtm_ready();
		zdtm_wait_check();
		proc_ids(b, &pg, &sid);
		if (pg != a || sid != getpid())
			zdtm_fail("B: pgrp %d sid %d, expected %d %d", pg, sid, a, getpid());
		if (kill(-a, 0))
			zdtm_fail("group %d cannot be signalled: %s", a, strerror(errno));
		kill(b, SIGKILL);
		waitpid(b, NULL, 0);
	} else if (!strcmp(mode, "waitpid")) {
		struct sigaction sa = { .sa_handler = usr2_kill_child, .sa_flags = SA_RESTART };
		pid_t got;

		sigemptyset(&sa.sa_mask);
		zdtm_setup(!sigaction(SIGUSR2, &sa, NULL), "sigaction");
		child = fork();
		zdtm_setup(child >= 0, "fork");
		if (!child)
			sleeper();
		zdtm_ready();
		got = waitpid(child, &st, 0);
		if (!zdtm_check_requested)
			zdtm_fail("waitpid returned %d before SIGUSR2 (%s)", got, strerror(errno));
		if (got != child || !WIFSIGNALED(st) || WTERMSIG(st) != SIGTERM)
			zdtm_fail("waitpid returned %d status %#x, expected %d killed by SIGTERM", got, st, child);
	} else if (!strcmp(mode, "pgroups")) {
		pid_t a, b, c, me = getpid();
		int pg, sid;

		zdtm_setup((a = fork()) >= 0, "fork");
		if (!a)
			sleeper();
		zdtm_setup((b = fork()) >= 0, "fork");
		if (!b)
			sleeper();
		zdtm_setup((c = fork()) >= 0, "fork");
		if (!c)
			sleeper();
		zdtm_setup(!setpgid(a, a), "setpgid A");
		zdtm_setup(!setpgid(c, a), "setpgid C");
		zdtm_ready();
		zdtm_wait_check();
		if (getsid(0) != me || getpgid(0) != me)
			zdtm_fail("leader: sid %d pgid %d", getsid(0), getpgid(0));
		proc_ids(a, &pg, &sid);
		if (pg != a || sid != me)
			zdtm_fail("A: pgrp %d sid %d, expected %d %d", pg, sid, a, me);
		proc_ids(b, &pg, &sid);
		if (pg != me || sid != me)
			zdtm_fail("B: pgrp %d sid %d, expected %d %d", pg, sid, me, me);
		proc_ids(c, &pg, &sid);
		if (pg != a || sid != me)
			zdtm_fail("C: pgrp %d sid %d, expected %d %d", pg, sid, a, me);
		kill(a, SIGKILL);
		kill(b, SIGKILL);
		kill(c, SIGKILL);
		while (wait(NULL) > 0)
			;
	} else if (!strcmp(mode, "oldsid")) {
		pid_t p, c, me = getpid();
		int pg, sid, pfd[2], st;

		zdtm_setup(!pipe(pfd), "pipe");
		zdtm_setup((p = fork()) >= 0, "fork");
		if (!p) {
			zdtm_setup((c = fork()) >= 0, "fork C");
			if (!c)
				sleeper();
			zdtm_setup(setsid() == getpid(), "setsid P");
			zdtm_setup(write(pfd[1], &c, sizeof(c)) == sizeof(c), "write");
			zdtm_wait_check();
			if (getsid(0) != getpid() || getpgid(0) != getpid() || getppid() != me)
				_exit(1);
			proc_ids(c, &pg, &sid);
			if (pg != me || sid != me || kill(c, 0))
				_exit(2);
			kill(c, SIGKILL);
			waitpid(c, NULL, 0);
			_exit(0);
		}
		zdtm_setup(read(pfd[0], &c, sizeof(c)) == sizeof(c), "read");
		zdtm_ready();
		zdtm_wait_check();
		if (getsid(0) != me || getpgid(0) != me)
			zdtm_fail("root: sid %d pgid %d", getsid(0), getpgid(0));
		proc_ids(p, &pg, &sid);
		if (pg != p || sid != p)
			zdtm_fail("P: pgrp %d sid %d, expected %d %d", pg, sid, p, p);
		proc_ids(c, &pg, &sid);
		if (pg != me || sid != me)
			zdtm_fail("C: pgrp %d sid %d, expected %d %d", pg, sid, me, me);
		kill(p, SIGUSR2);
		if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st))
			zdtm_fail("P: its own check failed (status %#x)", st);
	} else if (!strcmp(mode, "rootsid")) {
		pid_t c, me = getpid();
		int pg, sid, pg0 = getpgid(0), sid0 = getsid(0);

		zdtm_setup((child = fork()) >= 0, "fork");
		if (!child)
			sleeper();
		c = child;
		zdtm_setup(setsid() == me, "setsid root");
		zdtm_ready();
		zdtm_wait_check();
		if (getsid(0) != me || getpgid(0) != me)
			zdtm_fail("root: sid %d pgid %d", getsid(0), getpgid(0));
		proc_ids(c, &pg, &sid);
		if (sid == me || pg == me || getsid(c) != sid)
			zdtm_fail("C: pgrp %d sid %d, was %d %d before the dump", pg, sid, pg0, sid0);
		kill(c, SIGKILL);
		waitpid(c, NULL, 0);
	} else if (!strcmp(mode, "deadsid")) {
		pid_t a, cd[2] = { 0, 0 }, me = getpid();
		int pg, sid, pfd[2], ppid;

		zdtm_setup(!prctl(PR_SET_CHILD_SUBREAPER, 1), "subreaper");
		zdtm_setup(!pipe(pfd), "pipe");
		zdtm_setup((a = fork()) >= 0, "fork A");
		if (!a) {
			zdtm_setup(setsid() == getpid(), "setsid A");
			zdtm_setup((cd[0] = fork()) >= 0, "fork C");
			if (!cd[0])
				sleeper();
			zdtm_setup((cd[1] = fork()) >= 0, "fork D");
			if (!cd[1]) {
				setpgid(0, 0);
				sleeper();
			}
			setpgid(cd[1], cd[1]);
			zdtm_setup(write(pfd[1], cd, sizeof(cd)) == sizeof(cd), "write");
			_exit(0);
		}
		zdtm_setup(read(pfd[0], cd, sizeof(cd)) == sizeof(cd), "read");
		zdtm_setup(waitpid(a, &st, 0) == a, "reap A");
		for (int i = 0; i < 2; i++) /* reparented to us once A is gone */
			while (zdtm_stat_ppid(cd[i]) != me)
				usleep(1000);
		zdtm_ready();
		zdtm_wait_check();
		for (int i = 0; i < 2; i++) {
			proc_ids(cd[i], &pg, &sid);
			ppid = zdtm_stat_ppid(cd[i]);
			if (ppid != me || sid != a || pg != (i ? cd[1] : a))
				zdtm_fail("%c: ppid %d pgrp %d sid %d, expected %d %d %d", "CD"[i], ppid, pg, sid, me,
					  i ? cd[1] : a, a);
		}
		if (kill(-a, 0))
			zdtm_fail("group %d cannot be signalled: %s", a, strerror(errno));
		kill(cd[0], SIGKILL);
		kill(cd[1], SIGKILL);
		while (wait(NULL) > 0)
			;
	} else if (!strcmp(mode, "deepsid")) {
		pid_t g, p = 0, c = 0, me = getpid();
		int pg, sid, pc[2], pp[2];

		zdtm_setup(!prctl(PR_SET_CHILD_SUBREAPER, 1), "subreaper");
		zdtm_setup(!pipe(pc) && !pipe(pp), "pipe");
		zdtm_setup((g = fork()) >= 0, "fork G");
		if (!g) {
			zdtm_setup((p = fork()) >= 0, "fork P");
			if (!p) {
				zdtm_setup((c = fork()) >= 0, "fork C");
				if (!c)
					sleeper();
				zdtm_setup(setsid() == getpid(), "setsid P");
				zdtm_setup(write(pc[1], &c, sizeof(c)) == sizeof(c), "write C");
				sleeper();
			}
			zdtm_setup(read(pc[0], &c, sizeof(c)) == sizeof(c), "read C");
			zdtm_setup(setsid() == getpid(), "setsid G");
			zdtm_setup(write(pp[1], &p, sizeof(p)) == sizeof(p) && write(pp[1], &c, sizeof(c)) == sizeof(c),
				   "write P");
			sleeper();
		}
		zdtm_setup(read(pp[0], &p, sizeof(p)) == sizeof(p) && read(pp[0], &c, sizeof(c)) == sizeof(c),
			   "read P, C");
		zdtm_ready();
		zdtm_wait_check();
		{
			pid_t who[3] = { g, p, c }, ppid[3] = { me, g, p }, pgrp[3] = { g, p, me }, sess[3] = { g, p, me };

			for (int i = 0; i < 3; i++) {
				proc_ids(who[i], &pg, &sid);
				if (zdtm_stat_ppid(who[i]) != ppid[i] || pg != pgrp[i] || sid != sess[i])
					zdtm_fail("%c: ppid %d pgrp %d sid %d, expected %d %d %d", "GPC"[i],
						  zdtm_stat_ppid(who[i]), pg, sid, ppid[i], pgrp[i], sess[i]);
			}
		}
		kill(c, SIGKILL);
		kill(p, SIGKILL);
		kill(g, SIGKILL);
		while (wait(NULL) > 0)
			;
	} else if (!strcmp(mode, "leadersid")) {
		pid_t l, cd[2] = { 0, 0 }, me = getpid();
		int pg, sid, pfd[2], ppid;

		zdtm_setup(!prctl(PR_SET_CHILD_SUBREAPER, 1), "subreaper");
		zdtm_setup(!pipe(pfd), "pipe");
		zdtm_setup((l = fork()) >= 0, "fork L");
		if (!l) {
			pid_t x;

			zdtm_setup(setsid() == getpid(), "setsid L");
			zdtm_setup((x = fork()) >= 0, "fork X");
			if (!x) {
				zdtm_setup((cd[0] = fork()) >= 0, "fork C");
				if (!cd[0])
					sleeper();
				zdtm_setup((cd[1] = fork()) >= 0, "fork D");
				if (!cd[1]) {
					setpgid(0, 0);
					sleeper();
				}
				setpgid(cd[1], cd[1]);
				zdtm_setup(write(pfd[1], cd, sizeof(cd)) == sizeof(cd), "write");
				_exit(0);
			}
			zdtm_setup(waitpid(x, &st, 0) == x, "reap X");
			sleeper();
		}
		zdtm_setup(read(pfd[0], cd, sizeof(cd)) == sizeof(cd), "read");
		for (int i = 0; i < 2; i++) /* reparented to us once X is gone */
			while (zdtm_stat_ppid(cd[i]) != me)
				usleep(1000);
		zdtm_ready();
		zdtm_wait_check();
		proc_ids(l, &pg, &sid);
		if (zdtm_stat_ppid(l) != me || pg != l || sid != l)
			zdtm_fail("L: ppid %d pgrp %d sid %d, expected %d %d %d", zdtm_stat_ppid(l), pg, sid, me, l, l);
		for (int i = 0; i < 2; i++) {
			proc_ids(cd[i], &pg, &sid);
			ppid = zdtm_stat_ppid(cd[i]);
			if (ppid != me || sid != l || pg != (i ? cd[1] : l))
				zdtm_fail("%c: ppid %d pgrp %d sid %d, expected %d %d %d", "CD"[i], ppid, pg, sid, me,
					  i ? cd[1] : l, l);
		}
		if (kill(-l, 0))
			zdtm_fail("group %d cannot be signalled: %s", l, strerror(errno));
		kill(cd[0], SIGKILL);
		kill(cd[1], SIGKILL);
		kill(l, SIGKILL);
		while (wait(NULL) > 0)
			;
	} else if (!strcmp(mode, "lateleader")) {
		pid_t x, y, m, l, me = getpid();
		int pg, sid, pfd[2];

		zdtm_setup(!pipe(pfd), "pipe");
		zdtm_setup((x = fork()) >= 0, "fork X");
		if (!x) {
			zdtm_setup((m = fork()) >= 0, "fork M");
			if (!m) {
				zdtm_setup(read(pfd[0], &l, sizeof(l)) == sizeof(l), "read L");
				zdtm_setup(!setpgid(0, l), "M joins group L");
				sleeper();
			}
			sleeper();
		}
		zdtm_setup((y = fork()) >= 0, "fork Y");
		if (!y) {
			zdtm_setup((l = fork()) >= 0, "fork L");
			if (!l) {
				setpgid(0, 0);
				sleeper();
			}
			setpgid(l, l);
			zdtm_setup(write(pfd[1], &l, sizeof(l)) == sizeof(l), "write L");
			sleeper();
		}
		m = first_child(x);
		l = first_child(y);
		do {
			usleep(1000);
			proc_ids(m, &pg, &sid);
		} while (pg != l);
		zdtm_ready();
		zdtm_wait_check();
		proc_ids(m, &pg, &sid);
		if (pg != l || sid != me)
			zdtm_fail("M: pgrp %d sid %d, expected %d %d", pg, sid, l, me);
		proc_ids(l, &pg, &sid);
		if (pg != l || sid != me)
			zdtm_fail("L: pgrp %d sid %d, expected %d %d", pg, sid, l, me);
		if (zdtm_stat_ppid(m) != x || zdtm_stat_ppid(l) != y)
			zdtm_fail("M's parent %d, L's %d", zdtm_stat_ppid(m), zdtm_stat_ppid(l));
		if (kill(-l, 0))
			zdtm_fail("group %d cannot be signalled: %s", l, strerror(errno));
		kill(m, SIGKILL);
		kill(l, SIGKILL);
		kill(x, SIGKILL);
		kill(y, SIGKILL);
		while (wait(NULL) > 0)
			;
	} else if (!strcmp(mode, "forker")) {
		unsigned long forks = 0, at_check;

		for (;;) {
			pid_t p = fork(), got;

			zdtm_setup(p >= 0, "fork");
			if (!p)
				_exit(0);
			do
				got = waitpid(p, &st, 0);
			while (got < 0 && errno == EINTR);
			if (got != p || !WIFEXITED(st) || WEXITSTATUS(st))
				zdtm_fail("child %d: waitpid %d status %#x", p, got, st);
			if (++forks == 100)
				zdtm_ready();
			if (zdtm_check_requested)
				break;
		}
		at_check = forks;
		for (int i = 0; i < 100; i++) {
			pid_t p = fork();

			zdtm_setup(p >= 0, "fork after check");
			if (!p)
				_exit(0);
			if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st))
				zdtm_fail("child after restore: status %#x", st);
		}
		zdtm_msg("INFO: %lu forks before the check", at_check);
	} else if (!strcmp(mode, "spawner")) {
		unsigned long spawned = 0;

		while (!zdtm_check_requested || spawned < 100) {
			pthread_t th;
			void *ret = NULL;
			int err = pthread_create(&th, NULL, short_thread, (void *)spawned);

			if (err)
				zdtm_fail("pthread_create: %s", strerror(err));
			if (pthread_join(th, &ret) || ret != (void *)spawned)
				zdtm_fail("thread %lu returned %p", spawned, ret);
			if (++spawned == 100)
				zdtm_ready();
		}
		zdtm_msg("INFO: %lu threads", spawned);
	} else if (!strcmp(mode, "shmem")) {
		volatile unsigned long *shm = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

		zdtm_setup(shm != MAP_FAILED, "mmap shared");
		for (unsigned long i = 0; i < (1 << 20) / 8; i += 512)
			shm[i] = zdtm_pattern(60, i);
		child = fork();
		zdtm_setup(child >= 0, "fork");
		if (!child) {
			zdtm_wait_check();
			shm[1] = 0x5ca1ab1e; /* the parent's request: write where it looks */
			_exit(0);
		}
		zdtm_ready();
		zdtm_wait_check();
		for (unsigned long i = 0; i < (1 << 20) / 8; i += 512)
			if (shm[i] != zdtm_pattern(60, i))
				zdtm_fail("shared word %lu lost", i);
		kill(child, SIGUSR2);
		if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st))
			zdtm_fail("child status %#x", st);
		if (shm[1] != 0x5ca1ab1e)
			zdtm_fail("the child's write is not seen by the parent: the memory is no longer shared");
	} else if (!strcmp(mode, "cow")) {
		unsigned long n = (64UL << 20) / 8;
		unsigned long *mem = mmap(NULL, n * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		int bad = 0;

		zdtm_setup(mem != MAP_FAILED, "mmap");
		for (unsigned long i = 0; i < n; i++)
			mem[i] = zdtm_pattern(61, i);
		child = fork();
		zdtm_setup(child >= 0, "fork");
		if (!child) {
			zdtm_wait_check();
			for (unsigned long i = 0; i < n; i += 509)
				bad |= mem[i] != zdtm_pattern(61, i);
			_exit(bad);
		}
		zdtm_ready();
		zdtm_wait_check();
		for (unsigned long i = 0; i < n; i += 509)
			if (mem[i] != zdtm_pattern(61, i))
				zdtm_fail("parent: word %lu of the COW region", i);
		kill(child, SIGUSR2);
		if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st))
			zdtm_fail("child: COW region wrong (status %#x)", st);
	} else {
		zdtm_fail("unknown mode %s", mode);
	}
	zdtm_pass();
}
