"""The launcher's cheap transaction snapshot against moto's own backend: a
cancelled transaction must leave every item as it was (moto's deep copy
did), whatever its operations did before the cancel, and keep the live
stream shard without the cancelled writes' records. `make unit` runs it."""

import copy
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))

import moto_launcher  # noqa: E402  (patches DynamoDBBackend.transact_write_items)
from moto.dynamodb.exceptions import TransactionCanceledException  # noqa: E402
from moto.dynamodb.models import dynamodb_backends  # noqa: E402


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


if __name__ == "__main__":
    unittest.main()
