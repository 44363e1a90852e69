"""The trainerd Python client (importable as `trainerd`).

Installs offline with Debian's Python packages only (python3-grpcio, python3-protobuf,
setuptools):

    pip install --no-build-isolation --no-index ./python

The gRPC stubs are generated from ../proto (or $TRAINERD_PROTO_DIR) when the package
is built, by protoc with Debian's grpc_python_plugin: they are never checked in.
"""
import os

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildWithStubs(build_py):
    """build_py, then the stubs generated into the built package."""

    def run(self):
        super().run()
        import importlib.util

        spec = importlib.util.spec_from_file_location("stubgen", os.path.join(HERE, "trainerd", "_stubgen.py"))
        stubgen = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(stubgen)
        proto_dir = os.environ.get("TRAINERD_PROTO_DIR", os.path.join(HERE, "..", "proto"))
        stubgen.generate(proto_dir, os.path.join(self.build_lib, "trainerd", "_proto"))


setup(
    name="trainerd",
    version="0.1.0",
    description="Submit, follow and manage trainerd training jobs from Python",
    packages=["trainerd"],
    python_requires=">=3.9",
    install_requires=["grpcio", "protobuf"],
    cmdclass={"build_py": BuildWithStubs},
)
