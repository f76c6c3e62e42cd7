"""The launcher against moto's own backends. Its cheap transaction
snapshot: a cancelled transaction must leave every item as it was (moto's
deep copy did), whatever its operations did before the cancel, and keep the
live stream shard without the cancelled writes' records. Its saved state: a
restart brings back items, objects and emails but no item of a live
connection, a crash mid-save keeps the previous state, and the directory is
locked while in use. `make unit` runs it."""

import contextlib
import copy
import io
import json
import os
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

sys.path.insert(0, os.path.dirname(__file__))

import moto_launcher  # noqa: E402  (patches DynamoDBBackend.transact_write_items)
from moto.dynamodb.exceptions import TransactionCanceledException  # noqa: E402
from moto.core.base_backend import BackendDict  # noqa: E402
from moto.dynamodb.models import dynamodb_backends  # noqa: E402
from moto.s3.models import s3_backends  # noqa: E402
from moto.ses.models import Message, ses_backends  # noqa: E402
from werkzeug.test import Client  # noqa: E402


def backend():
    return dynamodb_backends["123456789012"]["us-east-1"]


class CancelledTransactions(unittest.TestCase):
    def make_table(self, name, with_range):
        schema = [{"AttributeName": "pk", "KeyType": "HASH"}]
        attrs = [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"},
        ]
        if with_range:
            schema.append({"AttributeName": "sk", "KeyType": "RANGE"})
            attrs.append({"AttributeName": "sk", "AttributeType": "S"})
        backend().create_table(
            name,
            schema=schema,
            attr=attrs,
            throughput=None,
            billing_mode="PAY_PER_REQUEST",
            indexes=[],
            global_indexes=[
                {
                    "IndexName": "gsi",
                    "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            streams={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            sse_specification=None,
            tags=[],
            deletion_protection_enabled=False,
            warm_throughput=None,
        )

    def items(self, name):
        return {
            (item.hash_key.value, getattr(item.range_key, "value", None)): item.to_json()
            for item in backend().tables[name].all_items()
        }

    def check_rollback(self, name, with_range):
        self.make_table(name, with_range)

        def key(pk, sk="s"):
            k = {"pk": {"S": pk}}
            if with_range:
                k["sk"] = {"S": sk}
            return k

        b = backend()
        for i in range(5):
            b.put_item(
                name,
                {**key(f"a{i}"), "v": {"N": "1"}, "g": {"S": "G"}, "m": {"M": {"x": {"L": [{"S": "deep"}]}}}},
            )
        shard = b.tables[name].stream_shard
        records = len(shard.items)
        before = self.items(name)
        cancelled = [
            # An update in place, nested.
            {"Update": {"TableName": name, "Key": key("a0"), "UpdateExpression": "SET v = :two, m.x[0] = :z",
                        "ExpressionAttributeValues": {":two": {"N": "2"}, ":z": {"S": "changed"}}}},
            # A new item, and one under an existing hash key (or replacing one).
            {"Put": {"TableName": name, "Item": {**key("new"), "v": {"N": "9"}, "g": {"S": "G"}}}},
            {"Put": {"TableName": name, "Item": {**(key("a1", "other") if with_range else key("a1")), "v": {"N": "7"}}}},
            {"Delete": {"TableName": name, "Key": key("a2")}},
            # An update that creates its item.
            {"Update": {"TableName": name, "Key": key("upsert"), "UpdateExpression": "SET v = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}}}},
            # The condition that cancels it all, last.
            {"ConditionCheck": {"TableName": name, "Key": key("a3"), "ConditionExpression": "attribute_not_exists(pk)"}},
        ]
        with self.assertRaises(TransactionCanceledException):
            b.transact_write_items(cancelled)
        table = b.tables[name]
        self.assertEqual(self.items(name), before)
        self.assertIs(table.stream_shard, shard, "the live shard is kept")
        self.assertIs(shard.table, table)
        self.assertEqual(len(shard.items), records, "no record of a cancelled write")
        self.assertIs(moto_launcher.dynamodb_models.copy, copy)

        b.transact_write_items([{"Put": {"TableName": name, "Item": {**key("ok"), "v": {"N": "1"}}}}])
        self.assertIn(("ok", "s" if with_range else None), self.items(name))
        self.assertEqual(len(b.tables[name].stream_shard.items), records + 1)

    def test_a_hash_key_table_is_restored(self):
        self.check_rollback("hash-only", with_range=False)

    def test_a_hash_and_range_table_is_restored(self):
        self.check_rollback("hash-range", with_range=True)

    def test_the_snapshot_copies_only_the_named_items_deeply(self):
        self.make_table("shallow", with_range=True)
        b = backend()
        for pk in ("named", "other"):
            b.put_item("shallow", {"pk": {"S": pk}, "sk": {"S": "s"}, "g": {"S": "G"}})
        table = b.tables["shallow"]
        keys = moto_launcher.touched_keys(
            b, [{"ConditionCheck": {"TableName": "shallow", "Key": {"pk": {"S": "named"}, "sk": {"S": "s"}}}}]
        )
        snap = moto_launcher.snapshot(table, keys["shallow"])
        live = {item.hash_key.value: item for item in table.all_items()}
        copied = {item.hash_key.value: item for item in snap.all_items()}
        self.assertIsNot(copied["named"], live["named"])
        self.assertIs(copied["other"], live["other"])
        self.assertIsNot(snap.items, table.items)


ACCOUNT = "123456789012"
REGION = "us-east-1"
# What infra/src/dev_state.rs sends: the test needs only some prefix.
LIVE = ["live#"]


def provision(table="state", bucket="state-uploads"):
    """A fresh emulator's table, bucket and sender, as `provision` makes them."""
    dynamodb_backends[ACCOUNT][REGION].create_table(
        table,
        schema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        attr=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        throughput=None,
        billing_mode="PAY_PER_REQUEST",
        indexes=[],
        global_indexes=[],
        streams={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        sse_specification=None,
        tags=[],
        deletion_protection_enabled=False,
        warm_throughput=None,
    )
    s3_backends[ACCOUNT]["aws"].create_bucket(bucket, REGION)
    ses_backends[ACCOUNT][REGION].verify_email_identity("no-reply@state.test")


def restart():
    """What a new launcher process starts from: no backend, no tracked model."""
    BackendDict.reset()
    Message.instances_tracked.clear()


def items(table="state"):
    return {
        (item.hash_key.value, item.range_key.value): moto_launcher.attribute_json_item(item)
        for item in dynamodb_backends[ACCOUNT][REGION].tables[table].all_items()
    }


class SavedState(unittest.TestCase):
    def setUp(self):
        restart()
        scratch = tempfile.TemporaryDirectory()
        self.addCleanup(scratch.cleanup)
        self.dir = Path(scratch.name) / "state"
        self.lock = moto_launcher.threading.Lock()
        provision()

    def open_state(self):
        """The state of one launcher's life; `close` ends that life early."""
        state = moto_launcher.LocalState(self.dir, self.lock)
        self.addCleanup(state.close)
        return state

    def write_data(self):
        db = dynamodb_backends[ACCOUNT][REGION]
        db.put_item("state", {
            "pk": {"S": "user#1"}, "sk": {"S": "PROFILE"}, "n": {"N": "1.5"},
            "ids": {"SS": ["a", "b"]}, "m": {"M": {"bin": {"B": "AAEC"}, "l": {"L": [{"BOOL": True}, {"NULL": True}]}}},
        })
        db.put_item("state", {"pk": {"S": "user#1"}, "sk": {"S": "notif#1"}, "b": {"B": "/w=="}})
        # The items of a live connection, by partition and by sort key.
        db.put_item("state", {"pk": {"S": "live#abc="}, "sk": {"S": "META"}})
        db.put_item("state", {"pk": {"S": "user#1"}, "sk": {"S": "live#abc="}})
        s3 = s3_backends[ACCOUNT]["aws"]
        key = s3.put_object("state-uploads", "uploads/u/1", b"\x89PNG\r\n\x1a\nbytes")
        key.set_metadata({"Content-Type": "image/png", "x-amz-meta-owner": "u"})
        s3.put_object("state-uploads", "uploads/u/2", b"")
        ses = ses_backends[ACCOUNT][REGION]
        ses.send_email("no-reply@state.test", "Verify your email address", "token=abc",
                       {"ToAddresses": ["a@state.test"], "CcAddresses": [], "BccAddresses": []})
        ses.send_raw_email("no-reply@state.test", ["b@state.test"], "Subject: raw\r\n\r\nbody")

    def test_a_restart_brings_back_items_objects_and_emails_but_no_live_connection(self):
        self.write_data()
        before = items()
        state = self.open_state()
        state.load(LIVE)
        saved = state.save()
        self.assertEqual((saved["items"], saved["skippedItems"], saved["objects"], saved["emails"]), (2, 2, 2, 2))
        state.close()

        restart()
        provision()
        shard = dynamodb_backends[ACCOUNT][REGION].tables["state"].stream_shard
        loaded = self.open_state().load(LIVE)
        self.assertEqual((loaded["items"], loaded["objects"], loaded["emails"]), (2, 2, 2), loaded["message"])
        after = items()
        self.assertEqual(after, {k: v for k, v in before.items() if not k[0].startswith("live#") and not k[1].startswith("live#")})
        self.assertEqual(after[("user#1", "PROFILE")]["m"]["M"]["bin"], {"B": "AAEC"})
        self.assertEqual(sorted(after[("user#1", "PROFILE")]["ids"]["SS"]), ["a", "b"])
        # Loaded before the stream poller starts at LATEST, which is past them.
        self.assertEqual(len(shard.items), 2)

        key = s3_backends[ACCOUNT]["aws"].get_object("state-uploads", "uploads/u/1")
        self.assertEqual(key.value, b"\x89PNG\r\n\x1a\nbytes")
        self.assertEqual(key.metadata["content-type"], "image/png")
        self.assertEqual(key.metadata["x-amz-meta-owner"], "u")
        self.assertEqual(s3_backends[ACCOUNT]["aws"].get_object("state-uploads", "uploads/u/2").value, b"")

        ses = ses_backends[ACCOUNT][REGION]
        self.assertEqual([m.id for m in ses.sent_messages], [m["id"] for m in json.loads((self.dir / "state.json").read_text())["ses"][0]["messages"]])
        first = ses.sent_messages[0]
        self.assertEqual((first.subject, first.body, first.destinations["ToAddresses"]), ("Verify your email address", "token=abc", ["a@state.test"]))
        self.assertEqual(ses.sent_messages[1].raw_data, "Subject: raw\r\n\r\nbody")
        self.assertEqual(ses.sent_message_count, 2)
        # /moto-api/data.json lists tracked instances: the tests read emails there.
        self.assertIn(first, Message.instances_tracked)

    def test_items_of_live_connections_left_in_a_state_are_skipped_on_load(self):
        self.write_data()
        state = self.open_state()
        state.load([])
        self.assertEqual(state.save()["items"], 4)
        state.close()
        restart()
        provision()
        loaded = self.open_state().load(LIVE)
        self.assertEqual((loaded["items"], loaded["skippedItems"]), (2, 2))
        self.assertIn("2 items of live connections skipped", loaded["message"])
        self.assertEqual(set(items()), {("user#1", "PROFILE"), ("user#1", "notif#1")})

    def test_a_crash_mid_save_keeps_the_previous_state(self):
        self.write_data()
        state = self.open_state()
        state.load(LIVE)
        state.save()
        previous = (self.dir / "state.json").read_bytes()
        s3_backends[ACCOUNT]["aws"].put_object("state-uploads", "uploads/u/3", b"new body")
        s3_backends[ACCOUNT]["aws"].delete_object("state-uploads", "uploads/u/1")
        real_replace = os.replace

        def crash_on_the_manifest(source, target):
            if Path(target).name == "state.json":
                raise OSError("disk full")
            return real_replace(source, target)

        with mock.patch.object(moto_launcher.os, "replace", crash_on_the_manifest):
            with self.assertRaises(OSError):
                state.save()
        self.assertEqual((self.dir / "state.json").read_bytes(), previous)
        state.close()
        restart()
        provision()
        state = self.open_state()
        self.assertEqual(state.load(LIVE)["objects"], 2, "the previous state, bodies included")
        self.assertEqual(s3_backends[ACCOUNT]["aws"].get_object("state-uploads", "uploads/u/1").value, b"\x89PNG\r\n\x1a\nbytes")
        self.assertTrue(any(e.name.endswith(".tmp") for e in self.dir.iterdir()), "the crash's leftover")
        state.save()
        self.assertFalse(any(e.name.endswith(".tmp") for e in self.dir.iterdir()), "cleared by the next save")
        self.assertEqual(len(list((self.dir / "blobs").iterdir())), 2, "only the bodies the manifest names")

    def test_a_table_or_bucket_not_provisioned_now_is_kept_for_later(self):
        self.write_data()
        state = self.open_state()
        state.load(LIVE)
        state.save()
        state.close()
        restart()
        provision(table="other", bucket="other-uploads")
        state = self.open_state()
        loaded = state.load(LIVE)
        self.assertEqual((loaded["items"], loaded["objects"]), (0, 0))
        self.assertIn("table state is not provisioned", loaded["message"])
        saved = json.loads((self.dir / "state.json").read_text())
        state.save()
        resaved = json.loads((self.dir / "state.json").read_text())
        self.assertEqual(
            [s for s in resaved["dynamodb"] if s["table"] == "state"],
            [s for s in saved["dynamodb"] if s["table"] == "state"],
        )
        self.assertIn("state-uploads", [s["bucket"] for s in resaved["s3"]])
        self.assertEqual(len(list((self.dir / "blobs").iterdir())), 2)

    def test_saving_needs_a_load_and_a_load_happens_once(self):
        state = self.open_state()
        with self.assertRaisesRegex(moto_launcher.StateError, "not loaded"):
            state.save()
        state.save_on_exit()
        self.assertFalse((self.dir / "state.json").exists(), "an exit before the load saves nothing")
        self.assertIn("starting empty", state.load(LIVE)["message"])
        with self.assertRaisesRegex(moto_launcher.StateError, "loaded already"):
            state.load(LIVE)
        with contextlib.redirect_stderr(io.StringIO()) as said:
            state.save_on_exit()
        self.assertTrue((self.dir / "state.json").exists(), "an exit without a save saves")
        self.assertIn("saved 0 items", said.getvalue())

    def test_the_directory_is_locked_while_in_use_and_reset_refuses_it(self):
        state = self.open_state()
        with self.assertRaisesRegex(moto_launcher.StateError, f"in use by another make dev \\(emulator pid {os.getpid()}\\)"):
            self.open_state()
        with self.assertRaisesRegex(moto_launcher.StateError, "in use"):
            moto_launcher.reset_state(self.dir)
        state.load(LIVE)
        state.save()
        state.close()
        self.assertIn("deleted", moto_launcher.reset_state(self.dir))
        self.assertFalse(self.dir.exists())
        self.assertIn("nothing to reset", moto_launcher.reset_state(self.dir))

    def test_reset_refuses_a_directory_that_is_not_a_state(self):
        self.dir.mkdir(parents=True)
        (self.dir / "notes.txt").write_text("mine")
        with self.assertRaisesRegex(moto_launcher.StateError, "notes.txt"):
            moto_launcher.reset_state(self.dir)
        self.assertTrue((self.dir / "notes.txt").exists())

    def test_the_endpoints_take_json_posts_only(self):
        def moto(environ, start_response):
            start_response("200 OK", [])
            return [b"moto"]

        app = moto_launcher.LocalStateEndpoints(moto, self.open_state())
        client = Client(app)
        self.assertEqual(client.get("/moto-api/").get_data(), b"moto")
        self.assertEqual(client.options("/_local/state/load").status_code, 405)
        self.assertEqual(client.post("/_local/state/load", data="{}", content_type="text/plain").status_code, 415)
        self.assertEqual(client.post("/_local/state/save", json={}).status_code, 409)
        self.assertEqual(client.post("/_local/state/load", json={"skipKeyPrefixes": [""]}).status_code, 400)
        self.assertEqual(client.post("/_local/state/load", json={"skipKeyPrefixes": LIVE}).status_code, 200)
        saved = client.post("/_local/state/save", json={})
        self.assertEqual(saved.status_code, 200)
        self.assertIn("saved 0 items", saved.get_json()["message"])
        self.assertEqual(client.post("/_local/state/nope", json={}).status_code, 404)
        without = Client(moto_launcher.LocalStateEndpoints(moto, None))
        self.assertEqual(without.post("/_local/state/load", json={}).status_code, 404)


class SesFaults(unittest.TestCase):
    """The fault endpoint: a set fault refuses the sends it names, with the
    error SES would give, and nothing reaches moto until it is lifted."""

    def setUp(self):
        self.reached = []

        def moto(environ, start_response):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            self.reached.append(environ["wsgi.input"].read(length))
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"MessageId": "m"}']

        self.client = Client(moto_launcher.SesSendFaults(moto))

    def send(self, to):
        body = {"FromEmailAddress": "f@x.test", "Destination": {"ToAddresses": [to]}, "Content": {}}
        return self.client.post("/v2/email/outbound-emails", json=body)

    def test_a_fault_refuses_its_recipient_until_lifted(self):
        path = moto_launcher.FAULTS_PATH
        set_ = self.client.post(path, json={"code": "TooManyRequestsException", "to": "a@x.test"})
        self.assertEqual(set_.status_code, 200)
        refused = self.send("a@x.test")
        self.assertEqual(refused.status_code, 429)
        self.assertEqual(refused.headers["x-amzn-ErrorType"], "TooManyRequestsException")
        self.assertEqual(refused.get_json()["__type"], "TooManyRequestsException")
        # Another recipient is not concerned, and its body reaches moto whole.
        self.assertEqual(self.send("b@x.test").status_code, 200)
        self.assertEqual(len(self.reached), 1)
        self.assertIn(b"b@x.test", self.reached[0])
        listed = self.client.get(path).get_json()["faults"]
        self.assertEqual([(f["to"], f["refused"]) for f in listed], [("a@x.test", 1)])
        self.assertEqual(self.client.delete(path, json={"to": "a@x.test"}).get_json(), {"lifted": 1})
        self.assertEqual(self.send("a@x.test").status_code, 200)
        self.assertEqual(len(self.reached), 2)

    def test_a_fault_without_recipient_refuses_every_send_with_its_status(self):
        path = moto_launcher.FAULTS_PATH
        self.client.post(path, json={"code": "MessageRejected"})
        self.assertEqual(self.send("a@x.test").status_code, 400)
        self.client.post(path, json={"code": "ServiceUnavailable", "status": 503})
        self.assertEqual(self.send("b@x.test").status_code, 503)
        self.assertEqual(self.client.delete(path, json={}).get_json(), {"lifted": 1})
        self.assertEqual(self.send("b@x.test").status_code, 200)
        self.assertEqual(self.reached and len(self.reached), 1)

    def test_the_endpoint_takes_json_and_valid_faults_only(self):
        path = moto_launcher.FAULTS_PATH
        self.assertEqual(self.client.options(path).status_code, 405)
        self.assertEqual(self.client.post(path, data="{}", content_type="text/plain").status_code, 415)
        self.assertEqual(self.client.post(path, json={}).status_code, 400)
        self.assertEqual(self.client.post(path, json={"code": "a b"}).status_code, 400)
        self.assertEqual(self.client.post(path, json={"code": "X", "status": 200}).status_code, 400)
        self.assertEqual(self.client.post(path, json={"code": "X", "to": 3}).status_code, 400)
        self.assertEqual(self.client.get(path).get_json(), {"faults": []})


if __name__ == "__main__":
    unittest.main()
