#!/usr/bin/env python3
"""Checks ember's ONNX export of a model of every layer against onnxruntime and PyTorch.

    build/release/tests/test_onnx "[layers]"     # writes the files below to its tmp folder
    /work/venv/bin/python scripts/check_onnx_layers.py --dir build/release/tests/tmp/onnx_layers

The folder holds what tests/io/test_onnx.cpp writes: every_layer.onnx (operator set 13, GELU
as its erf and tanh formulas), every_layer_opset20.onnx (Gelu), every_layer.safetensors (the
float model's state_dict) and every_layer.ember.safetensors (an input and ember's output).
tests/support/layer_zoo.hpp builds the model; torch_model() below is the same in PyTorch.

1. onnx.checker (full check) and ONNX shape inference against the shapes ember declared.
2. onnxruntime on both files, PyTorch (the state_dict loaded strictly) and ember on the same
   input: the largest |difference| of the log-probabilities, each pair.
3. Layer by layer: onnxruntime's value for every step (graph outputs added for each value_info)
   against PyTorch's output of that layer (a folded conv2d / linear against its batch norm's).
Exit status 1 when any difference exceeds --tol.

    ... --make-fixture

also copies every_layer.onnx to tests/fixtures/onnx/ and writes
tests/fixtures/onnx/every_layer.expected.safetensors: the input and onnxruntime's output, which
tests/io/test_onnx.cpp compares with ember's forward.
"""

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from safetensors.numpy import load_file as load_np, save_file
from safetensors.torch import load_file

from check_onnx import check_model_file

REPO = Path(__file__).resolve().parent.parent
FOLDED = {0: 1, 4: 5, 19: 20}  # conv2d / linear -> the batch norm folded into it


def torch_model():
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.GELU(), nn.AvgPool2d(3, 2, 1),
        nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.LeakyReLU(0.2), nn.MaxPool2d(3, 1, 1),
        nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), nn.BatchNorm2d(8),
        nn.ELU(0.7), nn.Softmax(1), nn.SiLU(), nn.Tanh(), nn.AdaptiveAvgPool2d(2), nn.Sigmoid(),
        nn.GELU("tanh"), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
        nn.BatchNorm1d(10), nn.ReLU(), nn.Dropout(0.5), nn.Linear(10, 5),
        nn.LogSoftmax(-1)).eval()


def run_onnxruntime(model_proto, x):
    session = ort.InferenceSession(model_proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: x})))


def with_every_value(model):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for v in model.graph.value_info:
        m.graph.output.append(v)
    return m


def maxdiff(a, b):
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", required=True, help="the folder test_onnx wrote")
    p.add_argument("--tol", type=float, default=1e-5, help="largest allowed |difference|")
    p.add_argument("--make-fixture", action="store_true")
    args = p.parse_args()
    d = Path(args.dir)
    torch.set_num_threads(2)

    net = torch_model()
    state = load_file(str(d / "every_layer.safetensors"))
    net.load_state_dict(state, strict=True)
    ember = load_np(str(d / "every_layer.ember.safetensors"))
    x, y_ember = ember["input"], ember["log_probs"]
    acts = []
    with torch.no_grad():
        h = torch.from_numpy(x)
        for layer in net:
            h = layer(h)
            acts.append(h.numpy())
    y_torch = acts[-1]

    ok = True
    print(f"PyTorch vs ember: max |diff| of log-probs {maxdiff(y_torch, y_ember):.3e}")
    ok = ok and maxdiff(y_torch, y_ember) <= args.tol
    for name in ["every_layer.onnx", "every_layer_opset20.onnx"]:
        model, shapes_ok = check_model_file(d / name)
        ok = ok and shapes_ok
        out = run_onnxruntime(with_every_value(model), x)
        y_ort = out[model.graph.output[0].name]
        d_ember, d_torch = maxdiff(y_ort, y_ember), maxdiff(y_ort, y_torch)
        print(f"  onnxruntime vs ember {d_ember:.3e}, vs PyTorch {d_torch:.3e} ({len(x)} inputs)")
        ok = ok and d_ember <= args.tol and d_torch <= args.tol
        worst = 0.0
        rows = []
        for v in model.graph.value_info:
            if not v.name.endswith("_output"):
                continue
            step = int(v.name.split("_")[0])
            want = acts[FOLDED.get(step, step)]
            diff = maxdiff(out[v.name], want)
            worst = max(worst, diff)
            rows.append(f"{step}:{diff:.1e}")
        print(f"  layer by layer (step: max |onnxruntime - PyTorch|): {' '.join(rows)}")
        ok = ok and worst <= args.tol
        if name == "every_layer.onnx" and args.make_fixture:
            fixtures = REPO / "tests" / "fixtures" / "onnx"
            shutil.copyfile(d / name, fixtures / name)
            save_file({"input": np.ascontiguousarray(x),
                       "log_probs": np.ascontiguousarray(y_ort, dtype=np.float32)},
                      str(fixtures / "every_layer.expected.safetensors"),
                      metadata={"onnx_file": name, "onnxruntime": ort.__version__,
                                "inputs": "6 N(0,1) inputs drawn by ember (Generator(32))"})
            print(f"  wrote {fixtures / name} and every_layer.expected.safetensors")
    print("check_onnx_layers: " + ("OK" if ok else "MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
