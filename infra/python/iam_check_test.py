"""The IAM check's own verdicts on calls whose answer is known: `make iam`
runs this first, so a check that allowed everything (or nothing) fails
before it judges the suite's calls."""

import copy
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))

import iam_check  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
DEPLOYMENT = {
    "region": "us-east-1",
    "table": "t1",
    "bucket": "b1",
    "stage": "local",
    "parameters": {"EmailFrom": "no-reply@social.test"},
}
TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/t1"


def call(function, action, resource, **conditions):
    authorization = {"action": action, "resource": resource}
    if conditions:
        authorization["conditions"] = conditions
    return (function, DEPLOYMENT, authorization, None)


class Verdicts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(ROOT, "template.yaml"), encoding="utf-8") as text:
            cls.source = yaml_parse(text.read())

    def refused(self, *calls):
        return [(f, a["action"]) for f, a, _ in iam_check.denials(self.source, list(calls))]

    def test_a_granted_action_on_the_deployments_own_table_is_allowed(self):
        self.assertEqual(self.refused(call("AuthFunction", "dynamodb:PutItem", TABLE)), [])

    def test_an_action_the_role_lacks_is_denied(self):
        self.assertEqual(
            self.refused(call("HealthFunction", "dynamodb:PutItem", TABLE)),
            [("HealthFunction", "dynamodb:PutItem")],
        )

    def test_another_table_is_denied(self):
        other = "arn:aws:dynamodb:us-east-1:123456789012:table/t2"
        self.assertEqual(
            self.refused(call("AuthFunction", "dynamodb:PutItem", other)),
            [("AuthFunction", "dynamodb:PutItem")],
        )

    def test_an_index_needs_its_own_grant(self):
        self.assertEqual(self.refused(call("UsersFunction", "dynamodb:Query", TABLE + "/index/gsi1")), [])
        self.assertEqual(
            self.refused(call("UsersFunction", "dynamodb:Query", TABLE + "/index/gsi2")),
            [("UsersFunction", "dynamodb:Query")],
        )

    def test_the_sender_condition_is_evaluated(self):
        identity = "arn:aws:ses:us-east-1:123456789012:identity/no-reply@social.test"
        # The stream function sends the outbox; no other function may send.
        good = call("StreamFunction", "ses:SendEmail", identity, **{"ses:FromAddress": "no-reply@social.test"})
        forged = call("StreamFunction", "ses:SendEmail", identity, **{"ses:FromAddress": "ceo@social.test"})
        self.assertEqual(self.refused(good), [])
        self.assertEqual(self.refused(forged), [("StreamFunction", "ses:SendEmail")])
        auth = call("AuthFunction", "ses:SendEmail", identity, **{"ses:FromAddress": "no-reply@social.test"})
        self.assertEqual(self.refused(auth), [("AuthFunction", "ses:SendEmail")])

    def test_a_dot_in_a_granted_arn_is_a_dot(self):
        lookalike = "arn:aws:ses:us-east-1:123456789012:identity/no-reply@socialXtest"
        sender = {"ses:FromAddress": "no-reply@social.test"}
        self.assertEqual(
            self.refused(call("StreamFunction", "ses:SendEmail", lookalike, **sender)),
            [("StreamFunction", "ses:SendEmail")],
        )

    def test_not_resource_is_refused_rather_than_misjudged(self):
        source = copy.deepcopy(self.source)
        statement = source["Resources"]["HealthFunction"]["Properties"]["Policies"][0]["Statement"][0]
        statement["NotResource"] = statement.pop("Resource")
        with self.assertRaises(iam_check.CheckError):
            iam_check.denials(source, [call("HealthFunction", "dynamodb:DescribeTable", TABLE)])

    def test_a_policy_template_is_expanded_and_removed_whole(self):
        source = copy.deepcopy(self.source)
        policies = source["Resources"]["HealthFunction"]["Properties"]["Policies"]
        policies.append({"DynamoDBReadPolicy": {"TableName": {"Ref": "MainTable"}}})
        scan = call("HealthFunction", "dynamodb:Scan", TABLE)
        self.assertEqual(iam_check.denials(source, [scan]), [])
        granted = [g for g in iam_check.granted_actions(source) if g[0] == "HealthFunction" and g[2] is None]
        self.assertEqual([g[3] for g in granted], ["DynamoDBReadPolicy"])
        without = iam_check.without(source, *granted[0])
        self.assertEqual(len(iam_check.denials(without, [scan])), 1)

    def test_managed_policies_grant_the_stream_reads(self):
        stream = TABLE + "/stream/2026-12-02T00:00:00.000"
        self.assertEqual(self.refused(call("StreamFunction", "dynamodb:GetRecords", stream)), [])
        self.assertEqual(
            self.refused(call("PostsFunction", "dynamodb:GetRecords", stream)),
            [("PostsFunction", "dynamodb:GetRecords")],
        )

    def test_an_unmapped_request_is_refused(self):
        self.assertEqual(
            self.refused(call("AuthFunction", iam_check.UNMAPPED, "*")),
            [("AuthFunction", iam_check.UNMAPPED)],
        )

    def test_removing_an_action_from_the_template_denies_it(self):
        granted = [g for g in iam_check.granted_actions(self.source) if g[0] == "AuthFunction" and g[3] == "dynamodb:PutItem"]
        self.assertEqual(len(granted), 1)
        changed = iam_check.without(self.source, *granted[0])
        put = call("AuthFunction", "dynamodb:PutItem", TABLE)
        self.assertEqual(
            [(f, a["action"]) for f, a, _ in iam_check.denials(changed, [put])],
            [("AuthFunction", "dynamodb:PutItem")],
        )


if __name__ == "__main__":
    unittest.main()
