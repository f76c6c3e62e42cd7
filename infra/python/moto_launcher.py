"""Runs a moto server on 127.0.0.1 until its parent goes away.

Used by `make dev` and by the test harness. It prints `READY <port>` once the
server answers, and exits when standard input closes, so an emulator started
by a test run never outlives it, even when the run is killed.
"""

import socket
import sys
import threading

from moto.server import ThreadedMotoServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "0" else free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print(f"READY {port}", flush=True)
    watch_stdin = len(sys.argv) <= 2 or sys.argv[2] != "--no-stdin"
    if watch_stdin:
        sys.stdin.read()
    else:
        threading.Event().wait()
    server.stop()


if __name__ == "__main__":
    main()
