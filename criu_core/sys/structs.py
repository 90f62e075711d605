"""ctypes mirrors of the kernel structures criu-core exchanges with the kernel.

Every class names its C header and quotes the C layout; ``tests/lowlevel/test_structs.py`` pins the sizes.
"""

from __future__ import annotations

import ctypes

__all__ = [
    "SIGINFO_SIZE",
    "CloneArgs",
    "Iovec",
    "Itimerval",
    "KernelSigaction",
    "PeekSiginfoArgs",
    "PrctlMmMap",
    "RseqConfig",
    "Siginfo",
    "SockFilter",
    "SockFprog",
    "StackT",
    "UserRegs",
]

_u64 = ctypes.c_uint64
_u32 = ctypes.c_uint32


class UserRegs(ctypes.Structure):
    """General-purpose registers of an x86_64 task, as PTRACE_GETREGS/SETREGS exchange them.

    ``asm/user_64.h``::

        struct user_regs_struct {
            unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax,
                          ip, cs, flags, sp, ss, fs_base, gs_base, ds, es, fs, gs;
        };

    All fields are unsigned here; use :func:`criu_core.arch.x86_64.regs.signed` to read ``rax``/``orig_rax``
    as the negative numbers the kernel means.
    """

    _fields_ = [
        (name, _u64)
        for name in [
            "r15",
            "r14",
            "r13",
            "r12",
            "rbp",
            "rbx",
            "r11",
            "r10",
            "r9",
            "r8",
            "rax",
            "rcx",
            "rdx",
            "rsi",
            "rdi",
            "orig_rax",
            "rip",
            "cs",
            "eflags",
            "rsp",
            "ss",
            "fs_base",
            "gs_base",
            "ds",
            "es",
            "fs",
            "gs",
        ]
    ]

    def copy(self) -> UserRegs:
        """An independent copy."""
        return UserRegs.from_buffer_copy(bytes(self))

    def as_dict(self) -> dict[str, int]:
        """Field name → value, in the kernel's order."""
        return {name: getattr(self, name) for name, _ in self._fields_}


class Iovec(ctypes.Structure):
    """``linux/uio.h``: ``struct iovec { void *iov_base; __kernel_size_t iov_len; };``"""

    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class CloneArgs(ctypes.Structure):
    """``linux/sched.h`` (CLONE_ARGS_SIZE_VER2, 88 bytes)::

    struct clone_args {
        __aligned_u64 flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
                      set_tid, set_tid_size, cgroup;
    };
    """

    _fields_ = [
        (name, _u64)
        for name in [
            "flags",
            "pidfd",
            "child_tid",
            "parent_tid",
            "exit_signal",
            "stack",
            "stack_size",
            "tls",
            "set_tid",
            "set_tid_size",
            "cgroup",
        ]
    ]


class PrctlMmMap(ctypes.Structure):
    """``linux/prctl.h`` (104 bytes), the argument of ``prctl(PR_SET_MM, PR_SET_MM_MAP, &map, sizeof map)``::

    struct prctl_mm_map {
        __u64 start_code, end_code, start_data, end_data, start_brk, brk, start_stack,
              arg_start, arg_end, env_start, env_end;
        __u64 *auxv;
        __u32 auxv_size;
        __u32 exe_fd;
    };
    """

    _fields_ = [
        *[
            (name, _u64)
            for name in [
                "start_code",
                "end_code",
                "start_data",
                "end_data",
                "start_brk",
                "brk",
                "start_stack",
                "arg_start",
                "arg_end",
                "env_start",
                "env_end",
            ]
        ],
        ("auxv", _u64),
        ("auxv_size", _u32),
        ("exe_fd", _u32),
    ]


class RseqConfig(ctypes.Structure):
    """``linux/ptrace.h``, filled by PTRACE_GET_RSEQ_CONFIGURATION (24 bytes)::

    struct ptrace_rseq_configuration {
        __u64 rseq_abi_pointer; __u32 rseq_abi_size; __u32 signature; __u32 flags; __u32 pad;
    };
    """

    _fields_ = [
        ("rseq_abi_pointer", _u64),
        ("rseq_abi_size", _u32),
        ("signature", _u32),
        ("flags", _u32),
        ("pad", _u32),
    ]


class KernelSigaction(ctypes.Structure):
    """The kernel's x86_64 ``struct sigaction`` used by ``rt_sigaction(2)`` (not glibc's), 32 bytes.

    ``asm/signal.h`` (kernel uapi, ``__KERNEL__`` layout as read by ``rt_sigaction`` on x86_64)::

        struct sigaction {
            __sighandler_t sa_handler; unsigned long sa_flags; __sigrestore_t sa_restorer; sigset_t sa_mask;
        };

    with a 64-bit ``sigset_t`` (``sigsetsize`` = 8).
    """

    _fields_ = [("sa_handler", _u64), ("sa_flags", _u64), ("sa_restorer", _u64), ("sa_mask", _u64)]


SIGINFO_SIZE = 128


class Siginfo(ctypes.Structure):
    """``asm-generic/siginfo.h``: ``siginfo_t`` is 128 bytes; only the common head is decoded here.

    ``int si_signo; int si_errno; int si_code;`` then a union; the raw bytes are what images store.
    """

    _fields_ = [("si_signo", ctypes.c_int32), ("si_errno", ctypes.c_int32), ("si_code", ctypes.c_int32)]
    _fields_ += [("_rest", ctypes.c_uint8 * (SIGINFO_SIZE - 12))]


class PeekSiginfoArgs(ctypes.Structure):
    """``linux/ptrace.h``: ``struct ptrace_peeksiginfo_args { __u64 off; __u32 flags; __s32 nr; };``"""

    _fields_ = [("off", _u64), ("flags", _u32), ("nr", ctypes.c_int32)]


class SockFilter(ctypes.Structure):
    """``linux/filter.h``: ``struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; };`` (a BPF insn)."""

    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", _u32)]


class SockFprog(ctypes.Structure):
    """``linux/filter.h``: ``struct sock_fprog { unsigned short len; struct sock_filter *filter; };``"""

    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.c_void_p)]


class StackT(ctypes.Structure):
    """``asm/signal.h``: ``typedef struct sigaltstack { void *ss_sp; int ss_flags; size_t ss_size; } stack_t;``"""

    _fields_ = [("ss_sp", _u64), ("ss_flags", ctypes.c_int32), ("ss_size", _u64)]


class Itimerval(ctypes.Structure):
    """``linux/time.h``: ``struct itimerval { struct timeval it_interval, it_value; };`` (4 longs)."""

    _fields_ = [
        ("interval_sec", ctypes.c_int64),
        ("interval_usec", ctypes.c_int64),
        ("value_sec", ctypes.c_int64),
        ("value_usec", ctypes.c_int64),
    ]
