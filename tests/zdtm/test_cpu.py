"""CPU state: general registers, SSE/AVX/AVX-512 registers with MXCSR and x87 state, fs/gs base."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("mode", ["gpr", "sse", "avx", "avx512", "tls"])
def test_registers(zdtm, mode: str) -> None:
    t = zdtm.start("regs", mode)  # avx/avx512 answer SKIP (a pytest skip) on a CPU without them
    zdtm.cycle(t)
    t.check()
