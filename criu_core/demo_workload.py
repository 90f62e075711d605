"""The demo workload: a counter that keeps a memory pattern and proves it after a restore.

Started by ``criu-py demo`` as ``python3 -S demo_workload.py LOG``; every 0.1 s it appends one line
``pid=P n=N mem=ok|CORRUPT`` to LOG. ``n`` continues across a checkpoint/restore, ``pid`` stays the same, and
the 16 MiB buffer it filled at start must still hold its pattern.
"""

import os
import sys
import time

SIZE = 16 << 20


def main() -> None:
    log = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    buf = bytearray(SIZE)
    for off in range(0, SIZE, 4096):
        buf[off:off + 8] = off.to_bytes(8, "little")
    n = 0
    while True:
        ok = all(int.from_bytes(buf[o:o + 8], "little") == o for o in range(0, SIZE, 64 * 4096))
        line = f"pid={os.getpid()} n={n} mem={'ok' if ok else 'CORRUPT'}\n"
        os.write(log, line.encode())
        n += 1
        time.sleep(0.1)


if __name__ == "__main__":
    main()
