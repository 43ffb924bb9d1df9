#!/usr/bin/env python3
"""examples/fashion_train.cpp's recipe in PyTorch, printing the same lines.

The same network (an nn.Sequential with the same layers, so the same parameter names and
PyTorch's default initialisation, which ember's layers also use), AdamW with no weight decay
on rank-1 parameters (biases, BatchNorm), LinearLR warm-up then CosineAnnealingLR through
SequentialLR stepped after every batch, RandomCrop(28, padding=2) + RandomHorizontalFlip,
the last 5,000 training images for validation, batch 128, 10 epochs, 2 threads.

The augmentation is done on whole batches with tensor indexing (one corner per image drawn
uniformly from the 5 x 5 possible, a flip with probability 0.5): the same distribution as
torchvision's per-image transforms, without a Python call per image. The random numbers are
torch's, not ember's (Philox), so the two programs' runs differ by seed noise.

Usage: python bench/peer/fashion_torch.py [--data DIR] [--epochs 10] [--threads 2] [--seed 1]
The data: --data, else $EMBER_FASHION_DATA, else /usr/share/datasets/fashion-mnist (IDX
files, gzip-compressed or not).
"""

import argparse
import gzip
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN, STD = 0.2860, 0.3530
DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"


def read_idx(root, name):
    """An IDX file (name, or name.gz) as a numpy array."""
    for path, opener in ((os.path.join(root, name), open),
                         (os.path.join(root, name + ".gz"), gzip.open)):
        if os.path.exists(path):
            with opener(path, "rb") as f:
                data = f.read()
            break
    else:
        raise SystemExit(f"fashion_torch.py: {name}(.gz) not found in {root}")
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:
        raise SystemExit(f"fashion_torch.py: {name} is not an IDX file of unsigned bytes")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(root, split):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(root, f"{prefix}-images-idx3-ubyte")
    labels = read_idx(root, f"{prefix}-labels-idx1-ubyte")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def fashion_net():
    def conv(cin, cout):
        return nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    return nn.Sequential(
        conv(1, 32), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),    # (N, 32, 14, 14)
        conv(32, 64), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),   # (N, 64, 7, 7)
        conv(64, 64), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Flatten(),                                                   # (N, 3136)
        nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
        nn.Linear(128, 10),
        nn.LogSoftmax(dim=1))


def normalize(images_u8):
    """(N, 28, 28) uint8 -> (N, 1, 28, 28) float, as ToTensor + Normalize."""
    return ((images_u8.float() / 255.0 - MEAN) / STD).unsqueeze(1)


def augment(images_u8, gen):
    """RandomCrop(28, padding=2) then RandomHorizontalFlip(0.5), per image, on a batch."""
    n = images_u8.shape[0]
    padded = F.pad(images_u8, (2, 2, 2, 2))                     # (N, 32, 32), zeros
    top = torch.randint(0, 5, (n,), generator=gen)
    left = torch.randint(0, 5, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    ar = torch.arange(28)
    rows = top[:, None] + ar                                    # (N, 28)
    cols = left[:, None] + ar                                   # (N, 28)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    return padded[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def evaluate(model, images, labels, batch):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(labels), batch):
            out = model(images[i:i + batch])
            y = labels[i:i + batch]
            loss += F.nll_loss(out, y, reduction="sum").item()
            correct += (out.argmax(1) == y).sum().item()
    return loss / len(labels), correct, len(labels)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--test-batch-size", type=int, default=1000)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--warmup-epochs", type=int, default=1)
    p.add_argument("--warmup-factor", type=float, default=0.1)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--val-size", type=int, default=5000)
    p.add_argument("--max-train", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save-model", default="", help="safetensors file (needs safetensors)")
    a = p.parse_args()
    if a.warmup_epochs >= a.epochs:
        raise SystemExit("--warmup-epochs leaves no epoch for the cosine decay")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    root = a.data or os.environ.get("EMBER_FASHION_DATA") or DEFAULT_ROOT

    images, labels = load(root, "train")
    n_train = len(labels) - a.val_size
    if a.max_train > 0:
        n_train = min(n_train, a.max_train)
    train_x, train_y = images[:n_train], labels[:n_train]
    val_x, val_y = normalize(images[-a.val_size:]), labels[-a.val_size:]
    test_images, test_y = load(root, "test")
    test_x = normalize(test_images)

    model = fashion_net()
    decay = [q for q in model.parameters() if q.dim() >= 2]
    no_decay = [q for q in model.parameters() if q.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr)
    steps_per_epoch = (n_train + a.batch_size - 1) // a.batch_size
    warmup, total = a.warmup_epochs * steps_per_epoch, a.epochs * steps_per_epoch
    if warmup > 0:
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [
            torch.optim.lr_scheduler.LinearLR(opt, a.warmup_factor, 1.0, warmup),
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, total - warmup)], [warmup])
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    gen = torch.Generator().manual_seed(a.seed + 1)

    print(f"torch {torch.__version__}: data {root}: {n_train} train, {len(val_y)} validation, "
          f"{len(test_y)} test images; {torch.get_num_threads()} threads; AdamW lr {a.lr:g} "
          f"weight decay {a.weight_decay:g}, batch {a.batch_size}, {a.epochs} epochs "
          f"({a.warmup_epochs} warm-up), augmentation "
          f"{'none' if a.no_augment else 'RandomCrop(28, padding 2) + RandomHorizontalFlip'}",
          flush=True)
    t_start, cpu_start = time.perf_counter(), time.process_time()
    for epoch in range(1, a.epochs + 1):
        t0, cpu0 = time.perf_counter(), time.process_time()
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        order = torch.randperm(n_train, generator=gen)
        for i in range(0, n_train, a.batch_size):
            idx = order[i:i + a.batch_size]
            xb = train_x[idx] if a.no_augment else augment(train_x[idx], gen)
            x, y = normalize(xb), train_y[idx]
            opt.zero_grad()
            out = model(x)
            loss = F.nll_loss(out, y)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            seen += len(y)
        train_s = time.perf_counter() - t0
        _, vc, vt = evaluate(model, val_x, val_y, a.test_batch_size)
        seconds = time.perf_counter() - t0
        print(f"Epoch {epoch}: train loss {loss_sum / seen:.4f}, train accuracy "
              f"{100.0 * correct / seen:.2f}%, validation accuracy {vc}/{vt} "
              f"({100.0 * vc / vt:.2f}%), lr {opt.param_groups[0]['lr']:.6g}, {seconds:.1f} s "
              f"({seen / train_s:.0f} img/s, CPU {time.process_time() - cpu0:.1f} s)", flush=True)
    train_total, train_cpu = time.perf_counter() - t_start, time.process_time() - cpu_start
    tl, tc, tt = evaluate(model, test_x, test_y, a.test_batch_size)
    print(f"Test set: Average loss: {tl:.4f}, Accuracy: {tc}/{tt} ({100.0 * tc / tt:.2f}%)")
    print(f"Trained {a.epochs} epochs in {train_total:.1f} s (CPU {train_cpu:.1f} s); "
          f"final test accuracy {100.0 * tc / tt:.2f}%", flush=True)
    if a.save_model:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, a.save_model)
        print(f"Saved the model to {a.save_model}")


if __name__ == "__main__":
    main()
