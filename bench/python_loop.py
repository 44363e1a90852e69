"""The raw training loop of trainer_bench, in Python with Debian's python3-torch.

Prints samples/s. Same model shapes, data, batch size, optimizer and thread count as
the C++ raw loop, so the ratio compares the languages' per-step overhead only.
"""
import argparse, gzip, time
import numpy as np
import torch

p = argparse.ArgumentParser()
p.add_argument("--model", default="mlp")
p.add_argument("--batch", type=int, default=64)
p.add_argument("--steps", type=int, default=800)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(42)
d = "/usr/share/datasets/fashion-mnist/"
with gzip.open(d + "train-images-idx3-ubyte.gz") as f:
    x = np.frombuffer(f.read()[16:], dtype=np.uint8).reshape(-1, 1, 28, 28)
with gzip.open(d + "train-labels-idx1-ubyte.gz") as f:
    y = torch.from_numpy(np.frombuffer(f.read()[8:], dtype=np.uint8).astype(np.int64))
x = (torch.from_numpy(x.copy()).float() / 255 - 0.2860) / 0.3530
nn = torch.nn
if a.model == "mlp":
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
else:
    model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0)
perm = torch.randperm(x.shape[0])
start = time.perf_counter()
for step in range(a.steps):
    o = (step * a.batch) % (x.shape[0] - a.batch)
    idx = perm[o:o + a.batch]
    loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
print(a.steps * a.batch / (time.perf_counter() - start))
