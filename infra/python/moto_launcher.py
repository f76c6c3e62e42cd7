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

moto keeps nothing on disk. With `--state-dir DIR` (`make dev`, DEV_STATE_DIR)
the table items, the bucket objects (content type and metadata included)
and the sent emails are saved to DIR and loaded from it, through
`POST /_local/state/load` and `POST /_local/state/save` (`LocalState`): in
this process, because the sent emails are moto's SES backend state and no
AWS API reads them. The caller names the key prefixes of items that must not
come back (`skipKeyPrefixes`: the items of live WebSocket connections,
whose sockets are gone after a restart; infra/src/dev_state.rs derives
them from the app's key formats, which this file does not know). The
directory is locked while the launcher runs, and `--reset-state DIR`
(`make reset`) deletes it only when no launcher holds it.

`/_local/faults/ses/send-email` (`SesSendFaults`) makes SES v2 SendEmail
answer a chosen AWS error until the fault is lifted, for every recipient or
only for one address, so a test of the email outbox's retries (or `make dev`
by hand) sees what SES does when it throttles, pauses the account or refuses
a recipient. It is local only: nothing of it reaches an AWS API.
"""

import argparse
import base64
import copy
import datetime
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import sys
import threading
from collections import defaultdict
from pathlib import Path

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.s3.models import FakeKey, s3_backends
from moto.ses.models import BulkTemplateMessage, Message, RawMessage, TemplateMessage, ses_backends
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
        s.bind((os.environ.get("MOTO_HOST", "127.0.0.1"), 0))
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


STATE_FORMAT = 1
MANIFEST = "state.json"
BLOBS = "blobs"
LOCK = ".lock"
# What a crashed save leaves behind: the files `write_atomically` had not
# renamed yet.
TEMPORARY = re.compile(r"^\..+\.tmp$")

# The SES message kinds moto keeps, each with its attributes in its
# constructor's order: restored through the constructor, so that moto's
# instance tracking (what /moto-api/data.json lists) sees them too.
MESSAGE_KINDS = {
    "Message": (Message, ("id", "source", "subject", "body", "destinations")),
    "RawMessage": (RawMessage, ("id", "source", "destinations", "raw_data")),
    "TemplateMessage": (TemplateMessage, ("id", "source", "template", "template_data", "destinations")),
    "BulkTemplateMessage": (BulkTemplateMessage, ("ids", "source", "template", "template_data", "destinations")),
}


class StateError(Exception):
    """A state directory that cannot be used as asked; the message says why."""


def write_atomically(path: Path, data: bytes) -> None:
    """`path` holds either its old content or `data`, whenever the process
    dies: the new content is written beside it, flushed, then renamed over."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def attribute_json(value: DynamoType) -> dict:
    """An attribute in DynamoDB JSON, as a request carries it (binary as
    base64), which moto's own `to_json` is not for binary inside a map."""
    if value.type == "M":
        return {"M": {name: attribute_json(inner) for name, inner in value.value.items()}}
    if value.type == "L":
        return {"L": [attribute_json(inner) for inner in value.value]}
    if value.type == "B":
        raw = value.value
        return {"B": base64.b64encode(raw).decode() if isinstance(raw, bytes) else raw}
    if value.type == "BS":
        return {"BS": [base64.b64encode(raw).decode() if isinstance(raw, bytes) else raw for raw in value.value]}
    return {value.type: copy.deepcopy(value.value)}


def attribute_json_item(item) -> dict:
    return {name: attribute_json(value) for name, value in item.attrs.items()}


def skipped(table: Table, item: dict, prefixes: list[str]) -> bool:
    """Whether the item's partition or sort key starts with one of `prefixes`."""
    for attribute in (table.hash_key_attr, table.range_key_attr):
        key = item.get(attribute) if attribute else None
        if key and isinstance(key.get("S"), str) and key["S"].startswith(tuple(prefixes)):
            return True
    return False


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def state_snapshot(prefixes: list[str]) -> tuple[dict, dict[str, bytes], int]:
    """Every table's items (less the skipped), every bucket's current
    objects and every SES backend's sent messages: the manifest, the object
    bodies by their SHA-256, and how many items were skipped."""
    manifest = {"format": STATE_FORMAT, "dynamodb": [], "s3": [], "ses": []}
    blobs: dict[str, bytes] = {}
    dropped = 0
    for account, region, backend in dynamodb_backends.iter_backends():
        for name, table in list(backend.tables.items()):
            items = []
            for item in table.all_items():
                attributes = attribute_json_item(item)
                if skipped(table, attributes, prefixes):
                    dropped += 1
                else:
                    items.append(attributes)
            manifest["dynamodb"].append({"account": account, "region": region, "table": name, "items": items})
    for account, region, backend in s3_backends.iter_backends():
        for name, bucket in list(backend.buckets.items()):
            objects = []
            for key_name, key in bucket.keys.items():
                if not isinstance(key, FakeKey):
                    continue  # a delete marker of a versioned bucket
                body = key.value
                blobs[sha256(body)] = body
                objects.append({
                    "key": key_name,
                    "blob": sha256(body),
                    "metadata": dict(key.metadata),
                    "lastModified": key.last_modified.isoformat(),
                })
            manifest["s3"].append({"account": account, "region": region, "bucket": name, "objects": objects})
    for account, region, backend in ses_backends.iter_backends():
        messages = []
        for message in backend.sent_messages:
            kind = type(message).__name__
            if kind in MESSAGE_KINDS:
                messages.append({"kind": kind, **{a: getattr(message, a) for a in MESSAGE_KINDS[kind][1]}})
        if messages:
            manifest["ses"].append({
                "account": account,
                "region": region,
                "sentMessageCount": backend.sent_message_count,
                "messages": messages,
            })
    return manifest, blobs, dropped


def summary(verb: str, directory: Path, items: int, objects: int, emails: int) -> str:
    return f"{verb} {items} items, {objects} objects and {emails} emails {'to' if verb == 'saved' else 'from'} {directory}"


def save_state(directory: Path, prefixes: list[str], kept: dict, lock: threading.Lock) -> dict:
    """Writes the emulator's data to `directory`, with the `kept` sections
    (tables and buckets of the loaded state that were not provisioned this
    time) carried over. The manifest is renamed into place last, after the
    bodies it names, and the bodies only the previous one named are deleted
    after it: a crash at any point leaves one whole state, old or new."""
    with lock:
        manifest, blobs, dropped = state_snapshot(prefixes)
    manifest["savedAt"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    for service in ("dynamodb", "s3"):
        manifest[service].extend(kept.get(service, []))
    blob_dir = directory / BLOBS
    blob_dir.mkdir(parents=True, exist_ok=True)
    for digest, body in blobs.items():
        if not (blob_dir / digest).exists():
            write_atomically(blob_dir / digest, body)
    write_atomically(directory / MANIFEST, json.dumps(manifest, indent=1).encode())
    named = {obj["blob"] for section in manifest["s3"] for obj in section["objects"]}
    for entry in blob_dir.iterdir():
        if entry.name not in named:
            entry.unlink()
    for entry in directory.iterdir():
        if TEMPORARY.match(entry.name):
            entry.unlink()
    items = sum(len(section["items"]) for section in manifest["dynamodb"])
    objects = sum(len(section["objects"]) for section in manifest["s3"])
    emails = sum(len(section["messages"]) for section in manifest["ses"])
    message = summary("saved", directory, items, objects, emails)
    if dropped:
        message += f" ({dropped} items of live connections left out)"
    return {
        "message": message,
        "items": items,
        "skippedItems": dropped,
        "objects": objects,
        "emails": emails,
    }


def load_state(directory: Path, prefixes: list[str], lock: threading.Lock) -> tuple[dict, dict]:
    """Puts the saved data into the emulator: items into the tables and
    objects into the buckets that exist now (provisioning made them), emails
    into SES. Returns the summary, and the sections whose table or bucket
    does not exist, for `save_state` to keep."""
    kept: dict = {"dynamodb": [], "s3": []}
    path = directory / MANIFEST
    if not path.exists():
        return {"message": f"no saved state in {directory}: starting empty",
                "items": 0, "skippedItems": 0, "objects": 0, "emails": 0}, kept
    try:
        manifest = json.loads(path.read_bytes())
    except ValueError as err:
        raise StateError(f"{path} is not a saved state ({err}); `make reset` starts over") from None
    if manifest.get("format") != STATE_FORMAT:
        raise StateError(f"{path} is of format {manifest.get('format')!r}, not {STATE_FORMAT}; `make reset` starts over")
    items = dropped = objects = emails = 0
    notes = []
    with lock:
        for section in manifest["dynamodb"]:
            backend = dynamodb_backends[section["account"]][section["region"]]
            table = backend.tables.get(section["table"])
            if table is None:
                kept["dynamodb"].append(section)
                notes.append(f"table {section['table']} is not provisioned: its {len(section['items'])} items are kept, not loaded")
                continue
            for item in section["items"]:
                if skipped(table, item, prefixes):
                    dropped += 1
                    continue
                table.put_item(item)
                items += 1
    for section in manifest["s3"]:
        backend = s3_backends[section["account"]][section["region"]]
        if section["bucket"] not in backend.buckets:
            kept["s3"].append(section)
            notes.append(f"bucket {section['bucket']} is not provisioned: its {len(section['objects'])} objects are kept, not loaded")
            continue
        for obj in section["objects"]:
            blob = directory / BLOBS / obj["blob"]
            body = blob.read_bytes() if blob.exists() else None
            if body is None or sha256(body) != obj["blob"]:
                raise StateError(f"{blob}, the body of s3://{section['bucket']}/{obj['key']}, is missing or damaged; `make reset` starts over")
            key = backend.put_object(section["bucket"], obj["key"], body, disable_notification=True)
            # Not `replace=True`: that would swap moto's case-insensitive map
            # for a plain dict; the saved map names every entry anyway.
            key.set_metadata(dict(obj["metadata"]))
            key.last_modified = datetime.datetime.fromisoformat(obj["lastModified"])
            objects += 1
    for section in manifest["ses"]:
        backend = ses_backends[section["account"]][section["region"]]
        for message in section["messages"]:
            cls, attributes = MESSAGE_KINDS[message["kind"]]
            backend.sent_messages.append(cls(*(message[a] for a in attributes)))
            emails += 1
        backend.sent_message_count += section["sentMessageCount"]
    message = summary("loaded", directory, items, objects, emails)
    if dropped:
        message += f" ({dropped} items of live connections skipped)"
    return {
        "message": "; ".join([message, *notes]),
        "items": items,
        "skippedItems": dropped,
        "objects": objects,
        "emails": emails,
    }, kept


def hold_lock(directory: Path):
    """An exclusive lock on the state directory for this process's life, so
    that two launchers never save over each other and `make reset` can tell
    that one is running. The file says which process holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / LOCK, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise StateError(f"{directory} is in use by another make dev (emulator pid {holder})") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def reset_state(directory: Path) -> str:
    """Deletes the state directory, refusing while a launcher holds it, and
    refusing a directory with anything in it that a save does not write (a
    mistyped DEV_STATE_DIR must not cost someone a directory)."""
    if not directory.exists():
        return f"nothing to reset: {directory} does not exist"
    foreign = sorted(
        entry.name for entry in directory.iterdir()
        if entry.name not in (MANIFEST, BLOBS, LOCK) and not TEMPORARY.match(entry.name)
    )
    if foreign:
        raise StateError(f"{directory} holds {', '.join(foreign)}, which no save writes: not deleting it")
    handle = hold_lock(directory)
    try:
        shutil.rmtree(directory)
    finally:
        handle.close()
    return f"deleted {directory}: the next make dev starts empty"


class LocalState:
    """The state directory of one launcher: locked for its life; saving is
    armed by a load, so a stack that failed before loading (provisioning,
    say) never saves its empty emulator over the state it did not load."""

    def __init__(self, directory: Path, lock: threading.Lock):
        self.directory = directory
        self.lock = lock
        self.handle = hold_lock(directory)
        self.prefixes: list[str] | None = None
        self.kept: dict = {}
        self.saved = False
        self.busy = threading.Lock()

    def load(self, prefixes: list[str]) -> dict:
        with self.busy:
            if self.prefixes is not None:
                raise StateError("the state is loaded already: loading it again would undo what changed since")
            result, self.kept = load_state(self.directory, prefixes, self.lock)
            self.prefixes = prefixes
            return result

    def save(self) -> dict:
        with self.busy:
            if self.prefixes is None:
                raise StateError("the state was not loaded: saving now would replace it with an empty one")
            result = save_state(self.directory, self.prefixes, self.kept, self.lock)
            self.saved = True
            return result

    def close(self) -> None:
        """Gives up the directory's lock (the process's exit does it too)."""
        self.handle.close()

    def save_on_exit(self) -> None:
        """The launcher's standard input closed without a save, so whatever
        started it ended without its own (it was killed, say): nothing can
        write any more, and the state is saved here rather than lost."""
        if self.prefixes is None or self.saved:
            return
        try:
            print(self.save()["message"], file=sys.stderr, flush=True)
        except Exception as err:  # noqa: BLE001  (the exit goes on; the previous state stays)
            print(f"saving the state failed: {err}", file=sys.stderr, flush=True)


# The HTTP status SES v2 answers each error code with; a fault may name
# another.
SES_ERROR_STATUS = {
    "TooManyRequestsException": 429,
    "LimitExceededException": 400,
    "MessageRejected": 400,
    "MailFromDomainNotVerifiedException": 400,
    "AccountSuspendedException": 400,
    "SendingPausedException": 400,
    "BadRequestException": 400,
    "NotFoundException": 404,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
}
SES_SEND_PATH = "/v2/email/outbound-emails"
FAULTS_PATH = "/_local/faults/ses/send-email"


class SesSendFaults:
    """WSGI middleware: while a fault is set, SES v2 SendEmail to its
    recipient (any recipient when it names none) answers the fault's AWS
    error, as SES's restJson protocol does (the code in `x-amzn-ErrorType`
    and in the body), and moto never sees the request, so nothing lands in
    its sent mailbox.

    `POST /_local/faults/ses/send-email` with `{"code": "...", "to": "a@b",
    "status": 429, "message": "..."}` (only `code` required) sets one, the
    later replacing an earlier one for the same recipient; `DELETE` with
    `{"to": "a@b"}` lifts that one, with `{}` every one; `GET` lists them
    with how many sends each refused. As with the state endpoints, POST and
    DELETE need a JSON body, which a web page cannot send without a
    preflight (answered 405 here)."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        # recipient ("" for every one) -> {"code", "status", "message", "refused"}
        self.faults: dict[str, dict] = {}

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == FAULTS_PATH:
            status, body = self.handle(environ)
            return respond(start_response, status, body)
        if path == SES_SEND_PATH and environ.get("REQUEST_METHOD") == "POST" and self.faults:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(raw)
            fault = self.fault_for(recipients(raw))
            if fault is not None:
                payload = json.dumps({"__type": fault["code"], "message": fault["message"]}).encode()
                start_response(
                    f"{fault['status']} {fault['code']}",
                    [
                        ("Content-Type", "application/json"),
                        ("x-amzn-ErrorType", fault["code"]),
                        ("Content-Length", str(len(payload))),
                    ],
                )
                return [payload]
        return self.app(environ, start_response)

    def fault_for(self, addresses: list[str]):
        with self.lock:
            for address in addresses:
                if address in self.faults:
                    fault = self.faults[address]
                    break
            else:
                fault = self.faults.get("")
            if fault is not None:
                fault["refused"] += 1
            return fault

    def handle(self, environ):
        method = environ.get("REQUEST_METHOD")
        if method == "GET":
            with self.lock:
                return "200 OK", {"faults": [{"to": to or None, **fault} for to, fault in self.faults.items()]}
        if method not in ("POST", "DELETE"):
            return "405 Method Not Allowed", {"message": "GET, POST or DELETE"}
        if not environ.get("CONTENT_TYPE", "").startswith("application/json"):
            return "415 Unsupported Media Type", {"message": "send a JSON body"}
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            request = json.loads(environ["wsgi.input"].read(length) or b"{}")
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError as err:
            return "400 Bad Request", {"message": f"not a JSON object: {err}"}
        to = request.get("to") or ""
        if not isinstance(to, str):
            return "400 Bad Request", {"message": "to must be an email address"}
        with self.lock:
            if method == "DELETE":
                lifted = [to] if to else list(self.faults)
                for key in lifted:
                    self.faults.pop(key, None)
                return "200 OK", {"lifted": len(lifted)}
            code = request.get("code")
            if not isinstance(code, str) or not re.fullmatch(r"[A-Za-z]+", code):
                return "400 Bad Request", {"message": "code must be an AWS error code such as TooManyRequestsException"}
            status = request.get("status", SES_ERROR_STATUS.get(code, 400))
            if not isinstance(status, int) or not 400 <= status <= 599:
                return "400 Bad Request", {"message": "status must be an HTTP error status"}
            message = request.get("message") or f"{code} (a fault set through {FAULTS_PATH})"
            self.faults[to] = {"code": code, "status": status, "message": str(message), "refused": 0}
            return "200 OK", {"to": to or None, "code": code, "status": status}


def recipients(raw: bytes) -> list[str]:
    """The destinations of an SES v2 SendEmail body."""
    try:
        destination = json.loads(raw or b"{}").get("Destination") or {}
    except (ValueError, AttributeError):
        return []
    return [
        address
        for field in ("ToAddresses", "CcAddresses", "BccAddresses")
        for address in destination.get(field) or []
        if isinstance(address, str)
    ]


def respond(start_response, status: str, body: dict):
    payload = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


class LocalStateEndpoints:
    """WSGI middleware: POST /_local/state/load and /_local/state/save with
    a JSON body (`{"skipKeyPrefixes": [...]}` for load; the prefixes apply
    to the saves after it too), answering JSON.
    A JSON body is required and other methods are refused, so that a web
    page cannot make a browser send either (a cross-origin JSON POST needs
    a preflight, which gets a 405 here)."""

    def __init__(self, app, state: LocalState | None):
        self.app = app
        self.state = state

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_local/"):
            return self.app(environ, start_response)
        status, body = self.handle(environ, path)
        return respond(start_response, status, body)

    def handle(self, environ, path):
        if path not in ("/_local/state/load", "/_local/state/save"):
            return "404 Not Found", {"message": f"no such endpoint {path}"}
        if environ.get("REQUEST_METHOD") != "POST":
            return "405 Method Not Allowed", {"message": "POST only"}
        if not environ.get("CONTENT_TYPE", "").startswith("application/json"):
            return "415 Unsupported Media Type", {"message": "send a JSON body"}
        if self.state is None:
            return "404 Not Found", {"message": "this emulator was started without --state-dir"}
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            request = json.loads(environ["wsgi.input"].read(length) or b"{}")
            prefixes = request.get("skipKeyPrefixes", [])
            if not isinstance(prefixes, list) or not all(isinstance(p, str) and p for p in prefixes):
                return "400 Bad Request", {"message": "skipKeyPrefixes must be a list of non-empty strings"}
        except (ValueError, AttributeError) as err:
            return "400 Bad Request", {"message": f"not a JSON object: {err}"}
        try:
            if path.endswith("/load"):
                return "200 OK", self.state.load(prefixes)
            return "200 OK", self.state.save()
        except StateError as err:
            return "409 Conflict", {"message": str(err)}
        except Exception as err:  # noqa: BLE001  (reported to the caller, which stops)
            return "500 Internal Server Error", {"message": f"{type(err).__name__}: {err}"}


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="moto on 127.0.0.1 until standard input closes")
    parser.add_argument("port", nargs="?", type=int, default=0, help="0 or none: a free port")
    parser.add_argument("--no-stdin", action="store_true", help="run until killed instead")
    parser.add_argument("--state-dir", type=Path, help="save to and load from this directory, locked while running")
    parser.add_argument("--reset-state", type=Path, metavar="DIR", help="delete a state directory no launcher holds, and exit")
    return parser.parse_args(argv)


def main() -> None:
    args = arguments(sys.argv[1:])
    if args.reset_state is not None:
        try:
            print(reset_state(args.reset_state))
        except StateError as err:
            sys.exit(f"refusing to reset: {err}")
        return
    if not args.no_stdin:
        # Our life is our standard input's: a Ctrl-C reaches the whole
        # process group, and whoever started us still has to save through
        # us before it closes the pipe.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    port = args.port or free_port()
    serialised = SerialiseDynamoDB(DomainDispatcherApplication(create_backend_app))
    try:
        state = LocalState(args.state_dir, serialised.lock) if args.state_dir else None
    except StateError as err:
        sys.exit(str(err))
    app = SesSendFaults(LocalStateEndpoints(serialised, state))
    # 127.0.0.1 unless MOTO_HOST says otherwise: `sam local` runs the
    # functions in containers, which reach the host only on an address
    # other than loopback (docs/LOCALSTACK_AND_SAM_LOCAL.md). Anyone who can
    # reach that address can then use the emulator.
    host = os.environ.get("MOTO_HOST", "127.0.0.1")
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"READY {port}", flush=True)
    if args.no_stdin:
        threading.Event().wait()
    else:
        sys.stdin.read()
    server.shutdown()
    if state is not None:
        state.save_on_exit()


if __name__ == "__main__":
    main()
