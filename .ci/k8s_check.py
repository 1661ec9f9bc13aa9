"""Renders deploy/kubernetes/{base,production} and validates every object.

The renderer covers the kustomize features the manifests use (resources,
namespace, images, replicas, labels); anything else in a kustomization.yaml
is an error here, so the check never silently skips what it cannot read.
"""
import copy
import pathlib
import sys

import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
KNOWN = {"apiVersion", "kind", "resources", "namespace", "images", "replicas", "labels"}
VERSION = "1.37.0"
failures = []


def containers(doc):
    spec = doc.get("spec", {})
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template", {})
    return template.get("spec", {}).get("containers", []), template


def render(directory):
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(k) - KNOWN
    if unknown:
        failures.append(f"{directory}: kustomization fields this check cannot render: {sorted(unknown)}")
    docs = []
    for entry in k.get("resources", []):
        path = directory / entry
        if path.is_dir():
            docs.extend(render(path))
        else:
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    docs = copy.deepcopy(docs)
    for doc in docs:
        if "namespace" in k and doc["kind"] != "Namespace":
            doc["metadata"]["namespace"] = k["namespace"]
        for label in k.get("labels", []):
            doc["metadata"].setdefault("labels", {}).update(label["pairs"])
        for c in containers(doc)[0]:
            for image in k.get("images", []):
                name, _, tag = c["image"].partition(":")
                if name == image["name"]:
                    c["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag or 'latest')}"
        for r in k.get("replicas", []):
            if doc["kind"] == "Deployment" and doc["metadata"]["name"] == r["name"]:
                doc["spec"]["replicas"] = r["count"]
    return docs


def rules(name, docs):
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    pdbs = {tuple(sorted(p["spec"]["selector"]["matchLabels"].items())) for p in by_kind.get("PodDisruptionBudget", [])}
    for d in docs:
        cs, template = containers(d)
        if not cs:
            continue
        where = f"{name}: {d['kind']}/{d['metadata']['name']}"
        pod = template["spec"]
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            failures.append(f"{where}: runAsNonRoot is not set")
        for c in cs:
            sc = c.get("securityContext", {})
            if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation", True):
                failures.append(f"{where}: container {c['name']} needs a read-only root and no privilege escalation")
            if not c.get("resources", {}).get("requests") or not c.get("resources", {}).get("limits", {}).get("memory"):
                failures.append(f"{where}: container {c['name']} has no requests or memory limit")
            if ":" not in c["image"] or c["image"].endswith(":latest"):
                failures.append(f"{where}: image {c['image']} is not pinned")
            for env in c.get("env", []):
                secretish = any(w in env["name"] for w in ("SECRET", "PASSWORD", "DATABASE_URL", "TOKEN"))
                if secretish and "value" in env:
                    failures.append(f"{where}: {env['name']} is inlined; reference a Secret")
            if d["kind"] == "Deployment":
                for probe in ("livenessProbe", "readinessProbe"):
                    port = c.get(probe, {}).get("httpGet", {}).get("port")
                    if port != "operations":
                        failures.append(f"{where}: {probe} is not on the operations port")
        if d["kind"] == "Deployment":
            labels = tuple(sorted(d["spec"]["selector"]["matchLabels"].items()))
            if labels not in pdbs:
                failures.append(f"{where}: no PodDisruptionBudget selects it")
    for cm in by_kind.get("ConfigMap", []):
        for key in cm.get("data", {}):
            if any(w in key for w in ("SECRET", "PASSWORD", "DATABASE_URL")):
                failures.append(f"{name}: ConfigMap {cm['metadata']['name']} holds {key}; use a Secret")
    if not by_kind.get("NetworkPolicy"):
        failures.append(f"{name}: no NetworkPolicy")


def main():
    for overlay in ("base", "production"):
        docs = render(ROOT / overlay)
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, VERSION, strict=True)
            except Exception as e:  # ValidationError, InvalidSchemaError, VersionNotSupportedError
                failures.append(f"{overlay}: {doc['kind']}/{doc['metadata'].get('name')}: {getattr(e, 'message', e)}")
        rules(overlay, docs)
        print(f"ok: {overlay}: {len(docs)} objects rendered and validated against Kubernetes {VERSION}")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
