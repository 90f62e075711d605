/* regs.c MODE: CPU state that only the registers hold, verified by the target after restore.
 *
 * gpr     rbx rcx rdx rsi rdi r8-r15 hold patterns inside an asm loop that compares them on every iteration;
 *         READY is written by a raw syscall from inside the loop's setup, so the dump always finds the task there
 * sse     xmm0-15 patterns, a non-default MXCSR (FTZ, DAZ, round-to-zero), x87 control word and st(0)
 * avx     ymm0-15 patterns (upper halves included)
 * avx512  zmm0-31 and k0-7 patterns
 * tls     a __thread variable, fs base (ARCH_GET_FS) and a gs base set with ARCH_SET_GS
 *
 * Vector modes load the registers, write READY with a raw syscall (which preserves them), spin on a flag that
 * only GPRs touch, then store the registers and compare.  SIGUSR2's handler sets the flag; the kernel saves and
 * restores the whole xstate around the handler, so the handler does not disturb the registers under test.
 */
#include "zdtm.h"
#include <asm/prctl.h>
#include <cpuid.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "gpr_loop.h"

static void on_usr2(int sig)
{
	(void)sig;
	stop = 1;
	zdtm_check_requested = 1;
}

#define R16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define R32(M) R16(M) M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28) M(29) M(30) M(31)
#define SPIN                                                                                  \
	"mov $1, %%eax\n\tmov $1, %%edi\n\tlea %[msg], %%rsi\n\tmov $6, %%edx\n\tsyscall\n\t" \
	"1:\n\tincq %[cnt]\n\tcmpl $0, %[stop]\n\tje 1b\n\t"
#define SPIN_CLOBBERS "rax", "rcx", "rdx", "rsi", "rdi", "r11", "memory", "cc"

static uint8_t in[32 * 64] __attribute__((aligned(64))), out[32 * 64] __attribute__((aligned(64)));
static uint64_t kin[8], kout[8];

static void pattern(void)
{
	for (unsigned i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7 + 13 + (i >> 6));
	for (int i = 0; i < 8; i++)
		kin[i] = zdtm_pattern(77, i);
}

static void compare(unsigned regs, unsigned width, const char *name)
{
	for (unsigned r = 0; r < regs; r++)
		if (memcmp(in + r * width, out + r * width, width))
			zdtm_fail("%s%u differs after restore", name, r);
}

static void sse(void)
{
#define LX(n) "movdqu " #n "*16(%[in]), %%xmm" #n "\n\t"
#define SX(n) "movdqu %%xmm" #n ", " #n "*16(%[out])\n\t"
	uint32_t mxcsr_in = 0x1f80 | 0x8000 | 0x0040 | 0x6000, mxcsr_out = 0;
	uint16_t fcw_in = 0x0e7f, fcw_out = 0; /* round to zero, extended precision, all masked */
	double st_in = 3.0e-300 * 7.0, st_out = 0;

	asm volatile("ldmxcsr %[mi]\n\tfldcw %[fi]\n\tfldl %[sti]\n\t" R16(LX) SPIN R16(SX)
		     "stmxcsr %[mo]\n\tfnstcw %[fo]\n\tfstpl %[sto]\n\t"
		     : [cnt] "+m"(counter), [mo] "=m"(mxcsr_out), [fo] "=m"(fcw_out), [sto] "=m"(st_out)
		     : [in] "r"(in), [out] "r"(out), [stop] "m"(stop), [msg] "m"(ready_msg), [mi] "m"(mxcsr_in),
		       [fi] "m"(fcw_in), [sti] "m"(st_in)
		     : SPIN_CLOBBERS, "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
		       "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "st");
	compare(16, 16, "xmm");
	if (mxcsr_out != mxcsr_in)
		zdtm_fail("mxcsr %#x, expected %#x", mxcsr_out, mxcsr_in);
	if (fcw_out != fcw_in)
		zdtm_fail("x87 control word %#x, expected %#x", fcw_out, fcw_in);
	if (st_out != st_in)
		zdtm_fail("x87 st(0) %g, expected %g", st_out, st_in);
}

__attribute__((target("avx"))) static void avx(void)
{
#define LY(n) "vmovdqu " #n "*32(%[in]), %%ymm" #n "\n\t"
#define SY(n) "vmovdqu %%ymm" #n ", " #n "*32(%[out])\n\t"
	asm volatile(R16(LY) SPIN R16(SY) "vzeroupper\n\t"
		     : [cnt] "+m"(counter)
		     : [in] "r"(in), [out] "r"(out), [stop] "m"(stop), [msg] "m"(ready_msg)
		     : SPIN_CLOBBERS, "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
		       "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
	compare(16, 32, "ymm");
}

__attribute__((target("avx512f,avx512bw"))) static void avx512(void)
{
#define LZ(n) "vmovdqu64 " #n "*64(%[in]), %%zmm" #n "\n\t"
#define SZ(n) "vmovdqu64 %%zmm" #n ", " #n "*64(%[out])\n\t"
#define LK(n) "kmovq " #n "*8(%[kin]), %%k" #n "\n\t"
#define SK(n) "kmovq %%k" #n ", " #n "*8(%[kout])\n\t"
#define K8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
	asm volatile(R32(LZ) K8(LK) SPIN R32(SZ) K8(SK) "vzeroupper\n\t"
		     : [cnt] "+m"(counter)
		     : [in] "r"(in), [out] "r"(out), [kin] "r"(kin), [kout] "r"(kout), [stop] "m"(stop),
		       [msg] "m"(ready_msg)
		     : SPIN_CLOBBERS, "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
		       "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19",
		       "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29",
		       "xmm30", "xmm31", "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7");
	compare(32, 64, "zmm");
	for (int i = 0; i < 8; i++)
		if (kout[i] != kin[i])
			zdtm_fail("k%d %#lx, expected %#lx", i, (unsigned long)kout[i], (unsigned long)kin[i]);
}

static __thread unsigned long tls_var = 0x7154715471547154UL;
static unsigned long gs_block[4] = { 0x6a5b4c3d2e1f0011UL, 1, 2, 3 };

static void tls(void)
{
	unsigned long fs0 = 0, fs1 = 0, gs0 = (unsigned long)gs_block, gs1 = 0, via_gs = 0;

	zdtm_setup(!syscall(SYS_arch_prctl, ARCH_GET_FS, &fs0), "ARCH_GET_FS");
	zdtm_setup(!syscall(SYS_arch_prctl, ARCH_SET_GS, gs0), "ARCH_SET_GS");
	tls_var += 1;
	zdtm_ready();
	zdtm_wait_check();
	zdtm_setup(!syscall(SYS_arch_prctl, ARCH_GET_FS, &fs1), "ARCH_GET_FS");
	zdtm_setup(!syscall(SYS_arch_prctl, ARCH_GET_GS, &gs1), "ARCH_GET_GS");
	if (fs1 != fs0)
		zdtm_fail("fs base %#lx, expected %#lx", fs1, fs0);
	if (gs1 != gs0)
		zdtm_fail("gs base %#lx, expected %#lx", gs1, gs0);
	asm volatile("mov %%gs:0, %0" : "=r"(via_gs));
	if (via_gs != gs_block[0])
		zdtm_fail("%%gs:0 reads %#lx, expected %#lx", via_gs, gs_block[0]);
	if (tls_var != 0x7154715471547155UL)
		zdtm_fail("__thread variable %#lx", tls_var);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	struct sigaction sa = { .sa_handler = on_usr2 };

	sigemptyset(&sa.sa_mask);
	zdtm_setup(!sigaction(SIGUSR2, &sa, NULL), "sigaction");
	pattern();
	__builtin_cpu_init();
	if (!strcmp(mode, "gpr")) {
		long bad = gpr_loop();

		if (bad)
			zdtm_fail("register %ld changed while the task was stopped (after %lu iterations)", bad, counter);
	} else if (!strcmp(mode, "sse")) {
		sse();
	} else if (!strcmp(mode, "avx")) {
		if (!__builtin_cpu_supports("avx")) {
			zdtm_msg("SKIP: the CPU has no AVX");
			return 0;
		}
		avx();
	} else if (!strcmp(mode, "avx512")) {
		if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")) {
			zdtm_msg("SKIP: the CPU has no AVX-512F/BW");
			return 0;
		}
		avx512();
	} else if (!strcmp(mode, "tls")) {
		tls();
	} else {
		zdtm_fail("unknown mode %s", mode);
	}
	zdtm_msg("INFO: %lu iterations", counter);
	zdtm_pass();
}
