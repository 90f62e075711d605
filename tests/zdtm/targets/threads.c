/* threads.c N: a process of N threads (issue 4).  Each worker thread has its own __thread value, name
 * ("zt-<i>"), blocked mask (SIGUSR2 and signal 34 + i % 20) and records its TID; it sleeps in 10 ms steps.
 * After restore, on SIGUSR2 (only the main thread accepts it) every thread checks its TID, TLS value, name and
 * mask; the main thread collects the results and says PASS or FAIL.
 */
#include "zdtm.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static __thread unsigned long tls_value;
static atomic_int started, failures, stop_threads;
static int n;

static void *worker(void *arg)
{
	long i = (long)arg;
	char name[16], now[16];
	pid_t tid = gettid();
	sigset_t mask, cur;

	tls_value = zdtm_pattern(i, tid);
	snprintf(name, sizeof(name), "zt-%ld", i);
	prctl(PR_SET_NAME, name);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	sigaddset(&mask, 34 + i % 20);
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
	atomic_fetch_add(&started, 1);
	while (!atomic_load(&stop_threads)) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	prctl(PR_GET_NAME, now);
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	if (gettid() != tid || tls_value != zdtm_pattern(i, tid) || strcmp(now, name) ||
	    sigismember(&cur, 34 + i % 20) != 1 || sigismember(&cur, 34 + (i + 1) % 20) != 0) {
		zdtm_msg("INFO: thread %ld (tid %d): tid %d, tls ok %d, name %s", i, tid, gettid(),
			 tls_value == zdtm_pattern(i, tid), now);
		atomic_fetch_add(&failures, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t *th;
	pthread_attr_t attr;

	n = argc > 1 ? atoi(argv[1]) : 2;
	zdtm_init();
	th = calloc(n, sizeof(*th));
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 << 10);
	for (long i = 1; i < n; i++)
		zdtm_setup(!pthread_create(&th[i], &attr, worker, (void *)i), "pthread_create");
	while (atomic_load(&started) != n - 1) {
		struct timespec ts = { 0, 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	zdtm_ready();
	zdtm_wait_check();
	atomic_store(&stop_threads, 1);
	for (long i = 1; i < n; i++)
		pthread_join(th[i], NULL);
	if (atomic_load(&failures))
		zdtm_fail("%d of %d threads lost their state", atomic_load(&failures), n - 1);
	zdtm_pass();
}
