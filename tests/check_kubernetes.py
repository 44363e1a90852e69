#!/usr/bin/python3
"""Checks deploy/kubernetes offline (no API server): what can be checked without one.

    check_kubernetes.py DEPLOY_DIR

1. Every object deserialises strictly into the Kubernetes API model of its kind
   (python3-kubernetes): each field must be one the model has, with a value of its type.
   That client (22.6) predates gRPC probes (Kubernetes 1.24); a probe's `grpc` field is
   checked here by hand (port an integer, service a string).
2. What the deployment needs: an image tag that is not :latest, runAsNonRoot with a
   numeric runAsUser equal to the Dockerfiles' USER, fsGroup for the volume, a headless
   Service named by the StatefulSet's serviceName selecting its pods, the Service ports
   naming container ports, the GPU variant requesting nvidia.com/gpu and passing --gpus.
Prints what it checked; exits 1 with every problem found.
"""
import os
import re
import sys

import yaml
from kubernetes import client

KINDS = {("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim", ("v1", "Service"): "V1Service",
         ("apps/v1", "StatefulSet"): "V1StatefulSet"}
problems = []


def check_model(value, type_name, path):
    """Strict deserialisation: unknown fields and wrong types are problems."""
    if value is None:
        return
    if type_name.startswith("list["):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list")
            return
        for i, item in enumerate(value):
            check_model(item, type_name[5:-1], f"{path}[{i}]")
        return
    if type_name.startswith("dict("):
        inner = type_name[type_name.index(",") + 1:-1].strip()
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping")
            return
        for k, v in value.items():
            check_model(v, inner, f"{path}.{k}")
        return
    primitives = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object,
                  "datetime": str, "date": str}
    if type_name in primitives:
        if type_name == "str" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return  # quantities ("4", 4) and int-or-string fields take either
        if type_name == "object" or isinstance(value, primitives[type_name]):
            return
        problems.append(f"{path}: {value!r} is not a {type_name}")
        return
    model = getattr(client, type_name)
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a {type_name} mapping")
        return
    by_json = {json: attr for attr, json in model.attribute_map.items()}
    for key, item in value.items():
        if key == "grpc" and type_name == "V1Probe":  # Kubernetes 1.24+, newer than the client
            if not isinstance(item, dict) or not isinstance(item.get("port"), int) or \
                    set(item) - {"port", "service"} or not isinstance(item.get("service", ""), str):
                problems.append(f"{path}.grpc: needs an integer port and an optional service name")
            continue
        if key not in by_json:
            problems.append(f"{path}.{key}: not a field of {type_name}")
            continue
        check_model(item, model.openapi_types[by_json[key]], f"{path}.{key}")


def dockerfile_users(deploy):
    users = {}
    for name in os.listdir(deploy):
        if name.startswith("Dockerfile"):
            found = re.findall(r"^USER\s+(\d+)", open(os.path.join(deploy, name)).read(), re.M)
            users[name] = found[-1] if found else None
    return users


def check_statefulset(obj, where, services, users):
    spec = obj["spec"]
    pod = spec["template"]["spec"]
    security = pod.get("securityContext", {})
    if security.get("runAsNonRoot") is not True or not isinstance(security.get("runAsUser"), int):
        problems.append(f"{where}: the pod needs runAsNonRoot with a numeric runAsUser")
    if "fsGroup" not in security:
        problems.append(f"{where}: the pod needs fsGroup (the volume's group)")
    for name, user in users.items():
        if user != str(security.get("runAsUser")):
            problems.append(f"{where}: runAsUser {security.get('runAsUser')} differs from {name}'s USER {user}")
    headless = services.get(spec.get("serviceName"))
    if headless is None or headless["spec"].get("clusterIP") != "None":
        problems.append(f"{where}: serviceName must name a headless Service (clusterIP: None)")
    elif headless["spec"]["selector"] != spec["template"]["metadata"]["labels"]:
        problems.append(f"{where}: the headless Service does not select the pods")
    container_ports = set()
    for c in pod["containers"]:
        image = c["image"]
        if ":" not in image or image.endswith(":latest"):
            problems.append(f"{where}: image {image} needs a version tag, not :latest")
        container_ports |= {p["name"] for p in c.get("ports", [])}
        gpus = c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
        if "gpu" in os.path.basename(where) and (not gpus or "--gpus" not in c.get("args", [])):
            problems.append(f"{where}: the GPU variant must request nvidia.com/gpu and pass --gpus")
    for svc in services.values():
        for port in svc["spec"]["ports"]:
            if port.get("targetPort") not in container_ports and isinstance(port.get("targetPort"), str):
                problems.append(f"{where}: Service {svc['metadata']['name']} targets no container port {port['targetPort']}")


def main():
    deploy = sys.argv[1]
    folder = os.path.join(deploy, "kubernetes")
    users = dockerfile_users(deploy)
    documents = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".yaml"):
            for obj in yaml.safe_load_all(open(os.path.join(folder, name))):
                if obj:
                    documents.append((name, obj))
    services = {o["metadata"]["name"]: o for _, o in documents if o["kind"] == "Service"}
    for name, obj in documents:
        kind = KINDS.get((obj.get("apiVersion"), obj.get("kind")))
        where = f"{name}: {obj.get('kind')} {obj.get('metadata', {}).get('name')}"
        if kind is None:
            problems.append(f"{where}: kind not checked here")
            continue
        check_model(obj, kind, where)
        if obj["kind"] == "StatefulSet":
            check_statefulset(obj, os.path.join(folder, name), services, users)
        print(f"checked {where} as {kind}")
    if problems:
        print("\n".join(problems))
        sys.exit(1)


if __name__ == "__main__":
    main()
