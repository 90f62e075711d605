/* clones.c MODE: children made by raw clone() with what fork() does not give, checked by the parent itself.
 *
 * exitsig     a child made by clone(..., SIGUSR1): its exit is reported to the parent by SIGUSR1, not SIGCHLD.
 *             After restore /proc/CHILD/stat field 38 is still 10, a plain waitpid() does not see the child
 *             (a "clone" child needs __WCLONE), and when the child is killed the parent gets SIGUSR1 (and no
 *             SIGCHLD) and reaps it with __WCLONE
 * vmshare     a child made by clone(CLONE_VM | SIGCHLD) with its own stack shares the parent's memory: it
 *             counts in a shared word and answers the parent's requests in another. After restore kcmp(KCMP_VM)
 *             says both still share one mm, the counter written by the child moves under the parent's eyes,
 *             a request written by the parent is answered by the child, and a heap buffer the child filled
 *             before the dump reads back in the parent; the child's own child (a plain fork, so a private
 *             copy of the mm) still runs in an mm of its own and still reads that buffer
 * vmsighand   a child made by clone(CLONE_VM | CLONE_SIGHAND | SIGCHLD) shares the parent's memory and signal
 *             handlers. After restore kcmp(KCMP_SIGHAND) says the handlers are still shared, the child's counter
 *             still moves, and a handler the parent installs for SIGURG shows in the child's SigCgt at once
 * vmsiblings  the root forks X, X makes Y with clone(CLONE_VM | CLONE_PARENT): X and Y share an mm that their
 *             parent (the root) does not have. After restore both are still the root's children and
 *             kcmp(KCMP_VM) says they share one mm, while the root's is its own
 */
#include "zdtm.h"
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define KCMP_VM 1
#define KCMP_SIGHAND 4

static volatile sig_atomic_t got_usr1, got_chld;
static volatile unsigned long ticks, request, answer;
static unsigned long *heap;
static char child_stack[256 << 10] __attribute__((aligned(16)));

static void on_usr1(int sig)
{
	(void)sig;
	got_usr1++;
}

static void on_chld(int sig)
{
	(void)sig;
	got_chld++;
}

/* Raw syscalls only: the child runs on the parent's TLS (no CLONE_SETTLS), so glibc's errno is shared. */
static void nap(void)
{
	struct timespec ts = { 0, 1000 * 1000 };

	syscall(SYS_nanosleep, &ts, NULL);
}

static int sleeper(void *arg)
{
	(void)arg;
	for (;;)
		syscall(SYS_pause);
	return 0;
}

static volatile long grandchild;

static int vm_child(void *arg)
{
	long gc;

	(void)arg;
	for (unsigned long i = 0; i < 4096; i++)
		heap[i] = zdtm_pattern(70, i);
	gc = syscall(SYS_fork); /* a copy of the shared mm: private to the grandchild */
	if (gc == 0) {
		for (;;) {
			for (unsigned long i = 0; i < 4096; i++)
				if (heap[i] != zdtm_pattern(70, i))
					syscall(SYS_exit_group, 3);
			nap();
		}
	}
	grandchild = gc;
	for (;;) {
		ticks++;
		if (answer != request)
			answer = request;
		nap();
	}
	return 0;
}

static int ticker(void *arg)
{
	(void)arg;
	for (;;) {
		ticks++;
		nap();
	}
	return 0;
}

static void on_urg(int sig)
{
	(void)sig;
}

/* Whether SIGNO is in the SigCgt (caught signals) mask of /proc/PID/status. */
static int caught(pid_t pid, int signo)
{
	char path[64], line[256];
	unsigned long long mask = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "SigCgt: %llx", &mask) == 1)
			break;
	fclose(f);
	return (int)((mask >> (signo - 1)) & 1);
}

static int stat_field(pid_t pid, int field)
{
	char path[64], buf[1024], *p;
	int n = 0, val = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof(buf), f)) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	p = strrchr(buf, ')');
	for (n = 2; p && n < field; n++)
		p = strchr(p + 1, ' ');
	if (p)
		sscanf(p + 1, "%d", &val);
	return val;
}

static char zdtm_stat_state(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	p = f && fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	if (f)
		fclose(f);
	return p ? p[2] : 'X';
}

static int wait_until(volatile unsigned long *word, unsigned long want)
{
	for (int i = 0; i < 5000; i++) {
		if (*word == want)
			return 1;
		nap();
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	pid_t child;
	int st;

	zdtm_init();
	if (!strcmp(mode, "exitsig")) {
		struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
		struct sigaction sc = { .sa_handler = on_chld, .sa_flags = SA_RESTART };

		sigemptyset(&sa.sa_mask);
		sigemptyset(&sc.sa_mask);
		zdtm_setup(!sigaction(SIGUSR1, &sa, NULL) && !sigaction(SIGCHLD, &sc, NULL), "sigaction");
		child = clone(sleeper, child_stack + sizeof(child_stack), SIGUSR1, NULL);
		zdtm_setup(child > 0, "clone");
		zdtm_setup(stat_field(child, 38) == SIGUSR1, "exit_signal of the clone child");
		zdtm_ready();
		zdtm_wait_check();
		if (stat_field(child, 38) != SIGUSR1)
			zdtm_fail("the child's exit signal (stat field 38) is %d, expected %d", stat_field(child, 38),
				  SIGUSR1);
		if (waitpid(child, &st, WNOHANG) != -1 || errno != ECHILD)
			zdtm_fail("a plain waitpid() sees the child: it is no longer a clone child");
		kill(child, SIGKILL);
		if (waitpid(child, &st, __WCLONE) != child || !WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
			zdtm_fail("waitpid(__WCLONE) did not return the killed child (status %#x)", st);
		if (got_usr1 != 1 || got_chld)
			zdtm_fail("the child's exit sent SIGUSR1 %d times and SIGCHLD %d times, expected 1 and 0",
				  (int)got_usr1, (int)got_chld);
	} else if (!strcmp(mode, "vmshare")) {
		unsigned long t0;

		zdtm_setup(!prctl(PR_SET_CHILD_SUBREAPER, 1), "subreaper"); /* the grandchild comes back to us */
		heap = malloc(4096 * sizeof(*heap));
		zdtm_setup(heap != NULL, "malloc");
		child = clone(vm_child, child_stack + sizeof(child_stack), CLONE_VM | SIGCHLD, NULL);
		zdtm_setup(child > 0, "clone");
		request = 1;
		zdtm_setup(wait_until(&answer, 1), "the child answering before the dump");
		while (!grandchild)
			nap();
		zdtm_setup(grandchild > 0, "the child's fork");
		zdtm_ready();
		zdtm_wait_check();
		if (syscall(SYS_kcmp, getpid(), child, KCMP_VM, 0, 0) != 0)
			zdtm_fail("kcmp(KCMP_VM): the address space is no longer shared with %d", child);
		for (unsigned long i = 0; i < 4096; i++)
			if (heap[i] != zdtm_pattern(70, i))
				zdtm_fail("heap word %lu the child wrote before the dump is lost", i);
		t0 = ticks;
		if (!wait_until(&ticks, t0 + 5) && ticks == t0)
			zdtm_fail("the child's counter does not move: it does not run or its writes are not seen");
		request = 0xfeed;
		if (!wait_until(&answer, 0xfeed))
			zdtm_fail("the child did not answer request %#lx (answer %#lx): memory is not shared",
				  request, answer);
		if (syscall(SYS_kcmp, child, grandchild, KCMP_VM, 0, 0) == 0)
			zdtm_fail("the grandchild %ld shares the child's address space", grandchild);
		if (stat_field(grandchild, 4) != child || kill(grandchild, 0))
			zdtm_fail("the grandchild %ld is gone or has parent %d", grandchild, stat_field(grandchild, 4));
		for (int i = 0; i < 20; i++)
			nap(); /* it checks the buffer every millisecond and exits on a mismatch */
		if (zdtm_stat_state(grandchild) == 'Z')
			zdtm_fail("the grandchild found its copy of the buffer wrong");
		kill(grandchild, SIGKILL);
		kill(child, SIGKILL);
		if (waitpid(child, &st, 0) != child || !WIFSIGNALED(st))
			zdtm_fail("child status %#x", st);
		while (waitpid(-1, NULL, __WALL) > 0)
			;
	} else if (!strcmp(mode, "vmsighand")) {
		struct sigaction su = { .sa_handler = on_urg, .sa_flags = SA_RESTART };
		unsigned long t0;

		sigemptyset(&su.sa_mask);
		child = clone(ticker, child_stack + sizeof(child_stack), CLONE_VM | CLONE_SIGHAND | SIGCHLD, NULL);
		zdtm_setup(child > 0, "clone");
		zdtm_setup(wait_until(&ticks, 3) || ticks >= 3, "the child counting");
		zdtm_setup(syscall(SYS_kcmp, getpid(), child, KCMP_SIGHAND, 0, 0) == 0, "shared handlers");
		zdtm_setup(caught(child, SIGURG) == 0, "SIGURG not caught yet");
		zdtm_ready();
		zdtm_wait_check();
		if (syscall(SYS_kcmp, getpid(), child, KCMP_SIGHAND, 0, 0) != 0)
			zdtm_fail("kcmp(KCMP_SIGHAND): the signal handlers are no longer shared with %d", child);
		if (syscall(SYS_kcmp, getpid(), child, KCMP_VM, 0, 0) != 0)
			zdtm_fail("kcmp(KCMP_VM): the address space is no longer shared with %d", child);
		t0 = ticks;
		if (!wait_until(&ticks, t0 + 5) && ticks == t0)
			zdtm_fail("the child's counter does not move");
		if (sigaction(SIGURG, &su, NULL))
			zdtm_fail("sigaction(SIGURG): %s", strerror(errno));
		if (caught(child, SIGURG) != 1)
			zdtm_fail("the handler the parent installed for SIGURG is not the child's: handlers not shared");
		kill(child, SIGKILL);
		if (waitpid(child, &st, 0) != child || !WIFSIGNALED(st))
			zdtm_fail("child status %#x", st);
	} else if (!strcmp(mode, "vmsiblings")) {
		pid_t x = fork();

		zdtm_setup(x >= 0, "fork X");
		if (!x) {
			zdtm_setup(clone(sleeper, child_stack + sizeof(child_stack), CLONE_VM | CLONE_PARENT, NULL) > 0,
				   "clone Y");
			sleeper(NULL);
		}
		int kids[2] = { 0, 0 };
		char path[80], buf[256];

		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", getpid(), getpid());
		for (;;) { /* READY once Y exists: the root has two children */
			FILE *f = fopen(path, "r");
			int n = f && fgets(buf, sizeof(buf), f) ? sscanf(buf, "%d %d", &kids[0], &kids[1]) : 0;

			if (f)
				fclose(f);
			if (n == 2)
				break;
			nap();
		}
		zdtm_ready();
		zdtm_wait_check();
		if (syscall(SYS_kcmp, kids[0], kids[1], KCMP_VM, 0, 0) != 0)
			zdtm_fail("X and Y do not share their address space");
		if (syscall(SYS_kcmp, getpid(), kids[0], KCMP_VM, 0, 0) == 0)
			zdtm_fail("the root shares the address space of X");
		if (stat_field(kids[0], 4) != getpid() || stat_field(kids[1], 4) != getpid())
			zdtm_fail("X %d and Y %d are not both the root's children", kids[0], kids[1]);
		kill(kids[0], SIGKILL);
		kill(kids[1], SIGKILL);
		while (wait(NULL) > 0)
			;
	} else {
		zdtm_fail("unknown mode %s", mode);
	}
	zdtm_pass();
}
