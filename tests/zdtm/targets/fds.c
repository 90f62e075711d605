/* fds.c: descriptors of the simple kinds come back with their file, flags, position and close-on-exec.
 *
 *  0 /dev/null, 1 and 2 the harness's files (O_APPEND)
 *  3 "rw.dat" O_RDWR at 1234          4 "ro.dat" O_RDONLY|O_CLOEXEC at 4103
 *  5 "log.txt" O_WRONLY|O_APPEND       6 /dev/null O_WRONLY       7 /dev/zero O_RDONLY
 *  8 the control directory, O_DIRECTORY|O_RDONLY                  9 "a b.dat" O_RDWR|O_NONBLOCK|O_NOATIME-free
 * 20 dup(3): the same open file description (moving one moves the other)
 * 42 "sparse.dat", a file with a hole, at 1 MiB (past its end)
 * After restore each one is compared with fstat/fcntl/lseek results taken before the dump, then used: reads
 * return the right bytes at the right place, the log appends at its end, /dev/zero reads zeros.
 */
#include "zdtm.h"
#include <fcntl.h>
#include <sys/stat.h>

#define NFD 64

struct fdstate {
	int fl, fd_flags;
	off_t pos;
	dev_t dev;
	ino_t ino;
};

static struct fdstate st[NFD];
static int open_before[NFD];
static const int fds[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20, 42 };

static void record(struct fdstate *s, int fd)
{
	struct stat sb;

	s->fl = fcntl(fd, F_GETFL);
	s->fd_flags = fcntl(fd, F_GETFD);
	s->pos = lseek(fd, 0, SEEK_CUR);
	zdtm_setup(!fstat(fd, &sb), "fstat");
	s->dev = sb.st_dev;
	s->ino = sb.st_ino;
}

static int at(const char *path, int flags, int want)
{
	int fd = open(path, flags, 0644);

	zdtm_setup(fd >= 0, path);
	if (fd != want) {
		zdtm_setup(dup2(fd, want) == want, "dup2");
		close(fd);
		if (flags & O_CLOEXEC)
			fcntl(want, F_SETFD, FD_CLOEXEC);
	}
	return want;
}

static void content(const char *path, int len)
{
	char buf[8192];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	for (int i = 0; i < len; i++)
		buf[i] = 'a' + (i * 7) % 26;
	zdtm_setup(fd >= 0 && write(fd, buf, len) == len, path);
	close(fd);
}

int main(void)
{
	char c, buf[16];

	zdtm_init();
	content("rw.dat", 8192);
	content("ro.dat", 8192);
	content("a b.dat", 100);
	at("rw.dat", O_RDWR, 3);
	at("ro.dat", O_RDONLY | O_CLOEXEC, 4);
	at("log.txt", O_WRONLY | O_APPEND | O_CREAT | O_TRUNC, 5);
	at("/dev/null", O_WRONLY, 6);
	at("/dev/zero", O_RDONLY, 7);
	at(".", O_DIRECTORY | O_RDONLY, 8);
	at("a b.dat", O_RDWR | O_NONBLOCK, 9);
	at("sparse.dat", O_RDWR | O_CREAT | O_TRUNC, 42);
	zdtm_setup(dup2(3, 20) == 20, "dup2 20");
	zdtm_setup(lseek(3, 1234, SEEK_SET) == 1234, "lseek 3");
	zdtm_setup(lseek(4, 4103, SEEK_SET) == 4103, "lseek 4");
	zdtm_setup(write(5, "before\n", 7) == 7, "write log");
	zdtm_setup(pwrite(42, "end", 3, 512 << 10) == 3, "pwrite sparse");
	zdtm_setup(lseek(42, 1 << 20, SEEK_SET) == 1 << 20, "lseek 42");
	for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		record(&st[fds[i]], fds[i]);
	for (int fd = 0; fd < NFD; fd++)
		open_before[fd] = fcntl(fd, F_GETFD) >= 0;
	zdtm_ready();
	zdtm_wait_check();

	for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		struct fdstate now;
		int fd = fds[i];

		if (fcntl(fd, F_GETFD) < 0)
			zdtm_fail("fd %d is not open", fd);
		record(&now, fd);
		if (now.fl != st[fd].fl)
			zdtm_fail("fd %d: flags %#o, were %#o", fd, now.fl, st[fd].fl);
		if (now.fd_flags != st[fd].fd_flags)
			zdtm_fail("fd %d: close-on-exec %d, was %d", fd, now.fd_flags, st[fd].fd_flags);
		if (now.pos != st[fd].pos && fd != 1 && fd != 2) /* 1 and 2 are written to meanwhile */
			zdtm_fail("fd %d: position %ld, was %ld", fd, (long)now.pos, (long)st[fd].pos);
		if (now.dev != st[fd].dev || now.ino != st[fd].ino)
			zdtm_fail("fd %d: another file (dev/ino %lx/%lu, was %lx/%lu)", fd, (long)now.dev,
				  (unsigned long)now.ino, (long)st[fd].dev, (unsigned long)st[fd].ino);
	}
	for (int fd = 0; fd < NFD; fd++)
		if (open_before[fd] != (fcntl(fd, F_GETFD) >= 0))
			zdtm_fail("fd %d is %s after restore", fd, open_before[fd] ? "closed" : "open");
	if (read(3, &c, 1) != 1 || c != 'a' + (1234 * 7) % 26)
		zdtm_fail("fd 3 reads the wrong byte");
	if (lseek(20, 0, SEEK_CUR) != 1235)
		zdtm_fail("fd 20 is no longer a dup of fd 3 (position %ld)", (long)lseek(20, 0, SEEK_CUR));
	if (read(4, &c, 1) != 1 || c != 'a' + (4103 * 7) % 26)
		zdtm_fail("fd 4 reads the wrong byte");
	if (write(5, "after\n", 6) != 6)
		zdtm_fail("log write: %s", strerror(errno));
	{
		int fd = open("log.txt", O_RDONLY);
		char log[32] = { 0 };

		if (fd < 0 || read(fd, log, sizeof(log) - 1) != 13 || strcmp(log, "before\nafter\n"))
			zdtm_fail("O_APPEND log holds %s", log);
		close(fd);
	}
	if (write(6, "x", 1) != 1)
		zdtm_fail("/dev/null write");
	memset(buf, 1, sizeof(buf));
	if (read(7, buf, sizeof(buf)) != sizeof(buf) || buf[0] || buf[15])
		zdtm_fail("/dev/zero read");
	{
		int fd = openat(8, "rw.dat", O_RDONLY);

		if (fd < 0)
			zdtm_fail("openat on the directory fd: %s", strerror(errno));
		close(fd);
	}
	if (pread(42, buf, 3, 512 << 10) != 3 || memcmp(buf, "end", 3))
		zdtm_fail("sparse.dat content");
	zdtm_pass();
}
