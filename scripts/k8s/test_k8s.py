"""Tests of the renderer and the checks: each rule must catch the mistake it is there for.
Run: python3 -m unittest discover -s scripts/k8s"""

import copy
import os
import tempfile
import unittest

import check
import render
import restricted
import rules

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
PRODUCTION = os.path.join(ROOT, "k8s", "overlays", "production")


def rendered():
    return render.render(PRODUCTION)


def find(objects, kind, name="chat-gateway"):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def gateway(objects):
    return find(objects, "Deployment")["spec"]["template"]["spec"]


class Render(unittest.TestCase):
    def write(self, files):
        directory = tempfile.mkdtemp()
        for name, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(directory, name)), exist_ok=True)
            with open(os.path.join(directory, name), "w") as f:
                f.write(text)
        return directory

    def test_patches_merge_lists_by_key_delete_nulls_and_set_namespace_and_images(self):
        d = self.write({
            "base/kustomization.yaml": "resources: [d.yaml, cm.yaml]\n",
            "base/d.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers:\n        - {name: a, image: 'reg:5000/x:1', env: [{name: A, value: '1'}]}\n        - {name: b, image: other}\n",
            "base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {K: v, L: w}\n",
            "o/kustomization.yaml": "namespace: n\nresources: [../base]\npatches: [{path: p.yaml}]\nimages: [{name: 'reg:5000/x', newTag: '2'}]\n",
            "o/p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers:\n        - {name: a, env: [{name: B, value: '2'}, {name: A, value: '3'}]}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {K: null}\n",
        })
        objects = render.render(os.path.join(d, "o"))
        deployment = find(objects, "Deployment", "x")
        containers = deployment["spec"]["template"]["spec"]["containers"]
        self.assertEqual([c["name"] for c in containers], ["a", "b"])
        self.assertEqual(containers[0]["env"], [{"name": "B", "value": "2"}, {"name": "A", "value": "3"}])
        self.assertEqual(containers[0]["image"], "reg:5000/x:2")
        self.assertEqual(containers[1]["image"], "other")
        self.assertEqual(find(objects, "ConfigMap", "c")["data"], {"L": "w"})
        self.assertTrue(all(o["metadata"]["namespace"] == "n" for o in objects))

    def test_refuses_what_it_does_not_support_and_patches_without_a_target(self):
        d = self.write({"kustomization.yaml": "resources: []\ncommonLabels: {a: b}\n"})
        with self.assertRaisesRegex(render.RenderError, "commonLabels"):
            render.render(d)
        d = self.write({
            "kustomization.yaml": "resources: []\npatches: [{path: p.yaml}]\n",
            "p.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: missing}\n",
        })
        with self.assertRaisesRegex(render.RenderError, "no object"):
            render.render(d)


class Restricted(unittest.TestCase):
    def problems_after(self, change):
        objects = rendered()
        change(gateway(objects))
        return restricted.check(find(objects, "Deployment"))

    def test_the_gateway_passes(self):
        self.assertEqual(restricted.check(find(rendered(), "Deployment")), [])

    def test_each_rule_catches_its_mistake(self):
        def container(spec):
            return spec["containers"][0]["securityContext"]

        cases = {
            "allowPrivilegeEscalation": lambda s: container(s).pop("allowPrivilegeEscalation"),
            "runAsNonRoot": lambda s: (s["securityContext"].pop("runAsNonRoot"), container(s).pop("runAsNonRoot")),
            "runAsUser must not be 0": lambda s: container(s).update(runAsUser=0),
            "seccompProfile": lambda s: s["securityContext"].pop("seccompProfile"),
            "must not be Unconfined": lambda s: container(s).update(seccompProfile={"type": "Unconfined"}),
            "drop must include ALL": lambda s: container(s).update(capabilities={"drop": ["NET_RAW"]}),
            "capabilities.add": lambda s: container(s)["capabilities"].update(add=["SYS_ADMIN"]),
            "privileged": lambda s: container(s).update(privileged=True),
            "hostNetwork": lambda s: s.update(hostNetwork=True),
            "hostPath": lambda s: s.setdefault("volumes", []).append({"name": "h", "hostPath": {"path": "/"}}),
            "hostPort": lambda s: s["containers"][0]["ports"][0].update(hostPort=8080),
            "sysctl": lambda s: s["securityContext"].update(sysctls=[{"name": "net.core.somaxconn", "value": "1"}]),
            "readOnlyRootFilesystem": lambda s: container(s).pop("readOnlyRootFilesystem"),
            "container migrate": lambda s: s["initContainers"][0]["securityContext"].pop("capabilities"),
        }
        for expected, change in cases.items():
            with self.subTest(expected):
                problems = self.problems_after(change)
                self.assertTrue(any(expected.split(" (")[0].split(":")[0] in p for p in problems), problems)


class Rules(unittest.TestCase):
    def test_the_overlays_pass(self):
        self.assertEqual(rules.check(rendered(), "production"), [])

    def test_replicas_beside_an_hpa(self):
        objects = rendered()
        find(objects, "Deployment")["spec"]["replicas"] = 3
        self.assertIn("owns them", " ".join(rules.check(objects, "p")))

    def test_the_shutdown_budget(self):
        objects = rendered()
        gateway(objects)["terminationGracePeriodSeconds"] = 25
        self.assertIn("kubelet would kill", " ".join(rules.check(objects, "p")))
        objects = rendered()
        find(objects, "ConfigMap")["data"]["CHAT__SERVER__DRAIN_WINDOW"] = "20s"
        self.assertIn("must be shorter", " ".join(rules.check(objects, "p")))

    def test_probes_and_sizes(self):
        objects = rendered()
        gateway(objects)["containers"][0]["readinessProbe"]["httpGet"]["port"] = "http"
        gateway(objects)["containers"][0]["resources"].pop("limits")
        found = " ".join(rules.check(objects, "p"))
        self.assertIn("metrics port", found)
        self.assertIn("memory limit", found)

    def test_durations(self):
        self.assertEqual(rules.seconds("20s"), 20)
        self.assertEqual(rules.seconds("1m"), 60)
        self.assertEqual(rules.seconds("1500ms"), 1.5)
        with self.assertRaises(ValueError):
            rules.seconds("soon")


class Schemas(unittest.TestCase):
    def test_unknown_and_mistyped_fields_are_problems(self):
        schemas = check.load_schemas()
        objects = rendered()
        deployment = copy.deepcopy(find(objects, "Deployment"))
        self.assertEqual(check.validate(deployment, schemas, "p"), [])
        deployment["spec"]["template"]["spec"]["containers"][0]["livenessProb"] = {}
        self.assertTrue(check.validate(deployment, schemas, "p"))
        route = copy.deepcopy(find(objects, "HTTPRoute"))
        self.assertEqual(check.validate(route, schemas, "p"), [])
        route["spec"]["rules"][0]["timeouts"]["request"] = "forever"
        self.assertTrue(check.validate(route, schemas, "p"))
        self.assertIn("no schema", " ".join(check.validate({"apiVersion": "x/v1", "kind": "Y", "metadata": {"name": "z"}}, schemas, "p")))


class Monitoring(unittest.TestCase):
    def copy(self):
        import shutil
        root = tempfile.mkdtemp()
        shutil.copytree(os.path.join(ROOT, "deploy", "monitoring"), os.path.join(root, "deploy", "monitoring"))
        os.makedirs(os.path.join(root, "docs"))
        shutil.copy(os.path.join(ROOT, "docs", "operations.md"), os.path.join(root, "docs"))
        return root

    def test_the_shipped_files_agree(self):
        self.assertEqual(check.monitoring_problems(ROOT), [])

    def test_a_runbook_section_missing_and_a_drifted_copy_are_problems(self):
        root = self.copy()
        docs = os.path.join(root, "docs", "operations.md")
        with open(docs) as f:
            text = f.read()
        with open(docs, "w") as f:
            f.write(text.replace("### ChatGatewayFdNearLimit", "### Descriptors"))
        rules = os.path.join(root, "deploy", "monitoring", "rules", "chat-gateway.rules.yaml")
        with open(rules) as f:
            text = f.read()
        with open(rules, "w") as f:
            f.write(text.replace("> 0.85", "> 0.9", 1))
        found = " ".join(check.monitoring_problems(root))
        self.assertIn("no section #chatgatewayfdnearlimit", found)
        self.assertIn("spec differs", found)


if __name__ == "__main__":
    unittest.main()
