#!/usr/bin/env python3
"""PyTorch's classic MNIST training on a CUDA GPU, set up like `mnist_train --device cuda`.

The net of bench/peer/pytorch_mnist.py (ember's models/mnist_net.hpp): conv1 3x3 32, relu,
conv2 3x3 64, relu, max_pool 2, Dropout2d(0.25), fc1 9216->128, relu, Dropout(0.5), fc2 128->10,
log_softmax; NLL loss; SGD (default lr 0.01, momentum 0.5), batch 64, 5 epochs; 55000 training
images after a random 5000-image validation split; validation and test (batch 1000) evaluated
after every epoch, as ember's mnist_train does.

The data is read from the IDX gzip files in --data (default $EMBER_DATA, else data/mnist, else
../shared/data/mnist) with gzip + numpy, uploaded once, normalised on the GPU to
(x / 255 - 0.5) / 0.5 and kept there; each epoch's order is torch.randperm on the GPU.
FP32 only (TF32 off for matmul and cuDNN).

The time printed last covers the whole run of epochs (training, per-epoch validation and test),
from a synchronised start to a synchronised end. Before it, one step and one evaluation on a
throw-away model initialise cuBLAS / cuDNN and the caching allocator (--no-warmup counts that
in). --graph captures the full-batch training step (forward, backward, SGD) into a CUDA graph
after 3 eager warm-up steps (which count as training steps) and replays it; the short last batch
of an epoch runs eagerly.

Output (the last line parses like ember's mnist_train):
  Epoch 1: train loss 0.2754, validation accuracy 4889/5000 (97.78%), test accuracy 9790/10000 (97.90%), 1.23 s
  ...
  Trained 5 epochs in 6.12 s; final test accuracy 98.91%
"""

import argparse
import gzip
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout2d(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def read_idx(path):
    """An IDX file (gzip or plain) as a numpy array of its shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {arr.size} values for shape {dims}")
    return arr.reshape(dims)


def find_file(folder, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(folder, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{stem}(.gz) not found in {folder}")


def data_dir(arg):
    if arg:
        return arg
    if os.environ.get("EMBER_DATA"):
        return os.environ["EMBER_DATA"]
    for d in ("data/mnist", "../shared/data/mnist"):
        if os.path.isdir(d):
            return d
    return "data/mnist"


def load(folder, split, device):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(find_file(folder, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(find_file(folder, f"{prefix}-labels-idx1-ubyte"))
    x = torch.from_numpy(images.copy()).to(device).float().div_(255.0).sub_(0.5).div_(0.5).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64)).to(device)
    return x, y


@torch.no_grad()
def evaluate(model, x, y, batch):
    model.eval()
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    for i in range(0, x.shape[0], batch):
        out = model(x[i:i + batch])
        loss += F.nll_loss(out, y[i:i + batch], reduction="sum")
        correct += (out.argmax(1) == y[i:i + batch]).sum()
    return float(loss) / x.shape[0], int(correct), x.shape[0]


def warm_up(device, batch, test_batch):
    """One training step and one evaluation on a throw-away model (library initialisation)."""
    m = Net().to(device)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.5)
    x = torch.randn(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        F.nll_loss(m(x), y).backward()
        opt.step()
    evaluate(m, torch.randn(test_batch, 1, 28, 28, device=device), torch.randint(0, 10, (test_batch,), device=device),
             test_batch)
    torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="", help="MNIST folder (IDX files, gzip or not)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--test-batch-size", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--momentum", type=float, default=0.5)
    ap.add_argument("--step-size", type=int, default=0, help="StepLR every this many epochs (0: off)")
    ap.add_argument("--gamma", type=float, default=0.7)
    ap.add_argument("--val-size", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--graph", action="store_true", help="replay the training step as a CUDA graph")
    ap.add_argument("--no-warmup", action="store_true", help="count library initialisation in the time")
    ap.add_argument("--limit-train", type=int, default=0, help="use only this many training images (0: all)")
    ap.add_argument("--limit-test", type=int, default=0, help="use only this many test images (0: all)")
    args = ap.parse_args()

    if not torch.cuda.is_available():
        print("no CUDA device visible to PyTorch", file=sys.stderr)
        return 77
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device("cuda")
    torch.manual_seed(args.seed)

    folder = data_dir(args.data)
    train_x_all, train_y_all = load(folder, "train", device)
    test_x, test_y = load(folder, "test", device)
    if args.limit_train > 0:
        train_x_all, train_y_all = train_x_all[:args.limit_train], train_y_all[:args.limit_train]
    if args.limit_test > 0:
        test_x, test_y = test_x[:args.limit_test], test_y[:args.limit_test]
    split = torch.randperm(train_x_all.shape[0], generator=torch.Generator().manual_seed(args.seed + 1)).to(device)
    val_idx, train_idx = split[:args.val_size], split[args.val_size:]
    train_x, train_y = train_x_all[train_idx].contiguous(), train_y_all[train_idx].contiguous()
    val_x, val_y = train_x_all[val_idx].contiguous(), train_y_all[val_idx].contiguous()
    n_train = train_x.shape[0]
    print(f"pytorch {torch.__version__} on {torch.cuda.get_device_name(0)}: data {folder}: {n_train} train, "
          f"{val_x.shape[0]} validation, {test_x.shape[0]} test images; lr {args.lr} momentum {args.momentum}"
          f"{f' step-size {args.step_size} gamma {args.gamma}' if args.step_size else ''}; "
          f"graph {'on' if args.graph else 'off'}", flush=True)

    if not args.no_warmup:
        warm_up(device, args.batch_size, args.test_batch_size)

    model = Net().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    sched = torch.optim.lr_scheduler.StepLR(opt, args.step_size, args.gamma) if args.step_size > 0 else None
    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed + 2)

    bs = args.batch_size
    static_x = torch.empty(bs, 1, 28, 28, device=device)
    static_y = torch.empty(bs, dtype=torch.int64, device=device)
    graph, static_loss, graph_lr = None, None, None
    steps = 0

    def eager_step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = F.nll_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    torch.cuda.synchronize()
    t_start = time.perf_counter()
    test_acc = 0.0
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n_train, device=device, generator=gen)
        loss_sum = torch.zeros((), device=device)
        batches = 0
        for i in range(0, n_train, bs):
            idx = perm[i:i + bs]
            full = idx.shape[0] == bs
            if not args.graph or not full or steps < 3:
                if args.graph and full:  # warm-up steps on a side stream, as torch.cuda.graphs asks
                    s = torch.cuda.Stream()
                    s.wait_stream(torch.cuda.current_stream())
                    with torch.cuda.stream(s):
                        loss_sum += eager_step(train_x[idx], train_y[idx])
                    torch.cuda.current_stream().wait_stream(s)
                else:
                    loss_sum += eager_step(train_x[idx], train_y[idx])
            else:
                static_x.copy_(train_x[idx])
                static_y.copy_(train_y[idx])
                if graph is None or graph_lr != opt.param_groups[0]["lr"]:
                    # the lr is a Python float baked into the captured SGD kernels: recapture on change
                    graph = torch.cuda.CUDAGraph()
                    opt.zero_grad(set_to_none=True)
                    with torch.cuda.graph(graph):
                        static_loss = F.nll_loss(model(static_x), static_y)
                        static_loss.backward()
                        opt.step()
                    graph_lr = opt.param_groups[0]["lr"]
                graph.replay()
                loss_sum += static_loss.detach()
            steps += 1
            batches += 1
        train_loss = float(loss_sum) / batches
        train_time = time.perf_counter() - t0
        _, vc, vn = evaluate(model, val_x, val_y, args.test_batch_size) if val_x.shape[0] else (0.0, 0, 0)
        test_loss, tc, tn = evaluate(model, test_x, test_y, args.test_batch_size)
        test_acc = 100.0 * tc / tn
        print(f"Epoch {epoch}: train loss {train_loss:.4f}, validation accuracy {vc}/{vn} "
              f"({100.0 * vc / max(vn, 1):.2f}%), test loss {test_loss:.4f}, test accuracy {tc}/{tn} "
              f"({test_acc:.2f}%), lr {opt.param_groups[0]['lr']:g}, train {train_time:.2f} s", flush=True)
        if sched is not None:
            sched.step()
    torch.cuda.synchronize()
    total = time.perf_counter() - t_start
    print(f"Trained {args.epochs} epochs in {total:.2f} s; final test accuracy {test_acc:.2f}%", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
