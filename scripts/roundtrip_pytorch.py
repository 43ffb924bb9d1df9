#!/usr/bin/env python3
"""The MNIST CNN's round trip between ember and PyTorch, both ways, on the real test set.

  ember -> torch  a model trained by ember's mnist_train is read with
                  safetensors.torch.load_file and Net().load_state_dict(strict=True); PyTorch's
                  eval-mode outputs on the 10000 test images are compared with mnist_infer's.
  torch -> ember  PyTorch's classic example Net is trained (the example's recipe: batch 64,
                  Adadelta lr 1.0, StepLR gamma 0.7), saved with safetensors.torch.save_file,
                  and classified by mnist_infer; the outputs are compared the same way.

Both sides see the same inputs: the test images are normalised exactly as ember does it,
(pixel - 127.5f) * (1.0f / 127.5f) in float32 (include/ember/data/normalize.hpp), not as
torchvision's (x / 255 - 0.5) / 0.5, which differs in the last bit. Net, that normalisation
and the IDX readers are scripts/torch_mnist.py's. Predictions must be identical and
log-probabilities within --atol + --rtol * |log p|; any mismatch exits 1.

Needs PyTorch, safetensors and numpy (not part of the C++ build or its tests):

    .venv-bench/bin/python scripts/roundtrip_pytorch.py \\
        --ember-model build/release/mnist_cnn.safetensors --steps 300

  --data DIR         MNIST folder with the IDX files, .gz or not (default $EMBER_DATA, else
                     data/mnist)
  --infer PATH       ember's mnist_infer (default $EMBER_INFER, else
                     build/release/examples/mnist_infer)
  --ember-model PATH model saved by mnist_train (default mnist_cnn.safetensors)
  --direction D      both (default), ember-to-torch or torch-to-ember
  --steps N          torch -> ember: stop training after N batches (default 0: one full epoch)
  --epochs N         torch -> ember: epochs (default 1)
  --threads N        threads for PyTorch and mnist_infer (default 2)
  --save PATH        where to save PyTorch's model (default: a temporary folder)
  --batch-size 64, --lr 1.0, --gamma 0.7, --seed 1: PyTorch's training
  --atol 1e-5, --rtol 1e-5: log-prob tolerance, |ember - torch| <= atol + rtol * |torch|

mnist_infer's `--json --predictions` output gives all ten log-probabilities per image; an
mnist_infer without --json is driven through `--index 0,...,9999` instead, which prints
only each prediction and its probability to 4 decimals (compared as such).

Prints a table at the end; a run with --steps 300 on 2 busy threads took 6 minutes:
  direction        model                     images  torch acc  ember acc  pred diff  max|dlogp|
  ember -> torch   mnist_cnn.safetensors      10000     98.31%     98.31%          0    9.50e-06
  torch -> ember   torch_mnist.safetensors    10000     97.27%     97.27%          0    5.77e-06
(and a last column, result: ok or MISMATCH).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from torch_mnist import DataError, Net, load_mnist, normalise

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Setup(Exception):
    """A problem with the inputs (missing file, failed tool), reported with exit code 2."""


class Mismatch(Exception):
    """A file one side wrote that the other cannot read, reported with exit code 1."""


# --------------------------------------------------------------------------------------------
# PyTorch's side (Net, normalise and the MNIST readers are scripts/torch_mnist.py's)
# --------------------------------------------------------------------------------------------

def load_torch_model(path):
    """What a PyTorch user does with ember's file: load_file + load_state_dict(strict)."""
    from safetensors.torch import load_file
    state = load_file(path)
    bad = {k: str(v.dtype) for k, v in state.items() if v.dtype != torch.float32}
    if bad:
        raise Setup(f"'{path}': tensors that are not float32: {bad}")
    net = Net()  # the full-size Net: mnist_infer's model
    try:
        net.load_state_dict(state, strict=True)  # any missing/unexpected key or other shape
    except RuntimeError as e:
        raise Mismatch(f"PyTorch cannot load '{path}': {e}") from e
    return net.eval()


def torch_log_probs(net, x, batch=1000):
    net.eval()
    with torch.no_grad():
        return torch.cat([net(x[i:i + batch]) for i in range(0, len(x), batch)]).numpy()


def train_torch(images, labels, args):
    """The classic example's recipe, on the whole training set (no validation split)."""
    torch.manual_seed(args.seed)
    net = Net()
    opt = torch.optim.Adadelta(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=args.gamma)
    x_all, y_all = normalise(images), torch.from_numpy(labels)
    gen = torch.Generator().manual_seed(args.seed)
    steps, t0 = 0, time.time()
    for epoch in range(1, args.epochs + 1):
        net.train()
        order = torch.randperm(len(x_all), generator=gen)
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            opt.zero_grad()
            loss = F.nll_loss(net(x_all[idx]), y_all[idx])
            loss.backward()
            opt.step()
            steps += 1
            if steps % 100 == 0:
                print(f"  torch train: epoch {epoch}, step {steps}, loss {loss.item():.4f}, "
                      f"{time.time() - t0:.0f} s", flush=True)
            if args.steps and steps >= args.steps:
                break
        sched.step()
        if args.steps and steps >= args.steps:
            break
    print(f"  torch train: {steps} steps in {time.time() - t0:.0f} s", flush=True)
    return net.eval()


# --------------------------------------------------------------------------------------------
# ember's side
# --------------------------------------------------------------------------------------------

def run_tool(cmd):
    shown = [a if len(a) < 100 else a[:40] + "..." for a in cmd]
    print("  $ " + " ".join(shown), flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise Setup(f"{os.path.basename(cmd[0])} exited with {r.returncode}:\n{r.stderr.strip()}")
    return r.stdout


def infer_has_json(infer):
    r = subprocess.run([infer, "--help"], capture_output=True, text=True)
    text = r.stdout + r.stderr
    return "--json" in text and "--predictions" in text


def ember_outputs(infer, model, data, threads, n):
    """mnist_infer's view of the test set: dict with predicted (n,), log_probs (n, 10) or
    None, probability (n,), and the accuracy mnist_infer itself reports."""
    base = [infer, "--model", model, "--data", data, "--threads", str(threads)]
    if infer_has_json(infer):
        out = json.loads(run_tool(base + ["--json", "--predictions"]))
        preds = out["predictions"]
        if len(preds) != n:
            raise Setup(f"mnist_infer --json --predictions listed {len(preds)} images, not {n}")
        index = [int(re.fullmatch(r"test\[(\d+)\]", p["source"]).group(1)) for p in preds]
        if index != list(range(n)):
            raise Setup("mnist_infer's predictions are not test[0..n) in order")
        return {
            "predicted": np.array([p["predicted"] for p in preds], dtype=np.int64),
            "log_probs": np.array([p["log_probs"] for p in preds], dtype=np.float64),
            "probability": np.array([p["probability"] for p in preds], dtype=np.float64),
            "accuracy": float(out["eval"]["accuracy"]),
            "mode": "json",
        }
    print("  (mnist_infer has no --json --predictions: using --index text output, "
          "probabilities to 4 decimals, no log-probs)", flush=True)
    text = run_tool(base + ["--index", ",".join(map(str, range(n)))])
    found = {int(m.group(1)): (int(m.group(2)), float(m.group(3))) for m in re.finditer(
        r"^test\[(\d+)\]: predicted (\d+) \(p=([0-9.]+)\)", text, re.M)}
    if sorted(found) != list(range(n)):
        raise Setup(f"mnist_infer printed {len(found)} predictions, not {n}")
    acc = re.search(r"Accuracy: \d+/\d+ \(([0-9.]+)%\)", text)
    return {
        "predicted": np.array([found[i][0] for i in range(n)], dtype=np.int64),
        "log_probs": None,
        "probability": np.array([found[i][1] for i in range(n)], dtype=np.float64),
        "accuracy": float(acc.group(1)) if acc else float("nan"),
        "mode": "text",
    }


# --------------------------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------------------------

def compare(direction, model, torch_lp, ember, labels, args):
    torch_pred = torch_lp.argmax(axis=1)
    row = {
        "direction": direction,
        "model": os.path.basename(model),
        "images": len(labels),
        "torch_acc": 100.0 * float((torch_pred == labels).mean()),
        "ember_acc": 100.0 * float((ember["predicted"] == labels).mean()),
        "ember_reported_acc": ember["accuracy"],
        "pred_diff": int((torch_pred != ember["predicted"]).sum()),
    }
    problems = []
    if row["pred_diff"]:
        first = np.flatnonzero(torch_pred != ember["predicted"])[:5].tolist()
        problems.append(f"{row['pred_diff']} predictions differ (first at test{first})")
    if ember["log_probs"] is not None:
        t = torch_lp.astype(np.float64)
        diff = np.abs(ember["log_probs"] - t)
        row["max_dlogp"] = float(diff.max())
        over = diff > args.atol + args.rtol * np.abs(t)
        if over.any():
            i, j = np.argwhere(over)[0]
            problems.append(f"{int(over.sum())} log-probs beyond {args.atol:g} + {args.rtol:g}"
                            f"|log p| (test[{i}] class {j}: torch {t[i, j]:.9g}, ember "
                            f"{ember['log_probs'][i, j]:.9g})")
    else:
        p_torch = np.exp(torch_lp.max(axis=1).astype(np.float64))
        diff = np.abs(ember["probability"] - p_torch)
        row["max_dp"] = float(diff.max())
        if (diff > 6e-5).any():  # printed with 4 decimals: 5e-5 rounding, 1e-5 float
            problems.append(f"{int((diff > 6e-5).sum())} top probabilities differ "
                            "beyond the 4 printed decimals")
    if abs(row["ember_reported_acc"] - row["ember_acc"]) > 0.005:
        problems.append(f"mnist_infer reports accuracy {row['ember_reported_acc']:.2f}%, its "
                        f"predictions give {row['ember_acc']:.2f}%")
    row["problems"] = problems
    return row


def print_table(rows):
    print()
    print(f"{'direction':15s}  {'model':24s}  {'images':>6s}  {'torch acc':>9s}  "
          f"{'ember acc':>9s}  {'pred diff':>9s}  {'max|dlogp|':>10s}  result")
    for r in rows:
        diff = (f"{r['max_dlogp']:10.2e}" if "max_dlogp" in r
                else f"{'p ' + format(r['max_dp'], '.1e'):>10s}")
        print(f"{r['direction']:15s}  {r['model'][:24]:24s}  {r['images']:6d}  "
              f"{r['torch_acc']:8.2f}%  {r['ember_acc']:8.2f}%  {r['pred_diff']:9d}  {diff}  "
              f"{'ok' if not r['problems'] else 'MISMATCH'}")
    for r in rows:
        for p in r["problems"]:
            print(f"{r['direction']}: {p}")


# --------------------------------------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("EMBER_DATA") or
                   os.path.join(ROOT, "data", "mnist"))
    p.add_argument("--infer", default=os.environ.get("EMBER_INFER") or
                   os.path.join(ROOT, "build", "release", "examples", "mnist_infer"))
    p.add_argument("--ember-model", default="mnist_cnn.safetensors")
    p.add_argument("--direction", default="both",
                   choices=["both", "ember-to-torch", "torch-to-ember"])
    p.add_argument("--steps", type=int, default=0)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1.0)
    p.add_argument("--gamma", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save", default="")
    p.add_argument("--atol", type=float, default=1e-5)
    p.add_argument("--rtol", type=float, default=1e-5)
    return p.parse_args()


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    if not os.access(args.infer, os.X_OK):
        raise Setup(f"no mnist_infer at '{args.infer}' (build it, or set --infer)")
    test_images, test_labels = load_mnist(args.data, "test")
    x_test = normalise(test_images)
    n = len(test_labels)
    rows = []

    if args.direction in ("both", "ember-to-torch"):
        print(f"ember -> torch: {args.ember_model}", flush=True)
        if not os.path.exists(args.ember_model):
            raise Setup(f"no ember model at '{args.ember_model}' (train one with mnist_train, "
                        "or set --ember-model)")
        net = load_torch_model(args.ember_model)
        ember = ember_outputs(args.infer, args.ember_model, args.data, args.threads, n)
        rows.append(compare("ember -> torch", args.ember_model, torch_log_probs(net, x_test),
                            ember, test_labels, args))

    if args.direction in ("both", "torch-to-ember"):
        from safetensors.torch import save_file
        print("torch -> ember: training PyTorch's Net", flush=True)
        train_images, train_labels = load_mnist(args.data, "train")
        net = train_torch(train_images, train_labels, args)
        tmp = None
        path = args.save
        if not path:
            tmp = tempfile.mkdtemp(prefix="roundtrip_pytorch_")
            path = os.path.join(tmp, "torch_mnist.safetensors")
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, path)
        try:
            ember = ember_outputs(args.infer, path, args.data, args.threads, n)
            rows.append(compare("torch -> ember", path, torch_log_probs(net, x_test), ember,
                                test_labels, args))
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)

    print_table(rows)
    return 1 if any(r["problems"] for r in rows) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (Setup, DataError) as e:
        print(f"roundtrip_pytorch: {e}", file=sys.stderr)
        sys.exit(2)
    except Mismatch as e:
        print(f"roundtrip_pytorch: MISMATCH: {e}", file=sys.stderr)
        sys.exit(1)
