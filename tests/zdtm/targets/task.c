/* task.c MODE: task attributes that a restore must give back, checked by the target with the syscalls that
 * read them.
 *
 * creds    groups {1000, 27, 100}, setresgid(1000, 1001, 1002), KEEPCAPS, setresuid(1000, 1001, 1002), then
 *          capabilities dropped to CAP_NET_BIND_SERVICE+CAP_KILL permitted and CAP_KILL effective, with
 *          CAP_SYS_ADMIN removed from the bounding set (done as root first)
 * rlimits  NOFILE 100/200 (the hard limit lowered), CORE 0/1 MiB, STACK 4/16 MiB, NPROC and MSGQUEUE lowered,
 *          CPU soft 1000 s; read back with getrlimit (the harness also compares /proc/PID/limits)
 * misc     umask 027, cwd in a subdirectory, comm "zdtm-misc", personality ADDR_NO_RANDOMIZE, rseq still
 *          registered by glibc (re-registering the same area gives EBUSY), set_tid_address (PR_GET_TID_ADDRESS),
 *          robust list, no_new_privs, dumpable 0, pdeathsig SIGWINCH, child subreaper.  The pdeathsig
 *          fires when criu-py (the restored task's first parent) exits, as it does with CRIU: SIGWINCH is
 *          ignored by default, so that is harmless
 * chroot   chroot into a subdirectory of its control directory (the harness compares /proc/PID/root)
 * seccomp  a filter (mode 2) that makes getppid() fail with EPERM and lets the rest through
 */
#include "zdtm.h"
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#ifndef RSEQ_SIG
#define RSEQ_SIG 0x53053053
#endif

static int capget_(struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };

	return syscall(SYS_capget, &h, d);
}

static int capset_(struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };

	return syscall(SYS_capset, &h, d);
}

static void creds(void)
{
	gid_t groups[3] = { 1000, 27, 100 }, got[16];
	struct __user_cap_data_struct d[2] = { 0 }, now[2];
	uid_t r, e, s;
	gid_t gr, ge, gs;
	int n;

	zdtm_setup(!prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN), "PR_CAPBSET_DROP");
	zdtm_setup(!setgroups(3, groups), "setgroups");
	zdtm_setup(!setresgid(1000, 1001, 1002), "setresgid");
	zdtm_setup(!prctl(PR_SET_KEEPCAPS, 1), "PR_SET_KEEPCAPS");
	zdtm_setup(!setresuid(1000, 1001, 1002), "setresuid");
	d[0].permitted = (1 << CAP_NET_BIND_SERVICE) | (1 << CAP_KILL);
	d[0].effective = 1 << CAP_KILL;
	zdtm_setup(!capset_(d), "capset");
	zdtm_ready();
	zdtm_wait_check();
	getresuid(&r, &e, &s);
	getresgid(&gr, &ge, &gs);
	if (r != 1000 || e != 1001 || s != 1002)
		zdtm_fail("uids %d %d %d", r, e, s);
	if (gr != 1000 || ge != 1001 || gs != 1002)
		zdtm_fail("gids %d %d %d", gr, ge, gs);
	n = getgroups(16, got);
	if (n != 3 || got[0] != 27 || got[1] != 100 || got[2] != 1000) /* the kernel keeps them sorted */
		zdtm_fail("supplementary groups: %d of them", n);
	zdtm_setup(!capget_(now), "capget");
	if (now[0].permitted != d[0].permitted || now[0].effective != d[0].effective || now[0].inheritable ||
	    now[1].permitted || now[1].effective)
		zdtm_fail("caps prm %#x eff %#x inh %#x", now[0].permitted, now[0].effective, now[0].inheritable);
	if (prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN) != 0 || prctl(PR_CAPBSET_READ, CAP_KILL) != 1)
		zdtm_fail("bounding set: SYS_ADMIN %d KILL %d", (int)prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN),
			  (int)prctl(PR_CAPBSET_READ, CAP_KILL));
	if (prctl(PR_GET_KEEPCAPS) != 1)
		zdtm_fail("keepcaps lost");
}

static const struct { int res; rlim_t cur, max; } lims[] = {
	{ RLIMIT_NOFILE, 100, 200 },
	{ RLIMIT_CORE, 0, 1 << 20 },
	{ RLIMIT_STACK, 4 << 20, 16 << 20 },
	{ RLIMIT_NPROC, 500, 1000 },
	{ RLIMIT_MSGQUEUE, 4096, 8192 },
	{ RLIMIT_CPU, 1000, RLIM_INFINITY },
};

static void rlimits(void)
{
	for (unsigned i = 0; i < sizeof(lims) / sizeof(lims[0]); i++) {
		struct rlimit rl = { lims[i].cur, lims[i].max };

		zdtm_setup(!setrlimit(lims[i].res, &rl), "setrlimit");
	}
	zdtm_ready();
	zdtm_wait_check();
	for (unsigned i = 0; i < sizeof(lims) / sizeof(lims[0]); i++) {
		struct rlimit rl;

		getrlimit(lims[i].res, &rl);
		if (rl.rlim_cur != lims[i].cur || rl.rlim_max != lims[i].max)
			zdtm_fail("rlimit %d: %lu/%lu, expected %lu/%lu", lims[i].res, (unsigned long)rl.rlim_cur,
				  (unsigned long)rl.rlim_max, (unsigned long)lims[i].cur, (unsigned long)lims[i].max);
	}
}

extern ptrdiff_t __rseq_offset __attribute__((weak));
extern unsigned int __rseq_size __attribute__((weak));

static int tid_word;

static void misc(void)
{
	struct { void *next; long off; void *pending; } robust = { &robust, 0, NULL };
	void *head = NULL, *tidp = NULL;
	size_t len = 0;
	char cwd[4096], cwd_before[4096], comm[32];
	int sig = 0, rseq_registered = 0;

	umask(027);
	zdtm_setup(!mkdir("sub", 0755) || errno == EEXIST, "mkdir");
	zdtm_setup(!chdir("sub"), "chdir");
	zdtm_setup(getcwd(cwd_before, sizeof(cwd_before)), "getcwd");
	zdtm_setup(!prctl(PR_SET_NAME, "zdtm-misc"), "PR_SET_NAME");
	zdtm_setup(personality(ADDR_NO_RANDOMIZE) != -1, "personality");
	zdtm_setup(syscall(SYS_set_tid_address, &tid_word) > 0, "set_tid_address");
	zdtm_setup(!syscall(SYS_set_robust_list, &robust, sizeof(robust)), "set_robust_list");
	zdtm_setup(!prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs");
	zdtm_setup(!prctl(PR_SET_DUMPABLE, 0), "PR_SET_DUMPABLE");
	zdtm_setup(!prctl(PR_SET_PDEATHSIG, SIGWINCH), "PR_SET_PDEATHSIG");
	zdtm_setup(!prctl(PR_SET_CHILD_SUBREAPER, 1), "PR_SET_CHILD_SUBREAPER");
	if (&__rseq_size && __rseq_size) {
		/* glibc registered rseq: registering the same area again must say EBUSY */
		void *area = (char *)__builtin_thread_pointer() + __rseq_offset;

		rseq_registered = syscall(SYS_rseq, area, __rseq_size < 32 ? 32 : __rseq_size, 0, RSEQ_SIG) == -1 &&
				  errno == EBUSY;
		zdtm_setup(rseq_registered, "rseq is not registered by glibc before the dump");
	} else {
		zdtm_msg("INFO: glibc did not register rseq");
	}
	zdtm_ready();
	zdtm_wait_check();
	if (umask(0) != 027)
		zdtm_fail("umask lost");
	zdtm_setup(getcwd(cwd, sizeof(cwd)), "getcwd");
	if (strcmp(cwd, cwd_before))
		zdtm_fail("cwd %s, was %s", cwd, cwd_before);
	prctl(PR_GET_NAME, comm);
	if (strcmp(comm, "zdtm-misc"))
		zdtm_fail("comm %s", comm);
	if (personality(0xffffffff) != ADDR_NO_RANDOMIZE)
		zdtm_fail("personality %#x", personality(0xffffffff));
	if (rseq_registered) {
		void *area = (char *)__builtin_thread_pointer() + __rseq_offset;

		errno = 0;
		if (syscall(SYS_rseq, area, __rseq_size < 32 ? 32 : __rseq_size, 0, RSEQ_SIG) != -1 || errno != EBUSY)
			zdtm_fail("rseq is no longer registered (re-register: %s)", strerror(errno));
	}
	if (prctl(PR_GET_TID_ADDRESS, &tidp) || tidp != &tid_word)
		zdtm_fail("tid address %p, expected %p", tidp, (void *)&tid_word);
	if (syscall(SYS_get_robust_list, 0, &head, &len) || head != &robust || len != sizeof(robust))
		zdtm_fail("robust list %p/%zu, expected %p/%zu", head, len, (void *)&robust, sizeof(robust));
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		zdtm_fail("no_new_privs lost");
	if (prctl(PR_GET_DUMPABLE) != 0)
		zdtm_fail("dumpable %d, expected 0", (int)prctl(PR_GET_DUMPABLE));
	if (prctl(PR_GET_PDEATHSIG, &sig) || sig != SIGWINCH)
		zdtm_fail("pdeathsig %d", sig);
	sig = 0;
	if (prctl(PR_GET_CHILD_SUBREAPER, &sig) || sig != 1)
		zdtm_fail("child subreaper %d", sig);
}

static void do_chroot(void)
{
	struct stat st_before, st_after;

	zdtm_setup(!mkdir("jail", 0755) || errno == EEXIST, "mkdir jail");
	zdtm_setup(!chroot("jail"), "chroot");
	zdtm_setup(!chdir("/"), "chdir /");
	zdtm_setup(!stat("/", &st_before), "stat /");
	zdtm_ready();
	zdtm_wait_check();
	zdtm_setup(!stat("/", &st_after), "stat /");
	if (st_after.st_ino != st_before.st_ino || st_after.st_dev != st_before.st_dev)
		zdtm_fail("root is not the jail any more");
	if (!access("/bin", F_OK) || !access("/proc", F_OK))
		zdtm_fail("the real root is visible");
}

static void seccomp(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	long r;

	zdtm_setup(!syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog), "seccomp");
	zdtm_setup(syscall(SYS_getppid) == -1 && errno == EPERM, "filter not active");
	zdtm_ready();
	zdtm_wait_check();
	if (prctl(PR_GET_SECCOMP) != 2)
		zdtm_fail("seccomp mode %d", (int)prctl(PR_GET_SECCOMP));
	errno = 0;
	r = syscall(SYS_getppid);
	if (r != -1 || errno != EPERM)
		zdtm_fail("getppid returned %ld (%s): the filter is gone", r, strerror(errno));
	if (getpid() <= 0)
		zdtm_fail("the filter blocks getpid");
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	zdtm_init();
	if (!strcmp(mode, "creds"))
		creds();
	else if (!strcmp(mode, "rlimits"))
		rlimits();
	else if (!strcmp(mode, "misc"))
		misc();
	else if (!strcmp(mode, "chroot"))
		do_chroot();
	else if (!strcmp(mode, "seccomp"))
		seccomp();
	else
		zdtm_fail("unknown mode %s", mode);
	zdtm_pass();
}
