#!/usr/bin/env python3
"""Reads the kustomize base and the Dockerfile and prints, as JSON, the facts the Rust test
compares with the binary's defaults. Parsing only: no cluster, no Docker engine.

Usage: manifests.py DEPLOY_DIR
"""
import json
import os
import re
import sys

import yaml

deploy = sys.argv[1]
base = os.path.join(deploy, "kubernetes", "base")


def load(name):
    with open(os.path.join(base, name)) as f:
        return list(yaml.safe_load_all(f))


kustomization = load("kustomization.yaml")[0]
docs = {}
for resource in kustomization["resources"]:
    for doc in load(resource):
        docs[doc["kind"]] = doc

generated = kustomization["configMapGenerator"][0]
config_file = generated["files"][0]
with open(os.path.join(base, config_file)) as f:
    config_toml = f.read()

pod = docs["Deployment"]["spec"]["template"]
containers = {c["name"]: c for c in pod["spec"]["containers"]}
sidecar = containers["s3torrent"]
minio = containers["minio"]
config_volume = next(v for v in pod["spec"]["volumes"] if "configMap" in v)
config_mount = next(m for m in sidecar["volumeMounts"] if m["name"] == config_volume["name"])

with open(os.path.join(deploy, "Dockerfile")) as f:
    dockerfile = f.read()

print(
    json.dumps(
        {
            "config_map_name": generated["name"],
            "config_volume_map": config_volume["configMap"]["name"],
            "config_file": config_file,
            "config_toml": config_toml,
            "config_mount": config_mount["mountPath"],
            "args": sidecar["args"],
            "ports": {p["name"]: p["containerPort"] for p in sidecar["ports"]},
            "liveness": sidecar["livenessProbe"]["httpGet"],
            "readiness": sidecar["readinessProbe"]["httpGet"],
            "env": {
                e["name"]: e["valueFrom"]["secretKeyRef"]
                for e in sidecar.get("env", [])
                if "valueFrom" in e
            },
            "secret_name": docs["Secret"]["metadata"]["name"],
            "secret": docs["Secret"]["stringData"],
            "pod_security": pod["spec"].get("securityContext", {}),
            "container_security": {
                name: c.get("securityContext", {}) for name, c in containers.items()
            },
            "resources": {name: c.get("resources", {}) for name, c in containers.items()},
            "minio_args": minio["args"],
            "annotations": pod["metadata"].get("annotations", {}),
            "grace": pod["spec"].get("terminationGracePeriodSeconds"),
            "service_ports": docs["Service"]["spec"]["ports"],
            "podmonitor": docs["PodMonitor"]["spec"]["podMetricsEndpoints"],
            "docker_expose": re.findall(r"^EXPOSE (.*)$", dockerfile, re.M),
            "docker_user": re.findall(r"^USER (.*)$", dockerfile, re.M),
            "docker_cmd": re.findall(r"^CMD (.*)$", dockerfile, re.M),
            "docker_build": re.findall(r"cargo build[^\n]*", dockerfile),
            "docker_stages": len(re.findall(r"^FROM ", dockerfile, re.M)),
        }
    )
)
