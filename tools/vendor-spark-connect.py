#!/usr/bin/env python3
"""Writes proto/spark-connect-<version>.fds.bin: Spark Connect's protocol as one protobuf
FileDescriptorSet, taken from the descriptors PySpark's generated modules carry.

PySpark ships no .proto text, but every generated `*_pb2` module holds its file's serialized
FileDescriptorProto. Collecting them (dependencies first) gives prost/tonic exactly the protocol
the client speaks, with no protoc and no copy of Spark's sources.

    python -m venv /tmp/v && /tmp/v/bin/pip install pyspark-client==4.0.1
    /tmp/v/bin/python tools/vendor-spark-connect.py

connect/build.rs reads the file; run this again only to move to another Spark version.
"""
import importlib
import os
import sys

from google.protobuf import descriptor_pb2

# Dependencies before dependants; example_plugins is a sample, not part of the protocol.
MODULES = [
    "google.protobuf.any_pb2",
    "pyspark.sql.connect.proto.common_pb2",
    "pyspark.sql.connect.proto.types_pb2",
    "pyspark.sql.connect.proto.expressions_pb2",
    "pyspark.sql.connect.proto.catalog_pb2",
    "pyspark.sql.connect.proto.ml_common_pb2",
    "pyspark.sql.connect.proto.relations_pb2",
    "pyspark.sql.connect.proto.ml_pb2",
    "pyspark.sql.connect.proto.commands_pb2",
    "pyspark.sql.connect.proto.base_pb2",
]


def main() -> int:
    import pyspark

    version = pyspark.__version__
    fds = descriptor_pb2.FileDescriptorSet()
    for name in MODULES:
        module = importlib.import_module(name)
        proto = descriptor_pb2.FileDescriptorProto()
        proto.ParseFromString(module.DESCRIPTOR.serialized_pb)
        fds.file.append(proto)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.join(root, "proto", f"spark-connect-{version}.fds.bin")
    with open(out, "wb") as f:
        f.write(fds.SerializeToString(deterministic=True))
    print(f"{out}: {len(fds.file)} files from pyspark {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
