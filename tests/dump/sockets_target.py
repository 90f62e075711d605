"""Dump-test target: a pipe with 21 bytes, a unix stream pair with 18 queued bytes, a unix datagram pair with two
queued datagrams, an abstract listening socket. Prints "ready" and the fd numbers, then sleeps."""

import os
import socket
import sys
import time

r, w = os.pipe()
os.write(w, b"pipe-bytes-in-flight\n")
s1, s2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
s1.send(b"unix-stream-queued")
d1, d2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
d1.send(b"dgram-1")
d1.send(b"dgram-2")
ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
ls.bind(b"\0criu-py-test-" + str(os.getpid()).encode())
ls.listen(7)
print("ready", r, w, s1.fileno(), s2.fileno(), d1.fileno(), d2.fileno(), ls.fileno(), flush=True)
sys.stdout.flush()
while True:
    time.sleep(1)
