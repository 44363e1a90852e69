#!/usr/bin/python3
"""A Python reference for trainerd's pixel normalisation, independent of trainerd.

    normalize_reference.py IMAGES_IDX_GZ COUNT MEAN STD

Reads the first COUNT images of a gzipped IDX file (as Fashion-MNIST ships them) and
prints, one per line, the float32 bit pattern (8 hex digits) of every normalised pixel,
then of the pixel values 0..255: x = (x / 255 - mean) / std, as torchvision's ToTensor
(img.float().div(255)) and Normalize (tensor.sub_(mean).div_(std)) compute it.

Every step is IEEE float32 arithmetic, emulated here by rounding each exact double
result to float32 (double rounding is harmless for +, -, *, / from 53 to 24 bits). Where
Python's torch is installed, the script also computes the same with torch's own kernels
and fails if the two disagree.
"""
import gzip
import struct
import sys


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def read_pixels(path, count):
    with gzip.open(path, "rb") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != 2051:
            sys.exit(f"{path}: not an IDX image file")
        count = min(count, n)
        return list(f.read(count * rows * cols))


def main():
    path, count, mean, std = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    pixels = read_pixels(path, count) + list(range(256))
    mean32, std32 = f32(mean), f32(std)
    out = [f32(f32(f32(p / 255.0) - mean32) / std32) for p in pixels]
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        img = torch.tensor(pixels, dtype=torch.uint8)
        x = img.float().div(255)
        x.sub_(torch.tensor([mean], dtype=torch.float32)).div_(torch.tensor([std], dtype=torch.float32))
        if x.tolist() != out:
            sys.exit("torch's ToTensor + Normalize disagree with float32 arithmetic")
    sys.stdout.write("".join(f"{bits(v):08x}\n" for v in out))


if __name__ == "__main__":
    main()
