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

moto makes a transaction undoable by deep-copying every table it names
before it starts, whether or not it is cancelled: with a few thousand items
(a fuzzing run, a long `make dev`) each transaction took seconds while every
other DynamoDB request waited behind it, until the functions' 8-second
timeouts answered 503. A table is therefore snapshotted cheaply here: its
item maps are copied, and only the items the transaction names are copied
deeply (moto updates an item in place; it replaces or removes the others).

moto rolls a cancelled transaction back by putting that snapshot in place
of the live table, while every shard iterator handed out still points at
the live stream shard; the snapshot shares the live shard, which is kept,
less the records the cancelled transaction's partial writes appended
(DynamoDB streams none of them).
"""

import copy
import socket
import sys
import threading
from collections import defaultdict

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from werkzeug.serving import make_server

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


_transact_write_items = DynamoDBBackend.transact_write_items


def touched_keys(backend, transact_items):
    """The (hash, range) keys each table's part of a transaction names."""
    keys = {}
    for item in transact_items:
        _, op = next(iter(item.items()))
        table = backend.tables.get(op.get("TableName"))
        if table is None:
            continue
        raw = op.get("Key") or op.get("Item") or {}
        if table.hash_key_attr not in raw:
            continue
        hash_value = DynamoType(raw[table.hash_key_attr])
        range_value = None
        if table.range_key_attr and table.range_key_attr in raw:
            range_value = DynamoType(raw[table.range_key_attr])
        keys.setdefault(table.name, []).append((hash_value, range_value))
    return keys


def snapshot(table, keys):
    """What moto's deep copy of `table` restores, at the cost of its item maps."""
    copied = copy.copy(table)
    copied.items = defaultdict(dict)
    for hash_value, value in table.items.items():
        copied.items[hash_value] = dict(value) if table.range_key_attr else value
    for hash_value, range_value in keys:
        if hash_value not in table.items:
            continue
        if table.range_key_attr:
            item = table.items[hash_value].get(range_value)
            if item is not None:
                copied.items[hash_value][range_value] = copy.deepcopy(item)
        else:
            copied.items[hash_value] = copy.deepcopy(table.items[hash_value])
    return copied


class SnapshotCopies:
    """The `copy` module as moto's DynamoDB models see it during one
    transaction: a deep copy of a table is a `snapshot`. DynamoDB requests
    run one at a time (`SerialiseDynamoDB`), so swapping it is safe."""

    def __init__(self, keys):
        self.keys = keys

    def deepcopy(self, value, memo=None):
        if isinstance(value, Table):
            return snapshot(value, self.keys.get(value.name, []))
        return copy.deepcopy(value, memo)

    def __getattr__(self, name):
        return getattr(copy, name)


def transact_write_items_keeping_streams(self, transact_items):
    shards = {}
    for item in transact_items:
        _, op = next(iter(item.items()))
        table = self.tables.get(op.get("TableName"))
        if table is not None and table.stream_shard is not None:
            shards[table.name] = (table.stream_shard, len(table.stream_shard.items))
    dynamodb_models.copy = SnapshotCopies(touched_keys(self, transact_items))
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        for name, (shard, length) in shards.items():
            restored = self.tables.get(name)
            if restored is not None:
                del shard.items[length:]
                shard.table = restored
                restored.stream_shard = shard
        raise
    finally:
        dynamodb_models.copy = copy


DynamoDBBackend.transact_write_items = transact_write_items_keeping_streams


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SerialiseDynamoDB:
    """WSGI middleware: one DynamoDB or DynamoDB Streams request at a time.
    A stream read beside a transaction could otherwise return the records
    of its partial writes before a cancel removes them, and the reader's
    next iterator would then skip the real records that take their place."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(("DynamoDB_", "DynamoDBStreams_")):
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
