"""What `sam local` is given here, read by the SAM CLI's own code; and the
command that puts a fresh access token into copies of the events.

    sam_local_check.py check
    sam_local_check.py stamp --login LOGIN.json EVENT [EVENT ...] [--out-dir DIR]

`check` (docs/LOCALSTACK_AND_SAM_LOCAL.md) needs the SAM CLI in .venv (`make
validate` installs it; `sam local` itself needs Docker, which this does
not). It reads template.yaml with SAM's stack and function providers, and:

- applies events/sam-local.env.json to every function with SAM's own
  override logic (`LocalLambdaRunner._make_env_vars`, what `sam local invoke
  -n` and `start-api -n` run): the file names exactly the functions SAM
  sees; each value it gives reaches the function unchanged, except the
  variables template.yaml does not declare, which SAM CLI drops without a
  word (it overrides declared variables only). Those may only be the ones
  in AWAITING_TEMPLATE, and are reported. No function is left with a value
  SAM could not resolve locally (a resource's logical id, a secret
  reference, an empty intrinsic).
- reads every event of events/local/ as SAM would route it: a REST event's
  resource and method are a route of SAM's API provider to the function
  its file name's crate builds, and it carries every key of the event
  SAM's own `sam local start-api` constructs for the same request (and
  the same stage); a WebSocket event's route key is a route of the
  template's WebSocket API (a message's is its body's `action`, the API's
  route selection expression), which integrates that function; a stream
  batch's records have the keys of `sam local generate-event dynamodb
  update`'s and come from the table whose stream feeds that function.

`stamp` needs nothing but Python. LOGIN.json is the answer of a login or
register: what `sam local invoke AuthFunction -e
events/local/auth-login.json` prints (a proxy response, body as a string),
or the envelope `curl` gets from the local gateway; `-` reads it from
standard input. Every `__ACCESS_TOKEN__` and `__USER_ID__` in the events is
replaced by that user's access token and id; one event goes to standard
output, several need --out-dir. The API tests (tests/api/sam_local.rs)
stamp the events with this same command.
"""

import argparse
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ENV_FILE = ROOT / "events" / "sam-local.env.json"
EVENTS = ROOT / "events" / "local"

# What the env-vars file sets that template.yaml does not declare yet, so
# SAM CLI drops it: the emulator's endpoint and its S3 addressing. The
# template change that makes SAM deliver them is in
# docs/LOCALSTACK_AND_SAM_LOCAL.md; once it is made, they are checked like
# every other variable.
AWAITING_TEMPLATE = {"AWS_ENDPOINT_URL", "S3_FORCE_PATH_STYLE"}

PLACEHOLDER = re.compile(r"__[A-Z][A-Z_]*__")


# --- stamp ---------------------------------------------------------------


def parse_printed_json(text: str):
    """The JSON a command printed: all of it, or else its last line that is
    JSON (SAM CLI versions differ in what else reaches standard output)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    raise SystemExit("stamp: the login answer is not JSON")


def auth_data(answer) -> dict:
    """The `data` of a successful login or register, from a Lambda proxy
    response or from the envelope itself."""
    if isinstance(answer, dict) and "statusCode" in answer:
        status = answer["statusCode"]
        if status not in (200, 201):
            raise SystemExit(f"stamp: the login answered {status}: {answer.get('body')}")
        body = answer.get("body") or ""
        if answer.get("isBase64Encoded"):
            import base64

            body = base64.b64decode(body).decode()
        answer = json.loads(body)
    if not isinstance(answer, dict) or answer.get("success") is not True:
        raise SystemExit(f"stamp: not a successful login answer: {json.dumps(answer)[:300]}")
    data = answer.get("data") or {}
    if not isinstance(data.get("accessToken"), str) or not isinstance(data.get("user", {}).get("id"), str):
        raise SystemExit("stamp: the answer has no data.accessToken and data.user.id")
    return data


def fill(value, values: dict):
    """`value` with every placeholder inside its strings replaced."""
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda match: values.get(match.group(0), match.group(0)), value)
    if isinstance(value, list):
        return [fill(item, values) for item in value]
    if isinstance(value, dict):
        return {fill(key, values): fill(item, values) for key, item in value.items()}
    return value


def leftover_placeholders(value) -> set:
    text = json.dumps(value)
    return set(PLACEHOLDER.findall(text))


def stamp(args) -> int:
    if len(args.events) > 1 and not args.out_dir:
        raise SystemExit("stamp: several events need --out-dir")
    text = sys.stdin.read() if args.login == "-" else Path(args.login).read_text()
    data = auth_data(parse_printed_json(text))
    values = {"__ACCESS_TOKEN__": data["accessToken"], "__USER_ID__": data["user"]["id"]}
    for name in args.events:
        path = Path(name)
        stamped = fill(json.loads(path.read_text()), values)
        unknown = leftover_placeholders(stamped)
        if unknown:
            raise SystemExit(f"stamp: {path}: no value for {', '.join(sorted(unknown))}")
        text = json.dumps(stamped, indent=2, ensure_ascii=False) + "\n"
        if args.out_dir:
            out = Path(args.out_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / path.name).write_text(text)
            print(out / path.name, file=sys.stderr)
        else:
            sys.stdout.write(text)
    return 0


# --- check ---------------------------------------------------------------


class Problems:
    def __init__(self):
        self.found = []
        self._mark = 0

    def __call__(self, message: str):
        self.found.append(message)
        print(f"FAIL {message}")

    def start(self) -> None:
        """Begins one item: `ok` reports it only if it added no problem."""
        self._mark = len(self.found)

    def ok(self, message: str) -> None:
        if len(self.found) == self._mark:
            print(f"ok   {message}")


def sam_view():
    """template.yaml as `sam local` reads it: its stacks, functions and API."""
    from samcli.lib.providers.api_provider import ApiProvider
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    stacks, _ = SamLocalStackProvider.get_stacks(str(TEMPLATE))
    functions = SamFunctionProvider(stacks, use_raw_codeuri=True)
    return stacks, functions, ApiProvider(stacks)


def crate_of(function) -> str:
    """The crate a function is built from: its BuildProperties' Binary, or
    else its CodeUri's last part (`functions/auth`)."""
    binary = ((function.metadata or {}).get("BuildProperties") or {}).get("Binary")
    return binary or Path(str(function.codeuri).rstrip("/")).name


def unresolved(value: str, resource_ids) -> bool:
    """A value SAM left as the template had it: what AWS would resolve at
    deploy time and SAM cannot (a resource's id, a secret)."""
    if value == "" or "{{resolve:" in value:
        return True
    return any(re.search(rf"(?<![A-Za-z0-9]){re.escape(rid)}(?![A-Za-z0-9])", value) for rid in resource_ids)


def check_env_vars(functions, resource_ids, problems) -> None:
    from samcli.commands.local.cli_common.invoke_context import InvokeContext
    from samcli.commands.local.lib.local_lambda import LocalLambdaRunner

    values = InvokeContext._get_env_vars_value(str(ENV_FILE))
    known = {function.name for function in functions.get_all()}
    given = set(values) - {"Parameters"}
    if given != known:
        problems(
            f"{ENV_FILE.name}: functions {sorted(given - known)} are not in template.yaml, "
            f"{sorted(known - given)} have no entry"
        )
    runner = LocalLambdaRunner(
        local_runtime=None,
        function_provider=functions,
        cwd=str(ROOT),
        real_path=str(ROOT),
        env_vars_values=values,
    )
    dropped_everywhere = None
    for function in sorted(functions.get_all(), key=lambda f: f.name):
        problems.start()
        resolved = runner._make_env_vars(function).resolve()
        declared = set(((function.environment or {}).get("Variables") or {}))
        own = values.get(function.name, {})
        dropped = set()
        for name, value in own.items():
            if name not in declared:
                dropped.add(name)
            elif resolved.get(name) != str(value):
                problems(f"{function.name}: {name} reaches the function as {resolved.get(name)!r}, not {value!r}")
        if dropped - AWAITING_TEMPLATE:
            problems(
                f"{function.name}: SAM drops {sorted(dropped - AWAITING_TEMPLATE)}: "
                "template.yaml does not declare them for this function"
            )
        for name in sorted(declared):
            if unresolved(resolved.get(name, ""), resource_ids):
                problems(f"{function.name}: {name} is {resolved.get(name)!r}, which only AWS resolves; set it in {ENV_FILE.name}")
        dropped_everywhere = dropped if dropped_everywhere is None else dropped_everywhere & dropped
        problems.ok(f"{function.name}: {len(own) - len(dropped)} variables from {ENV_FILE.name} reach it")
    if dropped_everywhere:
        print(
            f"note SAM CLI drops {', '.join(sorted(dropped_everywhere))} for every function: "
            "template.yaml does not declare them (docs/LOCALSTACK_AND_SAM_LOCAL.md, "
            "'What is still missing')"
        )


def start_api_event(api, event):
    """The event `sam local start-api` builds for the request `event`
    describes, with SAM's own constructor."""
    from flask import Flask, request
    from samcli.local.apigw.event_constructor import construct_v1_event
    from samcli.local.apigw.path_converter import PathConverter

    app = Flask("sam_local_check")
    rule = PathConverter.convert_path_to_flask(event["resource"])
    app.add_url_rule(rule, endpoint=rule, view_func=lambda **_: "", methods=[event["httpMethod"]])
    headers = {name: value for name, value in (event.get("headers") or {}).items() if name.lower() != "host"}
    with app.test_request_context(
        event["path"],
        method=event["httpMethod"],
        headers=headers,
        query_string=event.get("queryStringParameters") or {},
        data=(event.get("body") or "").encode(),
    ):
        return construct_v1_event(
            request,
            3000,
            api.api.binary_media_types,
            stage_name=api.api.stage_name,
            stage_variables=api.api.stage_variables,
        )


def missing_keys(ours: dict, theirs: dict, where: str) -> list:
    return [f"{where}{key}" for key in theirs if key not in ours]


def check_rest(name, event, function, api, problems) -> None:
    routes = [
        route
        for route in api.routes
        if route.path == event.get("resource") and event.get("httpMethod") in route.methods
    ]
    if len(routes) != 1 or routes[0].function_name != function.name:
        problems(
            f"{name}: SAM routes {event.get('httpMethod')} {event.get('resource')} to "
            f"{[route.function_name for route in routes]}, not {function.name}"
        )
        return
    sam = start_api_event(api, event)
    missing = missing_keys(event, sam, "")
    missing += missing_keys(event["requestContext"], sam["requestContext"], "requestContext.")
    missing += missing_keys(
        event["requestContext"]["identity"], sam["requestContext"]["identity"], "requestContext.identity."
    )
    if missing:
        problems(f"{name}: lacks keys of SAM's start-api event: {missing}")
    for key in ("httpMethod", "resource", "path", "isBase64Encoded", "queryStringParameters", "body"):
        if event.get(key) != sam.get(key):
            problems(f"{name}: {key} is {event.get(key)!r}; sam local start-api sends {sam.get(key)!r}")
    if event["requestContext"].get("stage") != sam["requestContext"].get("stage"):
        problems(f"{name}: stage {event['requestContext'].get('stage')!r} is not the template's {sam['requestContext'].get('stage')!r}")
    problems.ok(f"{name}: {event['httpMethod']} {event['resource']} -> {function.name}, with every key of SAM's start-api event")


def check_websocket(name, event, function, resources, problems) -> None:
    context = event["requestContext"]
    routes = {
        resource["Properties"].get("RouteKey"): resource["Properties"]
        for resource in resources.values()
        if resource.get("Type") == "AWS::ApiGatewayV2::Route"
    }
    route_key = context.get("routeKey")
    if route_key not in routes:
        problems(f"{name}: the WebSocket API has no route {route_key!r} (it has {sorted(routes)})")
        return
    apis = [r["Properties"] for r in resources.values() if r.get("Type") == "AWS::ApiGatewayV2::Api"]
    if context.get("eventType") == "MESSAGE":
        selection = apis[0].get("RouteSelectionExpression") if apis else None
        if selection != "$request.body.action":
            problems(f"{name}: the API selects routes by {selection!r}, which this check does not read")
        elif json.loads(event.get("body") or "{}").get("action") != route_key:
            problems(f"{name}: the body's action is not the route key {route_key!r}")
    target = str(routes[route_key].get("Target"))
    integrations = [
        resource["Properties"]
        for logical_id, resource in resources.items()
        if resource.get("Type") == "AWS::ApiGatewayV2::Integration" and logical_id in target
    ]
    if not any(function.name in json.dumps(integration.get("IntegrationUri")) for integration in integrations):
        problems(f"{name}: route {route_key!r} does not integrate {function.name}")
        return
    problems.ok(f"{name}: WebSocket route {route_key} -> {function.name}")


def check_stream(name, event, function, resources, problems) -> None:
    from samcli.lib.generated_sample_events.events import Events

    sample = json.loads(Events().generate_event("dynamodb", "update", {}))["Records"][0]
    sources = [
        props
        for props in ((e or {}).get("Properties") or {} for e in (function.events or {}).values())
        if "Stream" in props
    ]
    streamed_tables = {str(props["Stream"]) for props in sources}
    env = json.loads(ENV_FILE.read_text()).get(function.name, {})
    for record in event.get("Records", []):
        missing = missing_keys(record, sample, "") + missing_keys(record["dynamodb"], sample["dynamodb"], "dynamodb.")
        if missing:
            problems(f"{name}: a record lacks keys of `sam local generate-event dynamodb update`'s: {missing}")
        table = record.get("eventSourceARN", "").split(":table/")[-1].split("/stream/")[0]
        if table != env.get("TABLE_NAME"):
            problems(f"{name}: records of table {table!r}, not {env.get('TABLE_NAME')!r}")
    tables = [lid for lid, r in resources.items() if r.get("Type") == "AWS::DynamoDB::Table"]
    if not sources or not all(any(t in stream for t in tables) for stream in streamed_tables):
        problems(f"{name}: {function.name} is fed by no stream of the template's table")
        return
    problems.ok(f"{name}: {len(event.get('Records', []))} stream record(s) -> {function.name}")


def check_events(functions, api, resources, problems) -> None:
    by_crate = {crate_of(function): function for function in functions.get_all()}
    names = sorted(EVENTS.glob("*.json"))
    if not names:
        problems(f"{EVENTS}: no events")
    for path in names:
        problems.start()
        name = f"events/local/{path.name}"
        crate = path.stem.split("-")[0]
        function = by_crate.get(crate)
        if function is None:
            problems(f"{name}: no function of template.yaml is built from crate {crate!r}")
            continue
        event = json.loads(path.read_text())
        problems.start()
        if "httpMethod" in event:
            check_rest(name, event, function, api, problems)
        elif "eventType" in event.get("requestContext", {}):
            check_websocket(name, event, function, resources, problems)
        elif "Records" in event:
            check_stream(name, event, function, resources, problems)
        else:
            problems(f"{name}: neither a REST, a WebSocket nor a stream event")


def check(_args) -> int:
    # No usage telemetry, no credential lookups beyond the environment, and
    # no shell variable of the caller's standing in for a template's.
    os.environ["SAM_CLI_TELEMETRY"] = "0"
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        import samcli  # noqa: F401
    except ImportError:
        raise SystemExit("check: the SAM CLI is not in this Python (make validate installs it into .venv)")
    stacks, functions, api = sam_view()
    resources = stacks[0].resources
    for function in functions.get_all():
        for name in ((function.environment or {}).get("Variables") or {}):
            os.environ.pop(name, None)
    problems = Problems()
    check_env_vars(functions, set(resources), problems)
    check_events(functions, api, resources, problems)
    if problems.found:
        print(f"{len(problems.found)} problem(s)")
        return 1
    print("SAM CLI accepts the env-vars file and every event")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="read the env-vars file and the events with SAM's own code")
    stamping = commands.add_parser("stamp", help="copies of events with a user's token and id")
    stamping.add_argument("--login", required=True, help="a login or register answer (JSON), or - for stdin")
    stamping.add_argument("--out-dir", help="where the stamped copies go (needed for several events)")
    stamping.add_argument("events", nargs="+")
    args = parser.parse_args()
    return {"check": check, "stamp": stamp}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
