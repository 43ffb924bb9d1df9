#!/usr/bin/env python3
"""Checks an ONNX file written by ember (io/onnx.hpp, examples/mnist_export) against PyTorch.

    .venv-bench/bin/python scripts/check_onnx.py --onnx mnist_cnn.onnx \
        --model mnist_cnn.safetensors [--data DIR] [--limit 10000]

1. onnx.checker.check_model (full check) and ONNX shape inference, whose shapes must equal the
   value_info ember wrote; it also says whether the bytes are protobuf's canonical serialization.
2. Runs onnxruntime on MNIST test images (the IDX files, .gz or not, in --data, else
   $EMBER_DATA, normalised as in training: (x / 255 - 0.5) / 0.5) and PyTorch's MNIST Net
   (scripts/torch_mnist.py) loaded from the float safetensors model (without --model, from
   the ONNX file's own initializers), and reports the largest |difference| of the
   log-probabilities and the number of differing predictions. Exit status 1 when the
   difference exceeds --tol or a prediction differs.

    .venv-bench/bin/python scripts/check_onnx.py --make-fixture \
        --onnx tests/fixtures/onnx/small_mnist_net.onnx

writes tests/fixtures/onnx/small_mnist_net.expected.safetensors: 8 inputs (6 MNIST test images,
2 of Gaussian noise) and onnxruntime's log-probabilities on them, which tests/io/test_onnx.cpp
compares with ember's forward (see tests/fixtures/onnx/README.md).

Needs onnx, onnxruntime, torch, safetensors and numpy (the .venv-bench environment); not part
of the default test run.
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper, shape_inference
from safetensors.numpy import save_file
from safetensors.torch import load_file

from torch_mnist import DataError, net_for, read_images, read_labels

REPO = Path(__file__).resolve().parent.parent


def mnist_test_inputs(data_dir, limit):
    images = read_images(data_dir, "test")[:limit, None, :, :]
    return ((images.astype(np.float32) / 255.0 - 0.5) / 0.5).astype(np.float32)


def data_dir_of(flag):
    return flag or os.environ.get("EMBER_DATA") or str(REPO / "data" / "mnist")


def check_model_file(path):
    """checker, shape inference against the declared shapes; returns the model."""
    raw = Path(path).read_bytes()
    model = onnx.load_from_string(raw)
    onnx.checker.check_model(model, full_check=True)
    declared = {v.name: v for v in list(model.graph.value_info) + list(model.graph.output)}
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.graph.value_info[:]
    for o in bare.graph.output:
        o.type.tensor_type.ClearField("shape")
    inferred = shape_inference.infer_shapes(bare, strict_mode=True)
    got = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}

    def dims(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    bad = [n for n in declared if n not in got or dims(declared[n]) != dims(got[n])]
    for n in bad:
        print(f"  shape of {n}: declared {dims(declared[n])}, "
              f"inferred {dims(got[n]) if n in got else 'none'}")
    ops = " ".join(n.op_type for n in model.graph.node)
    print(f"{path}: {len(raw)} bytes, ir_version {model.ir_version}, opset "
          f"{model.opset_import[0].version}, producer {model.producer_name} "
          f"{model.producer_version}; checker ok; {len(declared)} declared shapes, "
          f"{len(bad)} differ from ONNX shape inference; canonical protobuf bytes: "
          f"{'yes' if model.SerializeToString() == raw else 'no'}")
    print(f"  graph {model.graph.name}: {ops}")
    return model, not bad


def run_onnxruntime(path, x, batch):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + batch]})[0]
                           for i in range(0, len(x), batch)])


def run_torch(net, x, batch):
    with torch.no_grad():
        return np.concatenate([net(torch.from_numpy(x[i:i + batch])).numpy()
                               for i in range(0, len(x), batch)])


def state_from_initializers(model):
    return {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
            for t in model.graph.initializer}


def compare(onnx_out, torch_out, tol, labels=None):
    diff = float(np.abs(onnx_out.astype(np.float64) - torch_out).max())
    p_onnx, p_torch = onnx_out.argmax(1), torch_out.argmax(1)
    differing = int((p_onnx != p_torch).sum())
    line = (f"{len(onnx_out)} images: max |onnxruntime - PyTorch| of log-probs {diff:.3e} "
            f"(tolerance {tol:.0e}), {differing} differing predictions")
    if labels is not None:
        line += (f"; accuracy onnxruntime {(p_onnx == labels).mean() * 100:.2f}%, "
                 f"PyTorch {(p_torch == labels).mean() * 100:.2f}%")
    print(line)
    return diff <= tol and differing == 0


def make_fixture(args):
    onnx_path = Path(args.onnx)
    model, shapes_ok = check_model_file(onnx_path)
    images = mnist_test_inputs(data_dir_of(args.data), 6)
    noise = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    x = np.ascontiguousarray(np.concatenate([images, noise]))
    y = run_onnxruntime(onnx_path, x, len(x))
    ok = compare(y, run_torch(net_for(state_from_initializers(model)), x, len(x)), args.tol)
    out = onnx_path.with_name(onnx_path.stem + ".expected.safetensors")
    save_file({"input": x, "log_probs": np.ascontiguousarray(y, dtype=np.float32)}, str(out),
              metadata={"onnx_file": onnx_path.name, "onnxruntime": ort.__version__,
                        "inputs": "6 MNIST test images (0-5), normalised; 2 N(0,1) images"})
    print(f"wrote {out}")
    return ok and shapes_ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--onnx", required=True, help="the exported .onnx file")
    p.add_argument("--model", help="the float .safetensors model it was exported from "
                   "(default: the ONNX file's initializers)")
    p.add_argument("--data", help="MNIST folder (default: $EMBER_DATA, else data/mnist)")
    p.add_argument("--limit", type=int, default=10000, help="test images to run")
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--tol", type=float, default=1e-4, help="largest allowed |difference|")
    p.add_argument("--make-fixture", action="store_true",
                   help="write <onnx stem>.expected.safetensors beside the ONNX file")
    args = p.parse_args()
    torch.set_num_threads(2)
    if args.make_fixture:
        return 0 if make_fixture(args) else 1

    model, shapes_ok = check_model_file(args.onnx)
    if args.model:
        state = load_file(args.model)
        # The initializers must be the model's parameters, bit for bit.
        inits = state_from_initializers(model)
        same = sorted(inits) == sorted(state) and all(torch.equal(inits[k], state[k].float())
                                                      for k in state)
        print(f"initializers equal the parameters of {args.model}: {'yes' if same else 'NO'}")
        shapes_ok = shapes_ok and same
    else:
        state = state_from_initializers(model)
    data_dir = data_dir_of(args.data)
    x = mnist_test_inputs(data_dir, args.limit)
    ok = compare(run_onnxruntime(args.onnx, x, args.batch),
                 run_torch(net_for(state), x, args.batch), args.tol,
                 read_labels(data_dir, "test")[:args.limit])
    print("check_onnx: " + ("OK" if ok and shapes_ok else "MISMATCH"))
    return 0 if ok and shapes_ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DataError as e:
        sys.exit(f"check_onnx: {e}")
