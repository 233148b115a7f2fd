"""A small kustomize: renders a kustomization directory into a list of objects.

It supports exactly what k8s/ uses (resources, namespace, patches by file as strategic
merge patches, images) and refuses anything else by name, so an overlay cannot silently
render differently here than with kustomize. Where `kustomize` or `kubectl` is installed,
check.py renders every overlay with it too and fails when the two disagree.
"""

import copy
import os

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "patches", "images"}

# Kinds that live outside namespaces (kustomize leaves their namespace alone).
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass", "GatewayClass",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService",
}

# apiVersions whose objects kustomize patches with strategic-merge semantics; other kinds
# (custom resources) get a JSON merge patch, where lists are replaced whole.
BUILT_IN = {"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1"}

# The merge key of each list field that Kubernetes merges by key rather than replaces.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "ports": ("containerPort", "port"),
}

POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class RenderError(Exception):
    """A kustomization this renderer cannot render, or a patch without a target."""


def load_yaml_documents(path):
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def render(directory):
    """The objects of the kustomization in `directory`, transformed by it."""
    path = os.path.join(directory, "kustomization.yaml")
    if not os.path.isfile(path):
        raise RenderError(f"{directory}: no kustomization.yaml")
    (kustomization,) = load_yaml_documents(path)
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise RenderError(
            f"{path}: unsupported keys {sorted(unknown)} (scripts/k8s/render.py supports "
            f"{sorted(SUPPORTED)})"
        )
    objects = []
    for resource in kustomization.get("resources", []):
        target = os.path.normpath(os.path.join(directory, resource))
        if os.path.isdir(target):
            objects.extend(render(target))
        elif os.path.isfile(target):
            objects.extend(load_yaml_documents(target))
        else:
            raise RenderError(f"{path}: resource {resource} does not exist")
    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise RenderError(f"{path}: only patches given by `path` are supported: {patch}")
        for doc in load_yaml_documents(os.path.join(directory, patch["path"])):
            apply_patch(objects, doc, f"{directory}/{patch['path']}")
    namespace = kustomization.get("namespace")
    if namespace:
        for obj in objects:
            if obj.get("kind") not in CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = namespace
    for image in kustomization.get("images", []):
        set_image(objects, image)
    return objects


def identity(obj):
    meta = obj.get("metadata") or {}
    return (obj.get("kind"), meta.get("name"))


def apply_patch(objects, patch, where):
    for i, obj in enumerate(objects):
        if identity(obj) == identity(patch):
            strategic = obj.get("apiVersion") in BUILT_IN
            objects[i] = merge(obj, patch, strategic)
            return
    raise RenderError(f"{where}: no object {identity(patch)} to patch")


def merge(base, patch, strategic, field=None):
    """`patch` merged into `base`: maps recursively, None deletes a key, lists of a
    strategic-merge kind by their merge key, other lists replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = merge(out[key], value, strategic, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and strategic and field in MERGE_KEYS:
        return merge_list(base, patch, MERGE_KEYS[field], strategic)
    return copy.deepcopy(patch)


def merge_list(base, patch, keys, strategic):
    keys = keys if isinstance(keys, tuple) else (keys,)
    out = copy.deepcopy(base)
    added = []
    for item in patch:
        key = next((k for k in keys if isinstance(item, dict) and k in item), None)
        if key is None:
            raise RenderError(f"a list item without a merge key {keys}: {item}")
        for i, existing in enumerate(out):
            if isinstance(existing, dict) and existing.get(key) == item[key]:
                out[i] = merge(existing, item, strategic)
                break
        else:
            added.append(copy.deepcopy(item))
    # kustomize puts the items a patch adds before the ones it had.
    return added + out


def containers_of(obj):
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    if obj.get("kind") in POD_TEMPLATE_KINDS | {"CronJob"}:
        spec = spec.get("template", {}).get("spec", {})
    elif obj.get("kind") != "Pod":
        return []
    return spec.get("initContainers", []) + spec.get("containers", [])


def split_image(image):
    """`name[:tag][@digest]` into its three parts (a registry port is part of the name)."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    return name, tag, digest or None


def set_image(objects, image):
    unknown = set(image) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise RenderError(f"images: unsupported keys {sorted(unknown)}")
    for obj in objects:
        for container in containers_of(obj):
            name, tag, digest = split_image(container.get("image", ""))
            if name != image["name"]:
                continue
            name = image.get("newName", name)
            if "newTag" in image:
                tag = str(image["newTag"])
            if "digest" in image:
                digest, tag = image["digest"], None
            container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
