"""Runs a moto server on 127.0.0.1 until its parent goes away.

Used by `make dev` and by the test harness. It prints `READY <port>` once the
server answers, and exits when standard input closes, so an emulator started
by a test run never outlives it, even when the run is killed.

moto serves requests on many threads but does not make DynamoDB's writes
atomic with respect to each other: two concurrent transactions with the
same `attribute_not_exists` condition can both succeed, which DynamoDB
never allows. DynamoDB requests are therefore serialised here, a stricter
but faithful model of DynamoDB's per-item linearisability; other services
stay concurrent.
"""

import socket
import sys
import threading

from werkzeug.serving import make_server

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SerialiseDynamoDB:
    """WSGI middleware: one DynamoDB request at a time."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with self.lock:
            # The body must be produced inside the lock: moto does its work
            # while the response iterable is built.
            return list(self.app(environ, start_response))


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "0" else free_port()
    app = SerialiseDynamoDB(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"READY {port}", flush=True)
    if len(sys.argv) > 2 and sys.argv[2] == "--no-stdin":
        threading.Event().wait()
    else:
        sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
