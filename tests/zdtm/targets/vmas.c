/* vmas.c MODE: one kind of memory mapping, filled with a known pattern, checked by the target after restore.
 *
 * anon         private anonymous RW pages with a per-page pattern, untouched pages (must read 0), a page that
 *              was written with zeros, a read-only and an executable region with content
 * file_private MAP_PRIVATE file mapping: COWed pages keep their private content; pages read or never touched
 *              still follow the file (pwrite after restore shows through)
 * file_shared  MAP_SHARED file mapping: writes go to the file both ways after restore
 * stack        a deep main-stack frame with a pattern, a MAP_GROWSDOWN region that still grows after restore
 * heap         malloc'd chunks and sbrk'd memory with patterns; sbrk(0) unchanged; brk still grows
 * guard        PROT_NONE pages holding content (made PROT_NONE after writing) and a 1 GiB PROT_NONE reservation
 * madvise      NOHUGEPAGE, HUGEPAGE, DONTDUMP, DONTFORK, WIPEONFORK regions (the harness compares VmFlags)
 * mlock        an mlock'ed region (VmFlags lo, VmLck)
 * anon_name    [anon:zdtm-named] via PR_SET_VMA_ANON_NAME
 * sparse       17 TiB MAP_NORESERVE with three touched pages, one beyond 2^31 pages from the start
 * big          1 GiB of xorshift random data, checked by a 64-bit hash
 * over2g       2 GiB + 1 MiB of contiguous present pages (one word per page): more than one process_vm_* call
 *              can move (the kernel caps each at MAX_RW_COUNT, 2 GiB - 4 KiB)
 */
#include "zdtm.h"
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#define PG 4096UL
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

static void fill(char *p, unsigned long pages, unsigned long tag)
{
	for (unsigned long i = 0; i < pages; i++)
		for (unsigned long w = 0; w < PG / 8; w += 61)
			((unsigned long *)(p + i * PG))[w] = zdtm_pattern(tag, i) + w;
}

static int check(const char *p, unsigned long pages, unsigned long tag, const char *what)
{
	for (unsigned long i = 0; i < pages; i++)
		for (unsigned long w = 0; w < PG / 8; w += 61)
			if (((const unsigned long *)(p + i * PG))[w] != zdtm_pattern(tag, i) + w)
				zdtm_fail("%s: page %lu word %lu: %#lx", what, i, w, ((const unsigned long *)(p + i * PG))[w]);
	return 0;
}

static void check_zero(const char *p, unsigned long len, const char *what)
{
	for (unsigned long i = 0; i < len; i += 8)
		if (*(const unsigned long *)(p + i))
			zdtm_fail("%s: not zero at offset %#lx", what, i);
}

static char *map(unsigned long len, int prot, int flags)
{
	char *p = mmap(NULL, len, prot, flags | MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);

	zdtm_setup(p != MAP_FAILED, "mmap");
	return p;
}

static int make_file(const char *name, unsigned long pages, unsigned long tag)
{
	int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0644);
	char page[PG];

	zdtm_setup(fd >= 0, name);
	for (unsigned long i = 0; i < pages; i++) {
		fill(page, 1, tag + i);
		zdtm_setup(pwrite(fd, page, PG, i * PG) == PG, "pwrite");
	}
	return fd;
}

static void check_page_tag(const char *p, unsigned long tag, const char *what)
{
	check(p, 1, tag, what);
}

static uint64_t hash_region(const uint64_t *p, unsigned long words)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (unsigned long i = 0; i < words; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL + (h >> 29);
	return h;
}

static void __attribute__((noinline)) deep(int level, int check_it)
{
	volatile unsigned long frame[8192]; /* 64 KiB per level */

	for (unsigned long i = 0; i < 8192; i += 7)
		frame[i] = zdtm_pattern(100 + level, i);
	if (level < 4)
		deep(level + 1, check_it);
	else if (!check_it) {
		zdtm_ready();
		zdtm_wait_check();
	}
	for (unsigned long i = 0; i < 8192; i += 7)
		if (frame[i] != zdtm_pattern(100 + level, i))
			zdtm_fail("stack frame %d word %lu", level, i);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	zdtm_init();
	if (!strcmp(mode, "anon")) {
		char *a = map(4096 * PG, PROT_READ | PROT_WRITE, 0);
		char *ro = map(16 * PG, PROT_READ | PROT_WRITE, 0);
		char *x = map(4 * PG, PROT_READ | PROT_WRITE, 0);

		fill(a, 1024, 1);                  /* pages 0..1023 with content */
		memset(a + 2048 * PG, 0, PG);      /* a touched page of zeros */
		fill(a + 3000 * PG, 1, 3000);      /* one lone page */
		fill(ro, 16, 2);
		zdtm_setup(!mprotect(ro, 16 * PG, PROT_READ), "mprotect ro");
		fill(x, 4, 3);
		zdtm_setup(!mprotect(x, 4 * PG, PROT_READ | PROT_EXEC), "mprotect x");
		zdtm_ready();
		zdtm_wait_check();
		check(a, 1024, 1, "anon");
		check_zero(a + 1024 * PG, (2048 - 1024) * PG, "untouched anon");
		check_zero(a + 2048 * PG, PG, "zero-written page");
		check(a + 3000 * PG, 1, 3000, "lone page");
		check(ro, 16, 2, "read-only anon");
		check(x, 4, 3, "r-x anon");
		a[4000 * PG] = 1; /* still writable */
	} else if (!strcmp(mode, "file_private")) {
		int fd = make_file("private.dat", 16, 1000);
		char *p = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		char page[PG];
		volatile char sink;

		zdtm_setup(p != MAP_FAILED, "mmap file private");
		fill(p + PG, 1, 7001);     /* COW page 1 */
		fill(p + 3 * PG, 1, 7003); /* COW page 3 */
		sink = p[0];               /* page 0 read only: still the file's page */
		(void)sink;
		zdtm_ready();
		zdtm_wait_check();
		check_page_tag(p, 1000, "file page 0");
		check_page_tag(p + 2 * PG, 1002, "file page 2");
		check_page_tag(p + PG, 7001, "COW page 1");
		check_page_tag(p + 3 * PG, 7003, "COW page 3");
		/* the file changes under the mapping: shared-with-file pages must follow, COWed ones must not */
		for (unsigned long i = 0; i < 6; i++) {
			fill(page, 1, 9000 + i);
			zdtm_setup(pwrite(fd, page, PG, i * PG) == PG, "pwrite after restore");
		}
		check_page_tag(p, 9000, "read-only-touched page 0 after file update");
		check_page_tag(p + 5 * PG, 9005, "untouched page 5 after file update");
		check_page_tag(p + PG, 7001, "COW page 1 after file update");
		check_page_tag(p + 3 * PG, 7003, "COW page 3 after file update");
	} else if (!strcmp(mode, "file_shared")) {
		int fd = make_file("shared.dat", 16, 2000);
		char *p = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		char page[PG];

		zdtm_setup(p != MAP_FAILED, "mmap file shared");
		fill(p + 2 * PG, 1, 8002);
		zdtm_ready();
		zdtm_wait_check();
		check_page_tag(p + 2 * PG, 8002, "shared page 2");
		check_page_tag(p + 7 * PG, 2007, "shared page 7");
		fill(p + 4 * PG, 1, 8004);
		zdtm_setup(pread(fd, page, PG, 4 * PG) == PG, "pread");
		check_page_tag(page, 8004, "write through the mapping reaches the file");
		fill(page, 1, 8006);
		zdtm_setup(pwrite(fd, page, PG, 6 * PG) == PG, "pwrite");
		check_page_tag(p + 6 * PG, 8006, "write to the file shows in the mapping");
	} else if (!strcmp(mode, "stack")) {
		char *g = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0);

		zdtm_setup(g != MAP_FAILED, "mmap growsdown");
		fill(g, 16, 11);
		deep(0, 0);
		check(g, 16, 11, "growsdown region");
		deep(0, 1); /* the main stack works as deep as before */
		g[-(long)PG] = 1; /* the GROWSDOWN region still grows */
		if (g[-(long)PG] != 1)
			zdtm_fail("growsdown region did not grow");
	} else if (!strcmp(mode, "heap")) {
		char *chunks[64];
		char *base, *cur;

		for (int i = 0; i < 64; i++) {
			chunks[i] = malloc(1000 + i * 37);
			zdtm_setup(chunks[i], "malloc");
			memset(chunks[i], i + 1, 1000 + i * 37);
		}
		base = sbrk(64 * PG);
		zdtm_setup(base != (void *)-1, "sbrk");
		fill(base, 64, 12);
		cur = sbrk(0);
		zdtm_ready();
		zdtm_wait_check();
		for (int i = 0; i < 64; i++)
			for (int j = 0; j < 1000 + i * 37; j++)
				if (chunks[i][j] != i + 1)
					zdtm_fail("malloc chunk %d byte %d", i, j);
		check(base, 64, 12, "sbrk region");
		if (sbrk(0) != cur)
			zdtm_fail("sbrk(0) moved: %p, was %p", sbrk(0), cur);
		base = sbrk(16 * PG);
		if (base == (void *)-1)
			zdtm_fail("brk no longer grows: %s", strerror(errno));
		fill(base, 16, 13);
		check(base, 16, 13, "new brk memory");
		free(chunks[3]);
		zdtm_setup(malloc(100) != NULL, "malloc after restore");
	} else if (!strcmp(mode, "guard")) {
		char *p = map(3 * PG, PROT_READ | PROT_WRITE, 0);
		char *res = mmap(NULL, 1UL << 30, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		zdtm_setup(res != MAP_FAILED, "mmap reservation");
		fill(p, 1, 14);
		fill(p + PG, 1, 15);
		fill(p + 2 * PG, 1, 16);
		zdtm_setup(!mprotect(p + PG, PG, PROT_NONE), "mprotect none");
		zdtm_ready();
		zdtm_wait_check();
		check(p, 1, 14, "below the guard");
		check(p + 2 * PG, 1, 16, "above the guard");
		zdtm_setup(!mprotect(p + PG, PG, PROT_READ), "mprotect guard readable");
		check(p + PG, 1, 15, "content of the PROT_NONE page");
		zdtm_setup(!mprotect(res + (1UL << 29), PG, PROT_READ | PROT_WRITE), "mprotect in reservation");
		check_zero(res + (1UL << 29), PG, "reservation page");
	} else if (!strcmp(mode, "madvise")) {
		static const struct { int advice; const char *name; } adv[] = {
			{ MADV_NOHUGEPAGE, "nohugepage" }, { MADV_HUGEPAGE, "hugepage" }, { MADV_DONTDUMP, "dontdump" },
			{ MADV_DONTFORK, "dontfork" }, { MADV_WIPEONFORK, "wipeonfork" },
		};
		char *r[5];

		for (int i = 0; i < 5; i++) {
			r[i] = map(8 * PG, PROT_READ | PROT_WRITE, 0);
			fill(r[i], 8, 20 + i);
			zdtm_setup(!madvise(r[i], 8 * PG, adv[i].advice), adv[i].name);
		}
		zdtm_ready();
		zdtm_wait_check();
		for (int i = 0; i < 5; i++)
			check(r[i], 8, 20 + i, adv[i].name);
	} else if (!strcmp(mode, "mlock")) {
		char *p = map(256 * PG, PROT_READ | PROT_WRITE, 0);

		fill(p, 256, 30);
		zdtm_setup(!mlock(p, 256 * PG), "mlock");
		zdtm_ready();
		zdtm_wait_check();
		check(p, 256, 30, "mlocked region");
	} else if (!strcmp(mode, "anon_name")) {
		char *p = map(8 * PG, PROT_READ | PROT_WRITE, 0);

		fill(p, 8, 31);
		if (prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, 8 * PG, "zdtm-named")) {
			zdtm_msg("SKIP: PR_SET_VMA_ANON_NAME: %s (kernel without CONFIG_ANON_VMA_NAME)", strerror(errno));
			return 0;
		}
		zdtm_ready();
		zdtm_wait_check();
		check(p, 8, 31, "named region");
	} else if (!strcmp(mode, "sparse")) {
		unsigned long len = 17UL << 40; /* 17 TiB: 4,563,402,752 pages > 2^32 */
		unsigned long mid = (len / 2) & ~(PG - 1), last = len - PG;
		char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		zdtm_setup(p != MAP_FAILED, "mmap 17 TiB");
		if (mid / PG <= (1UL << 31))
			zdtm_fail("setup: middle page index %lu is not above 2^31", mid / PG);
		fill(p, 1, 40);
		fill(p + mid, 1, 41);
		fill(p + last, 1, 42);
		zdtm_ready();
		zdtm_wait_check();
		check(p, 1, 40, "first page");
		check(p + mid, 1, 41, "middle page (index > 2^31)");
		check(p + last, 1, 42, "last page");
		check_zero(p + PG, PG, "untouched page 1");
		check_zero(p + (1UL << 44), PG, "untouched page at 16 TiB");
	} else if (!strcmp(mode, "big")) {
		unsigned long len = 1UL << 30;
		uint64_t *p = (uint64_t *)map(len, PROT_READ | PROT_WRITE, 0);
		uint64_t x = 0x2545f4914f6cdd1dULL ^ (uint64_t)getpid(), h;

		for (unsigned long i = 0; i < len / 8; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			p[i] = x;
		}
		h = hash_region(p, len / 8);
		zdtm_msg("INFO: hash %016lx", (unsigned long)h);
		zdtm_ready();
		zdtm_wait_check();
		if (hash_region(p, len / 8) != h)
			zdtm_fail("1 GiB region hash changed");
	} else if (!strcmp(mode, "over2g")) {
		unsigned long pages = ((2UL << 30) + (1UL << 20)) / PG;
		char *p = map(pages * PG, PROT_READ | PROT_WRITE, 0);

		for (unsigned long i = 0; i < pages; i++)
			*(unsigned long *)(p + i * PG + (i % 500) * 8) = zdtm_pattern(50, i);
		zdtm_ready();
		zdtm_wait_check();
		for (unsigned long i = 0; i < pages; i++) {
			unsigned long *w = (unsigned long *)(p + i * PG);

			if (w[i % 500] != zdtm_pattern(50, i))
				zdtm_fail("page %lu of %lu lost its word", i, pages);
			if (w[(i + 1) % 500] || w[511])
				zdtm_fail("page %lu of %lu is not zero around its word", i, pages);
		}
	} else {
		zdtm_fail("unknown mode %s", mode);
	}
	zdtm_pass();
}
