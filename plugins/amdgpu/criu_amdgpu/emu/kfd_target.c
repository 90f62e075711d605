/*
 * A KFD client for the emulated /dev/kfd: opens the device at argv[1], checks the version, allocates BOs on the
 * GPU argv[2] (decimal gpu_id) with real ioctls, then either checkpoints itself (argv[3] == "self": PROCESS_INFO,
 * CHECKPOINT, UNPAUSE on its own descriptor, as the owner may) or waits to be dumped ("wait"): then each SIGUSR1
 * makes it ask the device about itself again (PROCESS_INFO + UNPAUSE) and print "probe=<num_bos>,<pid>", which
 * shows, after a restore, that the restored task owns a working KFD process with its BOs.
 *
 * "wait RENDER OUT": also opens the render node RENDER, allocates a VRAM and a GTT BO and maps each through the
 * render node at its mmap offset, at its GPU VA (as a ROCm runtime does), fills them with random bytes it keeps a
 * private copy of, writes the bytes to the file OUT (VRAM then GTT) and msyncs. Each SIGUSR1 then also compares
 * the mappings with the copies: "verify=ok", or "verify=bad:<bo>:<offset>". "wait RENDER OUT gem" adds a BO made
 * through the render node itself (AMDGPU_GEM_CREATE + GEM_MMAP), mapped and filled the same way.
 *
 * Prints "key=value" lines; the layouts are the kfd_ioctl.h / amdgpu_drm.h structs (x86_64), written here so the
 * test needs no kernel headers.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
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
struct gem_create { uint64_t bo_size, alignment, domains, domain_flags; }; /* in; out: u32 handle */
struct gem_mmap { uint64_t handle_or_offset; };                           /* in: u32 handle; out: u64 offset */
#define DRM_IOC(dir, nr, size) (((unsigned long)(dir) << 30) | ((unsigned long)(size) << 16) | ('d' << 8) | (nr))
#define GEM_CREATE DRM_IOC(3, 0x40, sizeof(struct gem_create))
#define GEM_MMAP DRM_IOC(3, 0x41, sizeof(struct gem_mmap))
#define FLAG_VRAM 1u
#define FLAG_GTT 2u
#define FLAG_WRITABLE (1u << 31)

struct bo { const char *name; uint8_t *map, *copy; size_t size; };
static struct bo bos[3];
static int nbos;

static volatile sig_atomic_t probe;
static void on_usr1(int sig) { (void)sig; probe = 1; }

static void die(const char *what) { printf("error=%s\n", what); fflush(stdout); perror(what); exit(1); }

/* Map a BO through the render node at its mmap offset, at va (or anywhere for va 0); fill it with random bytes. */
static void map_bo(const char *name, int render, uint64_t va, size_t size, uint64_t offset, FILE *out)
{
	int fixed = va ? MAP_FIXED : 0;
	uint8_t *p = mmap((void *)(uintptr_t)va, size, PROT_READ | PROT_WRITE, MAP_SHARED | fixed, render, (off_t)offset);
	if (p == MAP_FAILED)
		die("mmap BO");
	uint8_t *copy = malloc(size);
	for (size_t got = 0; got < size;) {
		ssize_t n = getrandom(copy + got, size - got, 0);
		if (n <= 0)
			die("getrandom");
		got += (size_t)n;
	}
	memcpy(p, copy, size);
	if (msync(p, size, MS_SYNC))
		die("msync");
	if (fwrite(copy, 1, size, out) != size)
		die("write pattern");
	bos[nbos++] = (struct bo){ name, p, copy, size };
	printf("%s=%" PRIxPTR ",%zu,%" PRIu64 "\n", name, (uintptr_t)p, size, offset);
}

static uint64_t reserve(size_t size)
{
	void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("reserve VA");
	return (uintptr_t)p;
}

static void kfd_bo(const char *name, int fd, int render, uint32_t gpu, uint32_t flags, size_t size, FILE *out)
{
	struct alloc_args a = { .va_addr = reserve(size), .size = size, .gpu_id = gpu, .flags = flags | FLAG_WRITABLE };
	if (ioctl(fd, ALLOC_MEMORY, &a))
		die("ALLOC BO");
	map_bo(name, render, a.va_addr, size, a.mmap_offset, out);
}

static void verify(void)
{
	for (int i = 0; i < nbos; i++)
		for (size_t j = 0; j < bos[i].size; j++)
			if (bos[i].map[j] != bos[i].copy[j]) {
				printf("verify=bad:%s:%zu\n", bos[i].name, j);
				return;
			}
	printf("verify=ok\n");
}

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
	if (argc >= 6) {
		int render = open(argv[4], O_RDWR);
		if (render < 0)
			die("open render");
		FILE *out = fopen(argv[5], "w");
		if (!out)
			die("open pattern file");
		kfd_bo("vram", fd, render, gpu, FLAG_VRAM, 4 * 4096, out);
		kfd_bo("gtt", fd, render, gpu, FLAG_GTT, 2 * 4096, out);
		if (argc >= 7 && strcmp(argv[6], "gem") == 0) {
			struct gem_create c = { .bo_size = 4096, .alignment = 4096, .domains = 4 /* VRAM */ };
			if (ioctl(render, GEM_CREATE, &c))
				die("GEM_CREATE");
			uint32_t handle; /* the union's out part: the handle over bo_size's low half */
			memcpy(&handle, &c, sizeof(handle));
			struct gem_mmap m = { .handle_or_offset = handle };
			if (ioctl(render, GEM_MMAP, &m))
				die("GEM_MMAP");
			map_bo("gem", render, 0, 4096, m.handle_or_offset, out);
		}
		fclose(out);
		printf("render_fd=%d\n", render);
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
		if (nbos)
			verify();
		fflush(stdout);
	}
}
