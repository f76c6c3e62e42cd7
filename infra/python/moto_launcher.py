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

moto rolls a cancelled transaction back by putting a deep copy of each
table in place of the live one, stream shard included, while every shard
iterator handed out still points at the live shard: from then on the
stream poller (`make dev`, the tests) would read nothing more from that
table, although DynamoDB's stream goes on. The live shard is therefore
carried over to the restored table, less the records the cancelled
transaction's partial writes appended (DynamoDB streams none of them).
"""

import socket
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from werkzeug.serving import make_server

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


_transact_write_items = DynamoDBBackend.transact_write_items


def transact_write_items_keeping_streams(self, transact_items):
    shards = {}
    for item in transact_items:
        _, op = next(iter(item.items()))
        table = self.tables.get(op.get("TableName"))
        if table is not None and table.stream_shard is not None:
            shards[table.name] = (table.stream_shard, len(table.stream_shard.items))
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        for name, (shard, length) in shards.items():
            restored = self.tables.get(name)
            if restored is not None and restored.stream_shard is not shard:
                del shard.items[length:]
                shard.table = restored
                restored.stream_shard = shard
        raise


DynamoDBBackend.transact_write_items = transact_write_items_keeping_streams


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
