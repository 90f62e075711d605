/*
 * A KFD client for the emulated /dev/kfd: opens the device at argv[1], checks the version, allocates BOs on the
 * GPU argv[2] (decimal gpu_id) with real ioctls, then either checkpoints itself (argv[3] == "self": PROCESS_INFO,
 * CHECKPOINT, UNPAUSE on its own descriptor, as the owner may) or waits to be dumped ("wait"): then each SIGUSR1
 * makes it ask the device about itself again (PROCESS_INFO + UNPAUSE) and print "probe=<num_bos>,<pid>", which
 * shows, after a restore, that the restored task owns a working KFD process with its BOs.
 * Prints "key=value" lines; the layouts are the kfd_ioctl.h structs (x86_64), written here so the test needs no
 * kernel headers.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct get_version_args { uint32_t major, minor; };
struct alloc_args { uint64_t va_addr, size, handle, mmap_offset; uint32_t gpu_id, flags; };
struct criu_args {
	uint64_t devices, bos, priv_data, priv_data_size;
	uint32_t num_devices, num_bos, num_objects, pid, op;
} __attribute__((aligned(8)));
struct device_bucket { uint32_t user_gpu_id, actual_gpu_id, drm_fd, pad; };
struct bo_bucket { uint64_t addr, size, offset, restored_offset; uint32_t gpu_id, alloc_flags, dmabuf_fd, pad; };

#define IOC(dir, nr, size) (((unsigned long)(dir) << 30) | ((unsigned long)(size) << 16) | ('K' << 8) | (nr))
#define GET_VERSION IOC(2, 0x01, sizeof(struct get_version_args))
#define ALLOC_MEMORY IOC(3, 0x16, sizeof(struct alloc_args))
#define CRIU_OP IOC(3, 0x22, sizeof(struct criu_args))

static volatile sig_atomic_t probe;
static void on_usr1(int sig) { (void)sig; probe = 1; }

static void die(const char *what) { printf("error=%s\n", what); fflush(stdout); perror(what); exit(1); }

int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	int fd = open(argv[1], O_RDWR);
	if (fd < 0)
		die("open");
	struct get_version_args v = {0};
	if (ioctl(fd, GET_VERSION, &v))
		die("GET_VERSION");
	printf("version=%u.%u\nfd=%d\n", v.major, v.minor, fd);

	uint32_t gpu = (uint32_t)strtoul(argv[2], NULL, 0);
	static char userptr[4096] __attribute__((aligned(4096)));
	struct alloc_args a = { .va_addr = (uintptr_t)userptr, .size = 4096, .gpu_id = gpu, .flags = 1u << 2 };
	if (ioctl(fd, ALLOC_MEMORY, &a))
		die("ALLOC userptr");
	printf("userptr_handle=%" PRIu64 "\n", a.handle);
	struct alloc_args d = { .va_addr = 0x7f0000200000ull, .size = 4096, .gpu_id = gpu, .flags = 1u << 3 };
	if (ioctl(fd, ALLOC_MEMORY, &d))
		die("ALLOC doorbell");
	printf("doorbell_offset=%" PRIu64 "\n", d.mmap_offset);
	fflush(stdout);

	if (strcmp(argv[3], "self") == 0) {
		struct criu_args c = { .op = 0 };
		if (ioctl(fd, CRIU_OP, &c))
			die("PROCESS_INFO");
		printf("num_devices=%u\nnum_bos=%u\npriv_data_size=%" PRIu64 "\npid=%u\n", c.num_devices, c.num_bos,
		       c.priv_data_size, c.pid);
		struct device_bucket *devs = calloc(c.num_devices, sizeof(*devs));
		struct bo_bucket *bos = calloc(c.num_bos, sizeof(*bos));
		void *priv = calloc(1, c.priv_data_size);
		c.devices = (uintptr_t)devs;
		c.bos = (uintptr_t)bos;
		c.priv_data = (uintptr_t)priv;
		c.op = 1;
		if (ioctl(fd, CRIU_OP, &c))
			die("CHECKPOINT");
		for (uint32_t i = 0; i < c.num_bos; i++)
			printf("bo%u=%" PRIx64 ",%" PRIu64 ",%" PRIu64 ",%u,%u\n", i, bos[i].addr, bos[i].size, bos[i].offset,
			       bos[i].gpu_id, bos[i].alloc_flags);
		printf("priv_version=%u\n", *(uint32_t *)priv);
		struct criu_args u = { .op = 2 };
		if (ioctl(fd, CRIU_OP, &u))
			die("UNPAUSE");
		struct criu_args again = { .op = 2 };
		printf("unpause_twice=%d\n", ioctl(fd, CRIU_OP, &again) ? -1 : 0);
		return 0;
	}
	signal(SIGUSR1, on_usr1);
	printf("ready=1\n");
	fflush(stdout);
	for (;;) {
		pause();
		if (!probe)
			continue;
		probe = 0;
		struct criu_args c = { .op = 0 };
		if (ioctl(fd, CRIU_OP, &c)) {
			printf("probe=error\n");
		} else {
			struct criu_args u = { .op = 2 };
			ioctl(fd, CRIU_OP, &u);
			printf("probe=%u,%u\n", c.num_bos, c.pid);
		}
		fflush(stdout);
	}
}
