"""The project's own rules for the rendered gateway objects, beyond schemas and Pod
Security: the HPA owns the replica count, the shutdown budget adds up, the probes are
the ones docs/operations.md describes, every container is sized.
"""

import re

from render import containers_of
from restricted import pod_spec

# Seconds between the end of server.shutdown_grace and the kubelet's SIGKILL, for the
# process to exit after its grace ran out.
MARGIN_SECONDS = 5
# The node's defaults (docs/configuration.md), when the ConfigMap does not set them.
DEFAULTS = {"CHAT__SERVER__SHUTDOWN_GRACE": "10s", "CHAT__SERVER__DRAIN_WINDOW": "5s"}
UNITS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600}


def seconds(text):
    """`20s`, `1m`, `1500ms` (humantime's common forms) in seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h)\s*", str(text))
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def check(objects, where):
    problems = []
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj.get("kind"), {})[obj["metadata"]["name"]] = obj
    for hpa in by_kind.get("HorizontalPodAutoscaler", {}).values():
        ref = hpa["spec"]["scaleTargetRef"]
        target = by_kind.get(ref["kind"], {}).get(ref["name"])
        if target is None:
            problems.append(f"{where}: HPA {hpa['metadata']['name']} scales {ref['kind']}/{ref['name']}, which is not rendered")
        elif "replicas" in target.get("spec", {}):
            problems.append(f"{where}: {ref['kind']}/{ref['name']} sets replicas while HPA {hpa['metadata']['name']} owns them")
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        name = f"{where}: {obj['kind']}/{obj['metadata']['name']}"
        for container in containers_of(obj):
            resources = container.get("resources") or {}
            requests = resources.get("requests") or {}
            if not {"cpu", "memory"} <= set(requests) or "memory" not in (resources.get("limits") or {}):
                problems.append(f"{name}: container {container['name']} needs cpu and memory requests and a memory limit")
        for container in spec.get("containers", []):
            if container.get("args", [None])[0] == "serve":
                problems.extend(gateway_problems(name, spec, container, by_kind.get("ConfigMap", {})))
    return problems


def settings_of(container, configmaps):
    values = dict(DEFAULTS)
    for source in container.get("envFrom", []):
        ref = (source.get("configMapRef") or {}).get("name")
        values.update((configmaps.get(ref) or {}).get("data") or {})
    for env in container.get("env", []):
        if "value" in env:
            values[env["name"]] = env["value"]
    return values


def gateway_problems(name, spec, container, configmaps):
    problems = []
    settings = settings_of(container, configmaps)
    grace = seconds(settings["CHAT__SERVER__SHUTDOWN_GRACE"])
    window = seconds(settings["CHAT__SERVER__DRAIN_WINDOW"])
    pre_stop = (((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
    budget = spec.get("terminationGracePeriodSeconds", 30)
    if window >= grace:
        problems.append(f"{name}: server.drain_window ({window:g}s) must be shorter than server.shutdown_grace ({grace:g}s)")
    if budget < pre_stop + grace + MARGIN_SECONDS:
        problems.append(
            f"{name}: terminationGracePeriodSeconds {budget} is less than preStop {pre_stop}s + "
            f"server.shutdown_grace {grace:g}s + {MARGIN_SECONDS}s margin: the kubelet would kill "
            "the node before its connections drained"
        )
    expected = {
        "startupProbe": "/health/live",
        "livenessProbe": "/health/live",
        "readinessProbe": "/health/ready",
    }
    for probe, path in expected.items():
        got = (container.get(probe) or {}).get("httpGet") or {}
        if got.get("path") != path:
            problems.append(f"{name}: {probe} must GET {path}")
        elif got.get("port") != "metrics":
            problems.append(f"{name}: {probe} must use the metrics port (outside the public port's admission limits)")
        elif container[probe].get("timeoutSeconds", 1) > 1:
            problems.append(f"{name}: {probe} timeoutSeconds must be 1: the node answers at once")
    if "CHAT__SERVER__METRICS_BIND" not in settings:
        problems.append(f"{name}: server.metrics_bind is not set: /metrics would be on the public port")
    return problems
