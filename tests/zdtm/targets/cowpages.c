/*
 * Pages shared copy-on-write between a parent and its child (dump --dedup-cow-pages).
 *
 * The parent fills REGION_PAGES pages with a pattern, then forks. After the fork:
 *   - the child writes its own pattern into pages CHILD_PAGES (they become its own copies),
 *     and drops page DROPPED with MADV_DONTNEED (it then reads zeros there, the parent keeps its page);
 *   - the parent writes a new pattern into pages PARENT_PAGES (the child keeps the old content there).
 * Every other page of the region is still one physical page mapped by both. READY once both are done.
 * On SIGUSR2 each checks every page of the region (one word in 61 of each): the parent its own, then it
 * tells the child (SIGUSR2) and waits for its verdict (exit status 0).
 *
 * argv[1]: size of the region in MiB (default 32). argv[2] "3": three levels, the child forks a grandchild
 * (after its own changes) that rewrites page GRAND_PAGE; the child checks it in turn the same way.
 */
#include "zdtm.h"
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PG 4096UL
static const unsigned long CHILD_PAGES[] = { 0, 17, 4096 };
static const unsigned long PARENT_PAGES[] = { 1, 18, 5000 };
#define DROPPED 600UL
#define GRAND_PAGE 42UL

enum role { PARENT, CHILD, GRANDCHILD };
static pid_t child;

static int in(const unsigned long *set, unsigned long n, unsigned long i)
{
	for (unsigned long k = 0; k < n; k++)
		if (set[k] == i)
			return 1;
	return 0;
}

static void fill(char *page, unsigned long tag, unsigned long i)
{
	for (unsigned long w = 0; w < PG / 8; w += 61)
		((unsigned long *)page)[w] = zdtm_pattern(tag, i) + w;
}

/* tag of page i as the task should see it; 0: zeros */
static unsigned long want_tag(enum role r, unsigned long i)
{
	if (r == GRANDCHILD && i == GRAND_PAGE)
		return 74;
	if (r != PARENT && i == DROPPED)
		return 0;
	if (r != PARENT && in(CHILD_PAGES, 3, i))
		return 72;
	if (r == PARENT && in(PARENT_PAGES, 3, i))
		return 73;
	return 71;
}

static const char *NAMES[] = { "parent", "child", "grandchild" };

static int check(const char *mem, unsigned long pages, enum role r)
{
	for (unsigned long i = 0; i < pages; i++) {
		unsigned long tag = want_tag(r, i);
		const unsigned long *p = (const unsigned long *)(mem + i * PG);

		for (unsigned long w = 0; w < PG / 8; w += 61) {
			unsigned long want = tag ? zdtm_pattern(tag, i) + w : 0;

			if (p[w] != want) {
				zdtm_msg("%s: page %lu word %lu: %#lx, want %#lx", NAMES[r], i, w, p[w], want);
				return 1;
			}
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long pages = (argc > 1 ? strtoul(argv[1], NULL, 0) : 32) * (1UL << 20) / PG;
	int three = argc > 2 && !strcmp(argv[2], "3");
	int sync[2], st;
	char c;
	char *mem;

	zdtm_init();
	if (pages <= 5000)
		zdtm_fail("setup: the region must be over 5000 pages");
	mem = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	zdtm_setup(mem != MAP_FAILED, "mmap");
	for (unsigned long i = 0; i < pages; i++)
		fill(mem + i * PG, 71, i);
	zdtm_setup(pipe(sync) == 0, "pipe");
	child = fork();
	zdtm_setup(child >= 0, "fork");
	if (!child) {
		for (unsigned long k = 0; k < 3; k++)
			fill(mem + CHILD_PAGES[k] * PG, 72, CHILD_PAGES[k]);
		if (madvise(mem + DROPPED * PG, PG, MADV_DONTNEED))
			_exit(3);
		if (three) {
			int sync2[2];
			pid_t grand;

			if (pipe(sync2))
				_exit(5);
			grand = fork();
			if (grand < 0)
				_exit(6);
			if (!grand) {
				fill(mem + GRAND_PAGE * PG, 74, GRAND_PAGE);
				if (write(sync2[1], "x", 1) != 1)
					_exit(4);
				zdtm_wait_check();
				_exit(check(mem, pages, GRANDCHILD) ? 1 : 0);
			}
			if (read(sync2[0], &c, 1) != 1)
				_exit(7);
			if (write(sync[1], "x", 1) != 1)
				_exit(4);
			zdtm_wait_check();
			if (check(mem, pages, CHILD))
				_exit(1);
			kill(grand, SIGUSR2);
			if (waitpid(grand, &st, 0) != grand || !WIFEXITED(st) || WEXITSTATUS(st)) {
				zdtm_msg("grandchild: region content wrong (status %#x)", st);
				_exit(2);
			}
			_exit(0);
		}
		if (write(sync[1], "x", 1) != 1)
			_exit(4);
		zdtm_wait_check();
		_exit(check(mem, pages, CHILD) ? 1 : 0);
	}
	for (unsigned long k = 0; k < 3; k++)
		fill(mem + PARENT_PAGES[k] * PG, 73, PARENT_PAGES[k]);
	zdtm_setup(read(sync[0], &c, 1) == 1, "read (child ready)");
	zdtm_ready();
	zdtm_wait_check();
	if (check(mem, pages, PARENT))
		zdtm_fail("parent: region content wrong");
	kill(child, SIGUSR2);
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st))
		zdtm_fail("child: region content wrong (status %#x)", st);
	zdtm_pass();
}
