"""Runs schemathesis against a real gateway (scripts/api-fuzz): starts the debug binary on
a free loopback port with a throwaway SQLite file and dev tokens, mints a token, creates a
little data so that paths find something, then runs `schemathesis run` on the node's own
/api/openapi.json. Exits with schemathesis's status. Standard library only (the venv adds
schemathesis)."""

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

START_TIMEOUT = 30
MAX_EXAMPLES = os.environ.get("API_FUZZ_EXAMPLES", "25")
MAX_TIME = os.environ.get("API_FUZZ_MAX_TIME", "75")
CHECKS = ",".join([
    # No 5xx, whatever the input.
    "not_a_server_error",
    # Every status, content type and body is the one the document describes.
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    # Input the schema forbids is refused with a 4xx.
    "negative_data_rejection",
    # An operation that needs a token refuses a request without one.
    "ignored_auth",
    # A method the document does not list for a path is 405 (with an Allow header).
    "unsupported_method",
])


def call(base, method, path, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            text = res.read().decode()
            return res.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def start(binary, workdir):
    env = dict(os.environ)
    env.update({
        "CHAT__SERVER__BIND": "127.0.0.1:0",
        "CHAT__STORAGE__URL": "sqlite:" + os.path.join(workdir, "chat.db"),
        "CHAT__AUTH__DEV_TOKENS": "true",
        "CHAT__LOG__LEVEL": "warn",
        "RUST_LOG": "warn",
    })
    node = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
    found = {}

    def read():
        for line in node.stdout:
            m = re.search(r"listening on ws://([0-9.:]+)/ws", line)
            if m and "addr" not in found:
                found["addr"] = m.group(1)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    while "addr" not in found:
        if node.poll() is not None or time.monotonic() > deadline:
            node.kill()
            sys.exit(f"api-fuzz: {binary} did not start (exit {node.poll()})")
        time.sleep(0.05)
    base = "http://" + found["addr"]
    while True:
        try:
            if call(base, "GET", "/health/ready")[0] == 200:
                return node, base
        except OSError:
            pass
        if time.monotonic() > deadline:
            node.kill()
            sys.exit("api-fuzz: the gateway never became ready")
        time.sleep(0.05)


def seed(base):
    """A token for user 1, and something for the paths to find: a group of 1 with 2 and 3,
    a follow, a block, a mute."""
    status, minted = call(base, "POST", "/api/dev/token", body={"user_id": 1})
    assert status == 200, (status, minted)
    token = minted["token"]
    for method, path, body in [
        ("POST", "/api/groups", {"id": "fuzz-team", "name": "Fuzz team", "members": [2, 3]}),
        ("POST", "/api/follows", {"user_id": 2}),
        ("PUT", "/api/blocks/4", None),
        ("PUT", "/api/mutes/groups/fuzz-team", None),
    ]:
        status, answer = call(base, method, path, token, body)
        assert status in (200, 201), (method, path, status, answer)
    return token


def main():
    schemathesis, binary, report = (os.path.abspath(a) for a in sys.argv[1:4])
    with tempfile.TemporaryDirectory(prefix="api-fuzz-") as workdir:
        node, base = start(binary, workdir)
        try:
            token = seed(base)
            args = [
                schemathesis, "run", base + "/api/openapi.json",
                "--header", "Authorization: Bearer " + token,
                "--checks", CHECKS,
                "--max-examples", MAX_EXAMPLES,
                "--max-time", MAX_TIME,
                "--seed", os.environ.get("API_FUZZ_SEED", "17"),
                "--workers", "2",
                "--request-timeout", "10",
                "--report", "junit",
                "--report-junit-path", report,
                # /metrics is Prometheus's text, described as a string: nothing to check
                # beyond its status, and each request renders every metric.
                "--exclude-path", "/metrics",
            ]
            print("api-fuzz: " + " ".join(a if "Bearer" not in a else "Authorization: Bearer …" for a in args[1:]), flush=True)
            # Its caches (.schemathesis, .hypothesis) go next to the report, not in the repo.
            code = subprocess.call(args, cwd=os.path.dirname(report))
        finally:
            node.terminate()
            try:
                node.wait(timeout=15)
            except subprocess.TimeoutExpired:
                node.kill()
        if node.returncode not in (0, None, -15):
            print(f"api-fuzz: the gateway exited with {node.returncode}", file=sys.stderr)
            code = code or 1
    sys.exit(code)


if __name__ == "__main__":
    main()
