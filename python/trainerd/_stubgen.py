"""Generates the gRPC and protobuf modules of trainerd's API from proto/ (run when the
package is built: setup.py, and the build's python_client target).

The modules protoc writes import each other as `trainer.v1...`; they are rewritten to
`trainerd._proto.trainer.v1...` so that the package needs no entry on sys.path of its
own.
"""
import os
import re
import shutil
import subprocess
import sys

PROTOS = ["trainer/v1/job_spec.proto", "trainer/v1/hf_arguments.proto", "trainer/v1/job_service.proto", "trainer/v1/sweep_service.proto"]


def generate(proto_dir, out_dir, protoc="protoc", plugin=None):
    """Writes the modules of PROTOS (from `proto_dir`) into `out_dir`, a package."""
    plugin = plugin or shutil.which("grpc_python_plugin") or "/usr/bin/grpc_python_plugin"
    if not os.path.exists(plugin):
        raise RuntimeError("grpc_python_plugin is missing: apt-get install protobuf-compiler-grpc")
    os.makedirs(out_dir, exist_ok=True)
    subprocess.run([protoc, f"--plugin=protoc-gen-grpc_python={plugin}", f"-I{proto_dir}",
                    f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"] + PROTOS, check=True)
    for root, _, files in os.walk(out_dir):
        package_init = os.path.join(root, "__init__.py")
        if not os.path.exists(package_init):
            open(package_init, "w").close()
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            text = open(path, encoding="utf-8").read()
            fixed = re.sub(r"^from trainer\.v1 import", "from trainerd._proto.trainer.v1 import", text, flags=re.M)
            if fixed != text:
                open(path, "w", encoding="utf-8").write(fixed)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: _stubgen.py PROTO_DIR OUT_DIR")
    generate(sys.argv[1], sys.argv[2])
