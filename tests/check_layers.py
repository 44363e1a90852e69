#!/usr/bin/env python3
"""Checks that includes point one way: each folder includes only the folders below it
(the table), no file of the torch-free parts includes LibTorch, only storage/ includes
SQLite, and no file includes itself through a cycle. Exit 1 with every violation."""
import os
import re
import sys

# Folder -> the folders it may include (besides itself, the generated trainer/v1 and
# system and third-party headers). Reading down this table follows the design.
ALLOWED = {
    "protocol": set(),
    # The API's JSON form (json_mapping.h) beside the generated messages.
    "proto": set(),
    "common": {"protocol"},
    "spec": {"protocol"},
    "storage": {"protocol", "common"},
    "client": {"protocol", "proto", "common", "spec"},
    "server/launch": {"protocol", "common", "spec"},
    "server/jobs": {"protocol", "common", "spec", "storage", "server/launch"},
    "server/auth": {"protocol", "common", "storage"},
    # Each user's uploaded files (torch-free, no SQLite).
    "server/files": {"protocol", "common", "spec"},
    # Hyperparameter sweeps: the searchers' pure decisions, and the coordinator that runs
    # trials as jobs (issue 32).
    "server/sweeps": {"protocol", "common", "spec", "storage", "server/jobs", "server/launch"},
    "server/api": {"protocol", "common", "storage", "server/auth", "server/files", "server/jobs", "server/launch",
                   "server/sweeps"},
    # The HTTP front door: adapters over server/api's operations, as the gRPC services are.
    "server/http": {"protocol", "proto", "common", "server/api", "server/auth", "server/jobs", "server/sweeps"},
    "server": {"protocol", "common", "spec", "storage", "server/api", "server/auth", "server/files", "server/jobs",
               "server/launch", "server/http", "server/sweeps"},
    # tokenizer.json's pipeline (torch-free).
    "worker/tokenizers": {"protocol", "common", "spec"},
    "worker/data": {"protocol", "common", "spec", "worker/tokenizers"},
    "worker/models": {"protocol", "common", "spec", "worker/data"},
    "worker/optim": {"protocol", "common", "spec"},
    "worker/distributed": {"protocol", "common"},
    # Checkpoint parts gather each rank's state (RNG, optimizer shards) through collectives.
    "worker/checkpoint": {"protocol", "common", "spec", "worker/data", "worker/models", "worker/optim",
                          "worker/distributed"},
    # How ranks share a step (DDP, ZeRO): over the model, with its own checkpoint parts.
    "worker/parallel": {"protocol", "common", "spec", "worker/models", "worker/optim", "worker/distributed",
                        "worker/checkpoint"},
    "worker/trainer": {"protocol", "common", "spec", "worker/data", "worker/models", "worker/optim",
                       "worker/distributed", "worker/checkpoint", "worker/parallel"},
    "worker/app": {"protocol", "common", "spec", "worker/data", "worker/models", "worker/optim",
                   "worker/distributed", "worker/checkpoint", "worker/parallel", "worker/trainer"},
}
TORCH_FREE = {"protocol", "proto", "common", "spec", "storage", "client", "server", "server/launch", "server/jobs",
              "server/auth", "server/api", "server/files", "server/http", "server/sweeps", "worker/tokenizers"}


def folder(path):
    parts = path.split("/")
    if parts[0] in ("worker", "server") and len(parts) > 2:
        return parts[0] + "/" + parts[1]
    return parts[0]


def main(root):
    problems, graph = [], {}
    for top in ("protocol", "proto", "common", "spec", "storage", "client", "server", "worker"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for name in files:
                if not name.endswith((".h", ".cc")):
                    continue
                path = os.path.relpath(os.path.join(dirpath, name), root)
                src = folder(path)
                text = open(os.path.join(root, path), encoding="utf-8").read()
                graph[path] = []
                for inc in re.findall(r'^#include [<"]([^">]+)[">]', text, re.M):
                    if src in TORCH_FREE and inc.startswith(("torch/", "ATen/", "c10/")):
                        problems.append(f"{path}: includes LibTorch ({inc})")
                    if inc == "sqlite3.h" and src != "storage":
                        problems.append(f"{path}: includes SQLite outside storage/")
                    if not os.path.exists(os.path.join(root, inc)):
                        continue  # system, third-party or generated
                    graph[path].append(inc)
                    dst = folder(inc)
                    if dst != src and dst not in ALLOWED.get(src, set()):
                        problems.append(f"{path}: includes {inc} ({src} may not depend on {dst})")
    # Include cycles, file by file.
    state = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                problems.append("include cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    for p in problems:
        print(p)
    print(f"{len(graph)} files checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
