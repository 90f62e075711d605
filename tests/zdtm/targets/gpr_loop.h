/* gpr_loop.h: an asm loop that keeps patterns in rbx rcx rdx rsi rdi r8-r15 and compares them on every
 * iteration until `stop` is set (by a signal handler).  READY is written by a raw syscall from inside the asm,
 * before rcx/rdx/rsi/rdi/r11 get their patterns, so a dump after READY always finds the task in the loop.
 * Returns 0, or the number of the first register found changed.
 */
#ifndef GPR_LOOP_H
#define GPR_LOOP_H

static volatile int stop;
static unsigned long counter;
static const char ready_msg[] = "READY\n";

#define CHK(imm, reg, idx) \
	"movabs $" imm ", %%rax\n\tcmp %%rax, %%" reg "\n\tmov $" #idx ", %%eax\n\tjne 2f\n\t"

static long gpr_loop(void)
{
	long bad;

	asm volatile(
		"movabs $0x1111111111111101, %%rbx\n\t"
		"movabs $0x8888888888888808, %%r8\n\t"
		"movabs $0x9999999999999909, %%r9\n\t"
		"movabs $0xaaaaaaaaaaaaaa0a, %%r10\n\t"
		"movabs $0xcccccccccccccc0c, %%r12\n\t"
		"movabs $0xdddddddddddddd0d, %%r13\n\t"
		"movabs $0xeeeeeeeeeeeeee0e, %%r14\n\t"
		"movabs $0x7fffffffffffff0f, %%r15\n\t"
		"mov $1, %%eax\n\tmov $1, %%edi\n\tlea %[msg], %%rsi\n\tmov $6, %%edx\n\tsyscall\n\t"
		"movabs $0x3333333333333303, %%rcx\n\t"
		"movabs $0x4444444444444404, %%rdx\n\t"
		"movabs $0x5555555555555505, %%rsi\n\t"
		"movabs $0x6666666666666606, %%rdi\n\t"
		"movabs $0xbbbbbbbbbbbbbb0b, %%r11\n\t"
		"1:\n\t"
		"incq %[cnt]\n\t"
		CHK("0x1111111111111101", "rbx", 1)
		CHK("0x3333333333333303", "rcx", 3)
		CHK("0x4444444444444404", "rdx", 4)
		CHK("0x5555555555555505", "rsi", 5)
		CHK("0x6666666666666606", "rdi", 6)
		CHK("0x8888888888888808", "r8", 8)
		CHK("0x9999999999999909", "r9", 9)
		CHK("0xaaaaaaaaaaaaaa0a", "r10", 10)
		CHK("0xbbbbbbbbbbbbbb0b", "r11", 11)
		CHK("0xcccccccccccccc0c", "r12", 12)
		CHK("0xdddddddddddddd0d", "r13", 13)
		CHK("0xeeeeeeeeeeeeee0e", "r14", 14)
		CHK("0x7fffffffffffff0f", "r15", 15)
		"cmpl $0, %[stop]\n\t"
		"je 1b\n\t"
		"xor %%eax, %%eax\n\t"
		"2:\n\t"
		: "=&a"(bad), [cnt] "+m"(counter)
		: [stop] "m"(stop), [msg] "m"(ready_msg)
		: "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "memory", "cc");
	return bad;
}

#endif
