"""Offline checks of the Kubernetes packaging (k8s/) and the monitoring objects
(deploy/monitoring/), run by scripts/test:

1. every overlay in k8s/overlays renders (render.py; and, where kustomize or kubectl is
   installed, with it too, which must agree);
2. every rendered object, every example in k8s/examples and every object in
   deploy/monitoring validates against the Kubernetes schemas (kubernetes-validate,
   strict) of the oldest and newest versions we support, or, for custom resources, against
   the schemas in schemas/;
3. every pod passes Pod Security "restricted" (restricted.py);
4. the project's own rules (rules.py): no replicas beside an HPA, the shutdown budget,
   the probes.

Usage: python3 scripts/k8s/check.py [REPO_ROOT]
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import jsonschema
import kubernetes_validate
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import render  # noqa: E402
import restricted  # noqa: E402
import rules  # noqa: E402

# The oldest Kubernetes the manifests support (the preStop sleep action is on by default
# from 1.30) and the newest kubernetes-validate knows.
VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())


def load_schemas():
    schemas = {}
    for path in glob.glob(os.path.join(HERE, "schemas", "*.yaml")):
        group_version_kind = os.path.basename(path)[: -len(".yaml")]
        with open(path, encoding="utf-8") as f:
            schemas[group_version_kind] = yaml.safe_load(f)
    return schemas


def schema_key(obj):
    return obj.get("apiVersion", "").replace("/", "_") + "_" + obj.get("kind", "")


def validate(obj, schemas, where):
    """Problems of `obj` against its schema; an object with no schema is a problem too."""
    name = f"{where}: {obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
    own = schemas.get(schema_key(obj))
    if own is not None:
        validator = jsonschema.Draft202012Validator(own)
        return [f"{name}: {'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(obj)]
    problems = []
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            return [f"{name}: no schema for {obj.get('apiVersion')} {obj.get('kind')} (add one to scripts/k8s/schemas)"]
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{name}: Kubernetes {version}: {'.'.join(map(str, e.path))}: {e.message}")
    return problems


def external_renderer():
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def keyed(objects):
    return {(o.get("kind"), o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}


def compare_with_kustomize(directory, objects):
    command = external_renderer()
    if command is None:
        return [], None
    try:
        out = subprocess.run(command + [directory], check=True, capture_output=True, text=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        stderr = getattr(e, "stderr", "") or ""
        return [f"{directory}: {' '.join(command)} failed: {e} {stderr.strip()}"], command
    theirs = keyed(d for d in yaml.safe_load_all(out.stdout) if d)
    ours = keyed(objects)
    problems = []
    for key in sorted(set(ours) | set(theirs), key=str):
        if key not in ours:
            problems.append(f"{directory}: {' '.join(command)} renders {key}, render.py does not")
        elif key not in theirs:
            problems.append(f"{directory}: render.py renders {key}, {' '.join(command)} does not")
        elif ours[key] != theirs[key]:
            problems.append(
                f"{directory}: {key} differs between render.py and {' '.join(command)}:\n"
                f"  render.py: {json.dumps(ours[key], sort_keys=True)}\n"
                f"  {command[0]}: {json.dumps(theirs[key], sort_keys=True)}"
            )
    return problems, command


def slug(heading):
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def monitoring_problems(root):
    """The alert rules and the PrometheusRule agree, every alert links to a section of
    docs/operations.md that exists, and the dashboard's panels all query something."""
    base = os.path.join(root, "deploy", "monitoring")
    if not os.path.isdir(base):
        return []
    problems = []
    with open(os.path.join(base, "rules", "chat-gateway.rules.yaml"), encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    (operator,) = render.load_yaml_documents(os.path.join(base, "prometheusrule.yaml"))
    if operator["spec"] != rules:
        problems.append("deploy/monitoring/prometheusrule.yaml: spec differs from rules/chat-gateway.rules.yaml")
    with open(os.path.join(root, "docs", "operations.md"), encoding="utf-8") as f:
        anchors = {slug(line.lstrip("#")) for line in f if line.startswith("#")}
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            url = rule.get("annotations", {}).get("runbook_url", "")
            anchor = url.partition("docs/operations.md#")[2]
            if not anchor:
                problems.append(f"alert {rule['alert']}: no runbook_url into docs/operations.md")
            elif anchor not in anchors:
                problems.append(f"alert {rule['alert']}: docs/operations.md has no section #{anchor}")
    with open(os.path.join(base, "grafana", "chat-gateway.json"), encoding="utf-8") as f:
        dashboard = json.load(f)
    for panel in dashboard.get("panels", []):
        exprs = [t.get("expr", "") for t in panel.get("targets", [])]
        if not exprs or not all(exprs):
            problems.append(f"dashboard panel {panel.get('title')!r}: a target without a query")
    return problems


def main(root):
    schemas = load_schemas()
    problems = []
    overlays = sorted(glob.glob(os.path.join(root, "k8s", "overlays", "*")))
    if not overlays:
        problems.append("no overlays in k8s/overlays")
    counted = 0
    for overlay in overlays:
        where = os.path.relpath(overlay, root)
        try:
            objects = render.render(overlay)
        except (render.RenderError, OSError, yaml.YAMLError) as e:
            problems.append(f"{where}: does not render: {e}")
            continue
        found, command = compare_with_kustomize(overlay, objects)
        problems.extend(found)
        for obj in objects:
            problems.extend(validate(obj, schemas, where))
            problems.extend(restricted.check(obj))
        problems.extend(rules.check(objects, where))
        counted += len(objects)
        also = f", and with {' '.join(command)}" if command else ""
        print(f"k8s-check: {where}: {len(objects)} objects rendered{also}")
    for pattern in ("k8s/examples/*.yaml", "deploy/monitoring/*.yaml"):
        for path in sorted(glob.glob(os.path.join(root, pattern))):
            where = os.path.relpath(path, root)
            for obj in render.load_yaml_documents(path):
                problems.extend(validate(obj, schemas, where))
                problems.extend(restricted.check(obj))
                counted += 1
    problems.extend(monitoring_problems(root))
    for p in problems:
        print(f"k8s-check: {p}", file=sys.stderr)
    print(f"k8s-check: {counted} objects checked against Kubernetes {' and '.join(VERSIONS)}, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..")))
