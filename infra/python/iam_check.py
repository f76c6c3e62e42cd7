"""Judges every AWS call the test suite's functions made against the IAM
policies each function gets on AWS.

The calls come from `infra/src/calls.rs` (one JSON line each, in the files
of AWS_CALL_LOG_DIR): which function's role asked for which action on which
resource, in which deployment (each test's own table, bucket and sender).
The policies come from template.yaml as SAM's own transform expands it
(aws-sam-translator, the version the SAM CLI pins), with AWS's managed
policies (AWSLambdaDynamoDBExecutionRole...) as moto ships them, resolved
for each call's deployment. The verdict is moto's policy evaluator's
(`moto.iam.access_control.IAMPolicy`), not ours.

Then, to show the check would notice: every action a test exercised is
removed from the template in turn, one at a time, and the calls judged
again; each removal must deny at least one call. Granted actions no call
exercised are listed.

What this leaves unchecked: resource-based policies (the bucket policy) and
permission boundaries, which the template has none of beyond a deny of
plain HTTP that does not apply locally; conditions other than those the
recorder sets (`ses:FromAddress`); and statements with NotAction or
NotResource, which moto's evaluator gets wrong and the check refuses.
Patterns are escaped before moto reads them as regular expressions; an
Allow whose condition fails counts there as a denial, which can only make
this check stricter.

Usage: iam_check.py TEMPLATE CALL_LOG_DIR
"""

import copy
import glob
import json
import logging
import os
import re
import sys
from collections import defaultdict

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# The transform warns, once per run, about usage metrics it never publishes.
logging.disable(logging.WARNING)

from moto.iam.access_control import IAMPolicy, PermissionResult  # noqa: E402
from moto.iam.aws_managed_policies import aws_managed_policies_data  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

ACCOUNT = "123456789012"
UNMAPPED = "UNMAPPED"
# The API id the recorder puts in execute-api ARNs (calls::LOCAL_WEBSOCKET_API).
WEBSOCKET_API = "local-websocket-api"
MANAGED = json.loads(aws_managed_policies_data)


class CheckError(Exception):
    pass


class NoManagedPolicyNames:
    """The transform's loader of managed policy names: the template names
    none (only ARNs), so nothing needs IAM."""

    def load(self):
        return {}


def expand(source):
    """template.yaml as CloudFormation receives it after SAM's transform."""
    template = copy.deepcopy(source)
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            # What `sam package` does: the transform accepts only S3 code.
            resource["Properties"]["CodeUri"] = f"s3://local-code/{logical_id}"
    return transform(template, {}, NoManagedPolicyNames())


def role_policies(expanded, function):
    """The policy documents of `function`'s execution role, unresolved."""
    resources = expanded["Resources"]
    role = resources[function]["Properties"]["Role"]
    if not (isinstance(role, dict) and "Fn::GetAtt" in role):
        raise CheckError(f"{function}: role {role!r} is not one of the template's")
    properties = resources[role["Fn::GetAtt"][0]]["Properties"]
    documents = [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
    for arn in properties.get("ManagedPolicyArns", []):
        name = arn.rsplit("/", 1)[-1] if isinstance(arn, str) else None
        if name not in MANAGED:
            raise CheckError(f"{function}: managed policy {arn!r} is unknown to moto")
        documents.append(MANAGED[name]["Document"])
    return documents


class Resolver:
    """CloudFormation's intrinsic functions, for one deployment."""

    def __init__(self, template, deployment):
        self.template = template
        self.region = deployment["region"]
        self.parameters = dict(deployment["parameters"])
        self.parameters["Stage"] = deployment["stage"]
        self.names = {}
        for logical_id, resource in template["Resources"].items():
            kind = resource["Type"]
            if kind == "AWS::DynamoDB::Table":
                self.names[logical_id] = deployment["table"]
            elif kind == "AWS::S3::Bucket":
                self.names[logical_id] = deployment["bucket"]
            elif kind == "AWS::ApiGatewayV2::Api":
                self.names[logical_id] = WEBSOCKET_API
            else:
                self.names[logical_id] = logical_id

    def ref(self, name):
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.names:
            return self.names[name]
        raise CheckError(f"cannot resolve Ref {name}")

    def get_att(self, logical_id, attribute):
        kind = self.template["Resources"][logical_id]["Type"]
        name = self.names[logical_id]
        arns = {
            ("AWS::DynamoDB::Table", "Arn"): f"arn:aws:dynamodb:{self.region}:{ACCOUNT}:table/{name}",
            ("AWS::DynamoDB::Table", "StreamArn"): f"arn:aws:dynamodb:{self.region}:{ACCOUNT}:table/{name}/stream/*",
            ("AWS::S3::Bucket", "Arn"): f"arn:aws:s3:::{name}",
            ("AWS::SQS::Queue", "Arn"): f"arn:aws:sqs:{self.region}:{ACCOUNT}:{name}",
        }
        if (kind, attribute) not in arns:
            raise CheckError(f"cannot resolve GetAtt {logical_id}.{attribute}")
        return arns[(kind, attribute)]

    def sub(self, text, variables):
        out, rest = "", text
        while "${" in rest:
            before, _, after = rest.partition("${")
            name, _, rest = after.partition("}")
            out += before
            if name.startswith("!"):
                out += "${" + name[1:] + "}"
            elif name in variables:
                out += variables[name]
            elif "." in name and not name.startswith("AWS::"):
                out += self.get_att(*name.split(".", 1))
            else:
                out += self.ref(name)
        return out + rest

    def resolve(self, value):
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1 or not next(iter(value)).startswith(("Fn::", "Ref")):
            return {key: self.resolve(item) for key, item in value.items()}
        (function, argument), = value.items()
        if function == "Ref":
            return self.ref(argument)
        if function == "Fn::GetAtt":
            parts = argument.split(".", 1) if isinstance(argument, str) else argument
            return self.get_att(*parts)
        if function == "Fn::Sub":
            if isinstance(argument, str):
                return self.sub(argument, {})
            text, variables = argument
            return self.sub(text, {k: self.resolve(v) for k, v in variables.items()})
        if function == "Fn::Join":
            separator, items = argument
            return separator.join(self.resolve(items))
        if function == "Fn::Select":
            index, items = argument
            return self.resolve(items)[int(self.resolve(index))]
        if function == "Fn::Split":
            separator, text = argument
            return self.resolve(text).split(separator)
        raise CheckError(f"cannot resolve {function}")


def load_calls(directory):
    calls = []
    for path in sorted(glob.glob(os.path.join(directory, "*.jsonl"))):
        with open(path, encoding="utf-8") as lines:
            calls.extend(json.loads(line) for line in lines if line.strip())
    return calls


def authorizations(calls):
    """Each distinct (function, deployment, authorization), with a route
    that needed it, for the report."""
    seen = {}
    for call in calls:
        deployment = json.dumps(call["deployment"], sort_keys=True)
        for authorization in call["authorizations"]:
            key = (call["function"], deployment, json.dumps(authorization, sort_keys=True))
            seen.setdefault(key, call.get("route"))
    return [
        (function, json.loads(deployment), json.loads(authorization), route)
        for (function, deployment, authorization), route in seen.items()
    ]


def literal_wildcards(document):
    """`document` with every Action and Resource pattern escaped for moto's
    evaluator, which turns `*` into `.*` and reads the rest as a regular
    expression: a `.` in an ARN would match any character there, and
    IAM's `?` (one character) would be a quantifier."""
    def escape(pattern):
        return re.escape(pattern).replace(r"\*", "*").replace(r"\?", ".")

    statements = document["Statement"]
    for statement in [statements] if isinstance(statements, dict) else statements:
        for refused in ("NotAction", "NotResource", "NotPrincipal"):
            if refused in statement:
                # moto's evaluator treats a statement without Resource as a
                # trust policy's and allows any resource.
                raise CheckError(f"{refused} is not supported by the check: {statement}")
        for element in ("Action", "Resource"):
            value = statement.get(element)
            if isinstance(value, str):
                statement[element] = escape(value)
            elif isinstance(value, list):
                statement[element] = [escape(item) for item in value]
    return document


def denials(source, judged):
    """The authorizations of `judged` the policies of `source` refuse."""
    expanded = expand(source)
    policies, refused = {}, []
    for function, deployment, authorization, route in judged:
        key = (function, json.dumps(deployment, sort_keys=True))
        if key not in policies:
            resolver = Resolver(expanded, deployment)
            policies[key] = [
                IAMPolicy(json.dumps(literal_wildcards(resolver.resolve(document))))
                for document in role_policies(expanded, function)
            ]
        if authorization["action"] == UNMAPPED:
            refused.append((function, authorization, route))
            continue
        results = [
            policy.is_action_permitted(
                authorization["action"],
                authorization["resource"],
                incoming_condition_values=authorization.get("conditions") or None,
            )
            for policy in policies[key]
        ]
        if PermissionResult.DENIED in results or PermissionResult.PERMITTED not in results:
            refused.append((function, authorization, route))
    return refused


def granted_actions(source):
    """(function, statement index path, action) for every action the
    template's own `Policies:` statements grant."""
    granted = []
    for function, resource in source["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for p, policy in enumerate(resource["Properties"].get("Policies", [])):
            if isinstance(policy, dict) and "Statement" not in policy and len(policy) == 1:
                # A SAM policy template (`DynamoDBReadPolicy: {...}`): it is
                # removed from the template as a whole.
                granted.append((function, p, None, next(iter(policy))))
                continue
            if not isinstance(policy, dict) or "Statement" not in policy:
                raise CheckError(f"{function}: cannot remove from policy {policy!r}")
            for s, statement in enumerate(policy["Statement"]):
                actions = statement["Action"]
                for action in [actions] if isinstance(actions, str) else actions:
                    granted.append((function, p, s, action))
    return granted


def without(source, function, p, s, action):
    """`source` with `action` removed from one statement of `function`."""
    changed = copy.deepcopy(source)
    if s is None:
        del changed["Resources"][function]["Properties"]["Policies"][p]
        return changed
    statements = changed["Resources"][function]["Properties"]["Policies"][p]["Statement"]
    statement = statements[s]
    actions = statement["Action"]
    remaining = [a for a in ([actions] if isinstance(actions, str) else actions) if a != action]
    if remaining:
        statement["Action"] = remaining
    else:
        del statements[s]
    return changed


def describe(function, authorization, route):
    where = f" (route {route})" if route else ""
    detail = f" [{authorization['detail']}]" if authorization.get("detail") else ""
    return f"{function}: {authorization['action']} on {authorization['resource']}{where}{detail}"


def main(template_path, directory):
    with open(template_path, encoding="utf-8") as text:
        source = yaml_parse(text.read())
    calls = load_calls(directory)
    if not calls:
        raise CheckError(f"no recorded calls in {directory}: was the suite run with AWS_CALL_LOG_DIR?")
    judged = authorizations(calls)
    failures = []

    refused = denials(source, judged)
    for function, authorization, route in refused:
        failures.append("denied: " + describe(function, authorization, route))

    functions = [
        logical_id
        for logical_id, resource in source["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    ]
    judged_of = defaultdict(list)
    for entry in judged:
        judged_of[entry[0]].append(entry)
    called = set(judged_of)
    for function in functions:
        if function not in called:
            failures.append(f"no test made a call as {function}")

    exercised = {(function, a["action"]) for function, _, a, _ in judged}
    unexercised = []
    for function, p, s, action in granted_actions(source):
        if s is None:
            # A policy template: what it grants is known only expanded, so
            # its removal must deny some call of the function, or no test
            # exercises it.
            if not denials(without(source, function, p, s, action), judged_of[function]):
                unexercised.append(f"{function}: policy template {action}")
            continue
        if (function, action) not in exercised:
            unexercised.append(f"{function}: {action}")
            continue
        if not denials(without(source, function, p, s, action), judged_of[function]):
            failures.append(
                f"removing {action} from {function}'s statement {s} denies no call: "
                "granted twice, or the check cannot see it"
            )

    print(
        f"IAM: {len(calls)} calls, {len(judged)} distinct authorizations "
        f"of {len(called)} functions judged against the expanded template"
    )
    for function in functions:
        actions = sorted({a for f, a in exercised if f == function})
        print(f"  {function}: {', '.join(actions) or '-'}")
    if unexercised:
        print("granted, but exercised by no test:")
        for line in unexercised:
            print(f"  {line}")
    if failures:
        print(f"{len(failures)} IAM failure(s):", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        return 1
    print("IAM: every call allowed; every exercised action's removal is detected")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(main(sys.argv[1], sys.argv[2]))
    except CheckError as err:
        print(f"iam_check: {err}", file=sys.stderr)
        sys.exit(1)
