/* rseq.c: a thread that lives inside an rseq critical section.
 *
 * State: a worker thread (a second thread, or with "leader" the main thread) uses glibc's registered rseq area (thread pointer + __rseq_offset) and arms
 * rseq->rseq_cs with a descriptor (flags 0) whose critical section is a one-instruction endless loop
 * (zdtm_rseq_start: jmp zdtm_rseq_start).  Its abort handler (the 4 bytes before it are the RSEQ signature
 * 0x53053053, as the ABI requires) increments zdtm_rseq_aborts, re-arms rseq_cs and falls into the section;
 * the store that arms it is the last instruction before start_ip, so the section is never entered unarmed.
 * The thread is in the section all the time except for those two instructions (the abort handler,
 * [abort_ip, start_ip)).  Every preemption, migration or signal delivery sends it to abort_ip.
 *
 * Before READY the target prints "INFO: rseq tid=T start=S post=P abort=A cs=C area=R" (hex addresses) and
 * makes sure one abort happened (a SIGUSR1 to the worker: signal delivery inside the section aborts it).
 *
 * Check: the worker is alive (a wrong ip or a bad rseq_cs would have killed the process with SIGSEGV), a
 * SIGUSR1 to it makes zdtm_rseq_aborts grow again (the section is armed and aborts), and both threads' rseq
 * areas carry a valid cpu_id (rseq registrations restored).
 */
#include "zdtm.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/rseq.h>
#include <sys/syscall.h>

volatile unsigned long zdtm_rseq_aborts;
struct rseq_cs zdtm_rseq_cs __attribute__((aligned(32)));

/* zdtm_rseq_spin(&rseq->rseq_cs, &descriptor): never returns. */
void zdtm_rseq_spin(volatile uint64_t *rseq_cs, struct rseq_cs *desc);
extern const char zdtm_rseq_abort[], zdtm_rseq_start[], zdtm_rseq_post[];

asm(".text\n"
    ".globl zdtm_rseq_spin\n"
    ".type zdtm_rseq_spin, @function\n"
    "zdtm_rseq_spin:\n\t"
    "jmp zdtm_rseq_arm\n\t"
    ".long 0x53053053\n" /* RSEQ_SIG: the 4 bytes before abort_ip */
    ".globl zdtm_rseq_abort\n"
    "zdtm_rseq_abort:\n\t"
    "addq $1, zdtm_rseq_aborts(%rip)\n"
    "zdtm_rseq_arm:\n\t"
    "movq %rsi, (%rdi)\n" /* arm: the last instruction before start_ip */
    ".globl zdtm_rseq_start\n"
    "zdtm_rseq_start:\n\t"
    "jmp zdtm_rseq_start\n"
    ".globl zdtm_rseq_post\n"
    "zdtm_rseq_post:\n\t"
    "ud2\n"
    ".size zdtm_rseq_spin, . - zdtm_rseq_spin\n");

static volatile pid_t worker_tid;
static struct rseq *worker_area;

static struct rseq *my_area(void)
{
	return (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

static void on_usr1(int sig)
{
	(void)sig;
}

/* The spinning thread ("worker", whichever thread it is): never returns. */
static void spin(void)
{
	struct rseq *rs = my_area();
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR2); /* the check request is for the other thread */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	worker_area = rs;
	worker_tid = syscall(SYS_gettid);
	zdtm_rseq_spin((volatile uint64_t *)&rs->rseq_cs, &zdtm_rseq_cs);
}

static void *spin_thread(void *arg)
{
	(void)arg;
	spin();
	return NULL;
}

/* Send SIGUSR1 to the worker until zdtm_rseq_aborts exceeds `than` (5 s at most). */
static int poke_abort(unsigned long than)
{
	for (int i = 0; i < 500; i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		syscall(SYS_tgkill, getpid(), worker_tid, SIGUSR1);
		nanosleep(&ts, NULL);
		if (zdtm_rseq_aborts > than)
			return 1;
	}
	return 0;
}

/* The other thread: reports, waits for the check request, verifies. */
static void *checker(void *arg)
{
	(void)arg;
	while (!worker_tid)
		sched_yield();
	if (!poke_abort(0))
		zdtm_fail("setup: no rseq abort after 5 s of SIGUSR1 (is the section armed?)");
	zdtm_msg("INFO: rseq tid=%d start=0x%lx post=0x%lx abort=0x%lx cs=0x%lx area=0x%lx", (int)worker_tid,
		 (unsigned long)zdtm_rseq_start, (unsigned long)zdtm_rseq_post, (unsigned long)zdtm_rseq_abort,
		 (unsigned long)&zdtm_rseq_cs, (unsigned long)worker_area);
	zdtm_ready();
	zdtm_wait_check();

	unsigned long before = zdtm_rseq_aborts;
	if (!poke_abort(before))
		zdtm_fail("the worker no longer aborts its rseq section (aborts stuck at %lu)", before);
	if ((int)my_area()->cpu_id < 0)
		zdtm_fail("checking thread: rseq cpu_id %d (not registered)", (int)my_area()->cpu_id);
	if ((int)worker_area->cpu_id < 0)
		zdtm_fail("worker: rseq cpu_id %d (not registered)", (int)worker_area->cpu_id);
	zdtm_msg("INFO: aborts %lu -> %lu", before, zdtm_rseq_aborts);
	zdtm_pass();
	return NULL;
}

/* argv[1]: "thread" (default: a second thread spins, the leader checks) or "leader" (the leader spins). */
int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
	int leader = argc > 1 && !strcmp(argv[1], "leader");
	pthread_t th;

	zdtm_init();
	if (__rseq_size == 0) {
		zdtm_msg("SKIP: glibc did not register rseq (glibc.pthread.rseq=0?)");
		return 0;
	}
	sigemptyset(&sa.sa_mask);
	zdtm_setup(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction(SIGUSR1)");
	zdtm_rseq_cs.version = 0;
	zdtm_rseq_cs.flags = 0;
	zdtm_rseq_cs.start_ip = (uintptr_t)zdtm_rseq_start;
	zdtm_rseq_cs.post_commit_offset = (uintptr_t)zdtm_rseq_post - (uintptr_t)zdtm_rseq_start;
	zdtm_rseq_cs.abort_ip = (uintptr_t)zdtm_rseq_abort;
	errno = pthread_create(&th, NULL, leader ? checker : spin_thread, NULL);
	zdtm_setup(errno == 0, "pthread_create");
	if (leader)
		spin();
	checker(NULL);
	return 0;
}
