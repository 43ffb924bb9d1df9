"""Checks that TorchServe serves the same model as ember: posts the first --count MNIST test
images (784 raw pixel bytes each) to POST /predictions/{model} and compares each answer's
class and log-probabilities with mnist_infer's (`mnist_infer --model M --json --predictions`).
Standard library only. Exit 1 on any difference, 2 on bad flags, files or HTTP errors.

  python3 bench/serve/torchserve/check_predictions.py --reference ref.json --count 200
"""

import argparse
import gzip
import json
import os
import sys
import urllib.error
import urllib.request


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--model", default="mnist")
    ap.add_argument("--reference", required=True)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--data", default=os.environ.get("EMBER_DATA", "data/mnist"))
    args = ap.parse_args()
    path = os.path.join(args.data, "t10k-images-idx3-ubyte.gz")
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
        with open(args.reference) as f:
            preds = json.load(f).get("predictions") or []
    except (OSError, ValueError) as e:
        sys.exit(f"check_predictions: {e}")
    if len(preds) < args.count:
        sys.exit(f"check_predictions: '{args.reference}' lists {len(preds)} predictions; make "
                 "it with mnist_infer --json --predictions")
    worst, bad = 0.0, 0
    for i in range(args.count):
        body = raw[16 + 784 * i:16 + 784 * (i + 1)]
        req = urllib.request.Request(f"{args.url}/predictions/{args.model}", data=body,
                                     headers={"Content-Type": "application/octet-stream"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                got = json.loads(r.read())
        except (urllib.error.URLError, OSError, ValueError) as e:
            print(f"check_predictions: test[{i}]: {e}", file=sys.stderr)
            return 2
        ref = preds[i]
        diff = max(abs(a - b) for a, b in zip(got["log_probs"], ref["log_probs"]))
        worst = max(worst, diff)
        if got["class"] != ref["predicted"] or diff > args.atol:
            bad += 1
            if bad <= 5:
                print(f"  test[{i}]: TorchServe class {got['class']}, mnist_infer "
                      f"{ref['predicted']}, log-probabilities differ by {diff:.2e}")
    print(f"check_predictions: {args.count} test images through TorchServe: {bad} differ from "
          f"mnist_infer (max |log-prob diff| {worst:.2e})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
