"""Hot reload for `make dev`: runs the local gateway, and on every saved
change to the Rust sources rebuilds and restarts it, while the emulator
(a separate process) keeps running with its data.

Started by infra/scripts/dev.sh (unless HOT_RELOAD=0), from the repository
root, with the environment of infra/scripts/env.sh. What it does:

- watches, with watchfiles (pinned in requirements.txt), every `.rs` file
  and `Cargo.toml` under functions/, shared/ and infra/ (node_modules and
  target/ aside), and the root's Cargo.toml, Cargo.lock and template.yaml;
- on a change, runs a build of the binaries a running `make dev` uses
  (`BUILD`), while the running gateway keeps serving. Changes saved during a
  build are coalesced into one more build after it, and the gateway is
  restarted once, after the last;
- a failed build leaves the running gateway serving (cargo has printed the
  errors); the next save tries again;
- a successful one restarts the gateway if its binary or template.yaml
  changed (provisioning again first when template.yaml did): SIGTERM, which
  the gateway answers by closing every WebSocket with 1001 and running its
  `$disconnect` (src/bin/local-gateway.rs), then the new binary, and a
  line saying how long the save took to serve;
- SIGTERM or SIGINT (dev.sh's cleanup, Ctrl-C) stops the build under way
  and the gateway, then exits.

A gateway that fails to start the first time ends this script with its
status, as it ends dev.sh without hot reload; one that fails after a reload
is reported, and the next successful build starts it again.
"""

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

try:
    from watchfiles import watch
except ImportError:
    sys.exit(
        "hot reload: watchfiles is not installed in .venv: run `make venv` "
        "(or start with HOT_RELOAD=0)"
    )

ROOT = Path(__file__).resolve().parents[2]
# Only what a running `make dev` uses: the gateway, provision (after a
# template change) and dev-state (its save at the stop). Linking infra's
# other binaries too (admin, seed, migrate, openapi, bench) took most of a
# reload's time; `make seed`, `make admin` and `make migrate` build their
# own when run.
BUILD = ["cargo", "build", "--locked", "-p", "infra",
         "--bin", "local-gateway", "--bin", "provision", "--bin", "dev-state"]
GATEWAY = ROOT / "target" / "debug" / "local-gateway"
PROVISION = ROOT / "target" / "debug" / "provision"
TREES = [ROOT / "functions", ROOT / "shared", ROOT / "infra"]
ROOT_FILES = {"Cargo.toml", "Cargo.lock", "template.yaml"}
SKIPPED = {"target", "node_modules", ".git"}
# The gateway's own bound on a graceful stop is about 7 s (local-gateway.rs:
# STOP_LIMIT and STREAM_DRAIN); past this it is killed.
STOP_TIMEOUT = 20.0
# A cold start of the gateway takes well under a second; a busy machine
# (a test run building beside it) can stretch that a lot.
START_TIMEOUT = 60.0
# watchfiles yields a batch once nothing has changed for STEP_MS (an editor
# writing a file in several steps is one change), or after DEBOUNCE_MS of
# changes without a pause.
STEP_MS = 100
DEBOUNCE_MS = 1600


def log(message: str) -> None:
    print(f"hot reload: {message}", file=sys.stderr, flush=True)


def relevant_in_tree(_change, path: str) -> bool:
    try:
        parts = Path(path).relative_to(ROOT).parts
    except ValueError:
        return False
    name = parts[-1]
    if SKIPPED.intersection(parts) or name.startswith(".#"):
        # .#name is an Emacs lock file, not a source.
        return False
    return name.endswith(".rs") or name == "Cargo.toml"


def relevant_at_root(_change, path: str) -> bool:
    return Path(path).parent == ROOT and Path(path).name in ROOT_FILES


def watcher(paths, recursive, accept, changes: queue.Queue, stop: threading.Event) -> None:
    """Puts each batch of relevant changes on `changes` until `stop`."""
    for batch in watch(
        *paths,
        watch_filter=accept,
        recursive=recursive,
        stop_event=stop,
        step=STEP_MS,
        debounce=DEBOUNCE_MS,
        ignore_permission_denied=True,
    ):
        changes.put({path for _, path in batch})


def ports() -> list[int]:
    return [int(os.environ.get("API_PORT", "3000")), int(os.environ.get("WS_PORT", "3001"))]


def answering(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def fingerprint(path: Path):
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class Reloader:
    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.gateway: subprocess.Popen | None = None
        self.build: subprocess.Popen | None = None
        # Whether the last gateway's exit has been reported.
        self.reported_exit = False

    def on_signal(self, signum, _frame) -> None:
        self.stopping.set()
        build = self.build
        if build is not None and build.poll() is None:
            # cargo runs in a process group of its own (see `run_build`).
            try:
                os.killpg(build.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def start_gateway(self) -> bool:
        """Starts the gateway and waits until both its ports answer."""
        self.gateway = subprocess.Popen([str(GATEWAY)], cwd=ROOT)
        self.reported_exit = False
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and not self.stopping.is_set():
            if self.gateway.poll() is not None:
                return False
            if all(answering(port) for port in ports()):
                return True
            time.sleep(0.05)
        return self.gateway.poll() is None

    def stop_gateway(self) -> None:
        gateway, self.gateway = self.gateway, None
        if gateway is None or gateway.poll() is not None:
            return
        gateway.send_signal(signal.SIGTERM)
        try:
            gateway.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log(f"the gateway did not stop within {STOP_TIMEOUT:.0f} s; killing it")
            gateway.kill()
            gateway.wait()

    def run_build(self) -> bool:
        # A process group of its own, so that a stop reaches rustc too.
        self.build = subprocess.Popen(BUILD, cwd=ROOT, start_new_session=True)
        try:
            return self.build.wait() == 0
        finally:
            self.build = None

    def check_gateway(self) -> None:
        """Reports a gateway that ended on its own, once."""
        if self.gateway is not None and not self.reported_exit:
            code = self.gateway.poll()
            if code is not None:
                self.reported_exit = True
                log(f"the gateway exited with status {code}; save a file to rebuild and start it again")

    def reload(self, first: set, started: float, changes: queue.Queue) -> None:
        pending = first
        template_changed = False
        built = False
        before = fingerprint(GATEWAY)
        while pending and not self.stopping.is_set():
            names = sorted(str(Path(p).relative_to(ROOT)) for p in pending)
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            log(f"{shown} changed; building")
            template_changed |= any(Path(p).name == "template.yaml" for p in pending)
            built = self.run_build()
            pending = drain(changes)
            if pending:
                log("more changes during the build; building once more")
        if self.stopping.is_set():
            return
        built_in = time.monotonic() - started
        if not built:
            log(f"build failed after {built_in:.1f} s (errors above); the running gateway keeps serving, save again to retry")
            return
        gateway_alive = self.gateway is not None and self.gateway.poll() is None
        if fingerprint(GATEWAY) == before and not template_changed and gateway_alive:
            log(f"built in {built_in:.1f} s; the gateway binary is unchanged, not restarting")
            return
        if template_changed:
            log("template.yaml changed; provisioning")
            if subprocess.run([str(PROVISION)], cwd=ROOT).returncode != 0:
                log("provisioning failed (above); the running gateway keeps serving")
                return
        down = time.monotonic()
        self.stop_gateway()
        if self.stopping.is_set():
            return
        started_gateway = self.start_gateway()
        if self.stopping.is_set():
            return
        if started_gateway:
            now = time.monotonic()
            log(
                f"serving the new build {now - started:.1f} s after the change "
                f"(build {built_in:.1f} s, API down {now - down:.1f} s; open WebSockets were closed, clients reconnect)"
            )
        else:
            self.reported_exit = True
            log("the new gateway did not start (above); save a file to try again")

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self.on_signal)
        changes: queue.Queue = queue.Queue()
        stop_watching = threading.Event()
        watchers = [
            threading.Thread(
                target=watcher,
                args=([str(t) for t in TREES], True, relevant_in_tree, changes, stop_watching),
                daemon=True,
            ),
            threading.Thread(
                target=watcher,
                args=([str(ROOT)], False, relevant_at_root, changes, stop_watching),
                daemon=True,
            ),
        ]
        for thread in watchers:
            thread.start()
        try:
            if not self.start_gateway():
                code = self.gateway.poll() if self.gateway else None
                if self.stopping.is_set():
                    return 0
                log("the gateway did not start")
                return code if code else 1
            log("watching functions/, shared/, infra/, Cargo.toml, Cargo.lock and template.yaml")
            while not self.stopping.is_set():
                try:
                    batch = changes.get(timeout=0.5)
                except queue.Empty:
                    self.check_gateway()
                    continue
                started = time.monotonic()
                self.reload(batch | drain(changes), started, changes)
            return 0
        finally:
            stop_watching.set()
            self.stop_gateway()


def drain(changes: queue.Queue) -> set:
    drained = set()
    while True:
        try:
            drained |= changes.get_nowait()
        except queue.Empty:
            return drained


if __name__ == "__main__":
    sys.exit(Reloader().run())
