#!/usr/bin/env python3
"""Draws a training run's metrics (written by ember's io::MetricsWriter) as PNG and SVG.

    plot_metrics.py METRICS_DIR [--out DIR] [--classes NAMES] [--title TEXT]

Reads METRICS_DIR/metrics.csv (columns step, epoch, split, loss, lr, accuracy, images_per_s,
wall_s) and, when it is there, METRICS_DIR/confusion.csv (rows = true classes, written by
io::write_confusion_csv), and writes into DIR (default: METRICS_DIR):

  loss.png, loss.svg          loss against epochs: the training steps' running loss, each
                              epoch's training mean, validation and test (log scale)
  accuracy.png, accuracy.svg  accuracy (%) against epochs, the same series
  confusion.png, confusion.svg  the test set's confusion matrix: counts in every cell, colour
                              on a log scale so that a handful of errors shows, and each
                              class's accuracy beside its row

"train" records at a whole epoch number are that epoch's summaries; those at fractions of an
epoch are the steps' records (mnist_train --log-interval). Class names come from the
confusion file's header, or --classes "T-shirt,Trouser,..." (comma-separated, in class order).
Needs matplotlib (Debian: python3-matplotlib); draws with the Agg backend, no display needed.
Exit status: 0 drawn, 1 bad input, 2 matplotlib missing.
"""

import argparse
import csv
import math
import os
import sys


def fail(message, status=1):
    print(f"plot_metrics: {message}", file=sys.stderr)
    sys.exit(status)


def number(text):
    """A CSV cell as a float, or None when empty (nan and inf read as themselves)."""
    return float(text) if text != "" else None


def read_metrics(path):
    want = ["step", "epoch", "split", "loss", "lr", "accuracy", "images_per_s", "wall_s"]
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
            header = rows and list(rows[0].keys())
    except OSError as e:
        fail(f"cannot read '{path}': {e.strerror}")
    if not rows:
        fail(f"'{path}' holds no records")
    if header != want:
        fail(f"'{path}' has columns {header}, expected {want}")
    records = []
    for i, row in enumerate(rows, start=2):
        try:
            records.append({"step": int(row["step"]), "split": row["split"],
                            **{k: number(row[k]) for k in want if k not in ("step", "split")}})
        except (TypeError, ValueError) as e:
            fail(f"'{path}' line {i}: {e}")
    return records


def read_confusion(path):
    """(class names, counts as a list of rows), or None when the file is not there."""
    if not os.path.exists(path):
        return None
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2 or len(rows[0]) != len(rows):
        fail(f"'{path}' is not a square confusion matrix with a header row")
    names = rows[0][1:]
    try:
        counts = [[int(c) for c in row[1:]] for row in rows[1:]]
    except ValueError as e:
        fail(f"'{path}': {e}")
    if any(len(r) != len(names) for r in counts):
        fail(f"'{path}': rows of different lengths")
    return names, counts


def series(records, split, whole_epochs):
    """(epochs, losses, accuracies) of one split; for "train", the epoch summaries (whole) or
    the steps' records (fractions)."""
    out = [r for r in records if r["split"] == split]
    if split == "train":
        out = [r for r in out if (r["epoch"] == math.floor(r["epoch"])) == whole_epochs]
    return out


def plot_curves(plt, ticker, records, key, ylabel, title, path_base, log_scale, zoom=False):
    """One panel of every series against epochs; with zoom, a second panel with validation and
    test alone, on their own scale (accuracy: the first steps' 20% would squash 97% vs 98%)."""
    if zoom:
        fig, (ax, ax_zoom) = plt.subplots(1, 2, figsize=(13, 5), dpi=120,
                                          gridspec_kw={"width_ratios": [3, 2]})
    else:
        fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
        ax_zoom = None
    drawn = False
    styles = [  # (records, label, style)
        (series(records, "train", False), "train (running, every log interval)",
         dict(color="tab:blue", alpha=0.45, linewidth=1)),
        (series(records, "train", True), "train (epoch mean)",
         dict(color="tab:blue", marker="o", linewidth=2)),
        (series(records, "val", True), "validation",
         dict(color="tab:orange", marker="s", linewidth=2)),
        (series(records, "test", True), "test",
         dict(color="tab:green", marker="^", linewidth=2)),
    ]
    for rs, label, style in styles:
        pts = [(r["epoch"], r[key]) for r in rs if r[key] is not None and math.isfinite(r[key])]
        if not pts:
            continue
        xs, ys = zip(*pts)
        if "epoch mean" in label or label in ("validation", "test"):  # the last value, written
            label += f" (last: {ys[-1]:.2f}%)" if key == "accuracy" else f" (last: {ys[-1]:.4f})"
        ax.plot(xs, ys, label=label, **style)
        if ax_zoom is not None and label.startswith(("validation", "test")):
            ax_zoom.plot(xs, ys, label=label, **style)
            for x, y in zip(xs, ys):
                ax_zoom.annotate(f"{y:.2f}", (x, y), textcoords="offset points",
                                 xytext=(0, 7 if label.startswith("test") else -14),
                                 ha="center", fontsize=8, color=style["color"])
        drawn = True
    if not drawn:
        plt.close(fig)
        return False
    if ax_zoom is not None:
        ax_zoom.set_title("validation and test, zoomed")
        ax_zoom.set_xlabel("epoch")
        ax_zoom.set_ylabel(ylabel)
        ax_zoom.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax_zoom.margins(x=0.15, y=0.25)
        ax_zoom.grid(True, alpha=0.3)
        ax_zoom.legend(loc="lower right")
    if log_scale:
        ax.set_yscale("log")
        # ticks at 1, 2 and 5 of each decade, written as plain numbers (0.05, 0.1, 0.2, ...)
        ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best")
    ax.set_xlim(left=0)
    fig.tight_layout()
    save(fig, path_base)
    plt.close(fig)
    return True


def plot_confusion(plt, colors, names, counts, title, path_base):
    n = len(names)
    total = sum(map(sum, counts))
    correct = sum(counts[k][k] for k in range(n))
    size = max(6.0, 0.6 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.5, size), dpi=120)
    biggest = max(max(r) for r in counts) or 1
    masked = [[c if c > 0 else float("nan") for c in row] for row in counts]
    cmap = plt.get_cmap("Blues").copy()
    cmap.set_bad("white")
    im = ax.imshow(masked, cmap=cmap, norm=colors.LogNorm(vmin=1, vmax=max(biggest, 2)))
    for t in range(n):
        for p in range(n):
            c = counts[t][p]
            if c == 0:
                continue
            dark = math.log(c) > 0.6 * math.log(max(biggest, 2))
            ax.text(p, t, str(c), ha="center", va="center", fontsize=9 if n <= 12 else 6,
                    color="white" if dark else ("black" if t == p else "firebrick"))
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(names, rotation=45 if max(map(len, names)) > 2 else 0, ha="right"
                       if max(map(len, names)) > 2 else "center")
    ax.set_yticklabels(names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    # each class's accuracy (recall) beside its row
    right = ax.secondary_yaxis("right")
    right.set_yticks(range(n))
    right.set_yticklabels([f"{100.0 * counts[k][k] / max(sum(counts[k]), 1):.1f}%"
                           for k in range(n)])
    right.set_ylabel("accuracy of the true class")
    acc = 100.0 * correct / total if total else 0.0
    ax.set_title(f"{title}\ntest accuracy {acc:.2f}% ({correct}/{total}); "
                 "colour: count, log scale; blank: 0")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.13, label="images (log scale)")
    fig.tight_layout()
    save(fig, path_base)
    plt.close(fig)


def save(fig, path_base):
    for ext in ("png", "svg"):
        # no date in the SVG, and fixed ids: the same run draws the same file
        fig.savefig(f"{path_base}.{ext}", metadata={"Date": None} if ext == "svg" else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("metrics_dir", help="folder with metrics.csv (and confusion.csv)")
    ap.add_argument("--out", help="folder for the plots (default: METRICS_DIR)")
    ap.add_argument("--classes", help="class names, comma-separated, in class order")
    ap.add_argument("--title", help="what the plots' titles name (default: the folder's name)")
    args = ap.parse_args()

    try:
        import matplotlib
        matplotlib.use("Agg")
        matplotlib.rcParams["svg.hashsalt"] = "ember"
        import matplotlib.colors as colors
        import matplotlib.pyplot as plt
        import matplotlib.ticker as ticker
    except ImportError as e:
        fail(f"matplotlib is not available to {sys.executable} ({e}); "
             "install python3-matplotlib (Debian) or pip install matplotlib", 2)

    records = read_metrics(os.path.join(args.metrics_dir, "metrics.csv"))
    confusion = read_confusion(os.path.join(args.metrics_dir, "confusion.csv"))
    out = args.out or args.metrics_dir
    os.makedirs(out, exist_ok=True)
    name = args.title or os.path.basename(os.path.abspath(args.metrics_dir))

    written = []
    if plot_curves(plt, ticker, records, "loss", "loss (mean negative log-likelihood, log scale)",
                   f"{name}: loss", os.path.join(out, "loss"), log_scale=True):
        written.append("loss")
    if plot_curves(plt, ticker, records, "accuracy", "accuracy (%)", f"{name}: accuracy",
                   os.path.join(out, "accuracy"), log_scale=False, zoom=True):
        written.append("accuracy")
    if confusion is not None:
        names, counts = confusion
        if args.classes:
            given = [c.strip() for c in args.classes.split(",")]
            if len(given) != len(names):
                fail(f"--classes names {len(given)} classes; the confusion matrix has "
                     f"{len(names)}")
            names = given
        plot_confusion(plt, colors, names, counts, f"{name}: confusion matrix",
                       os.path.join(out, "confusion"))
        written.append("confusion")
    print(f"plot_metrics: wrote {', '.join(f'{w}.png/.svg' for w in written)} in {out}")


if __name__ == "__main__":
    main()
