#!/usr/bin/python3
"""An independent reader of TensorBoard event files, written from the public format.

    tensorboard_reader.py FOLDER

Reads every events.out.tfevents.* file in FOLDER (in name order), checks each record's
framing (uint64 length, masked CRC-32C of it, the data, masked CRC-32C of the data),
decodes the Event and Summary protobufs by hand (wire format: varints, fixed64,
fixed32, length-delimited), and prints JSON: {"file_versions": [...], "scalars":
{tag: [[step, value], ...]}}. Exits 1 on any malformed byte. Uses no trainerd code and
no protobuf or TensorFlow library.
"""
import json
import os
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def fields(buf):
    """Yields (field number, wire type, value) of a protobuf message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            sys.exit(f"wire type {wire} not expected")
        yield number, wire, value


def varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def read_records(path):
    with open(path, "rb") as f:
        data = f.read()
    i = 0
    while i < len(data):
        header = data[i:i + 8]
        if len(header) < 8 or masked(crc32c(header)) != struct.unpack("<I", data[i + 8:i + 12])[0]:
            sys.exit(f"{path}: bad length checksum at byte {i}")
        (n,) = struct.unpack("<Q", header)
        body = data[i + 12:i + 12 + n]
        if len(body) < n or masked(crc32c(body)) != struct.unpack("<I", data[i + 12 + n:i + 16 + n])[0]:
            sys.exit(f"{path}: bad data checksum at byte {i}")
        yield body
        i += 16 + n


def main():
    folder = sys.argv[1]
    out = {"file_versions": [], "scalars": {}}
    for name in sorted(os.listdir(folder)):
        if not name.startswith("events.out.tfevents."):
            continue
        for record in read_records(os.path.join(folder, name)):
            step = 0
            summary = None
            for number, wire, value in fields(record):
                if number == 2 and wire == 0:
                    step = value
                elif number == 3 and wire == 2:
                    out["file_versions"].append(value.decode())
                elif number == 5 and wire == 2:
                    summary = value
            if summary is None:
                continue
            for number, wire, value in fields(summary):
                if number != 1 or wire != 2:
                    continue
                tag, scalar = None, None
                for n2, w2, v2 in fields(value):
                    if n2 == 1 and w2 == 2:
                        tag = v2.decode()
                    elif n2 == 2 and w2 == 5:
                        (scalar,) = struct.unpack("<f", v2)
                out["scalars"].setdefault(tag, []).append([step, scalar])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
