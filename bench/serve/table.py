"""Reads the RESULT lines bench/serve/run.sh collects (common.lua's done(), plus conns=) and
prints one Markdown row per kind and connection count: the medians over the repeated runs of
requests/s, images/s, p50 and p99 latency, and the errors summed over all runs. Exit status 1
when any run had errors or gave no result.

  python3 bench/serve/table.py RESULTS_FILE
"""

import statistics
import sys


def main(path):
    rows = {}  # (kind, conns) -> list of runs, in first-seen order
    with open(path) as f:
        for line in f:
            if not line.startswith("RESULT "):
                continue
            run = dict(kv.split("=", 1) for kv in line.split()[1:])
            rows.setdefault((run["kind"], int(run["conns"])), []).append(run)
    bad = False
    print(f"| {'kind':<20} | conns | runs | requests/s |   images/s |  p50 ms |  p99 ms | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for (kind, conns), runs in rows.items():
        ok = [r for r in runs if "failed" not in r]
        rps = [int(r["requests"]) / (int(r["duration_us"]) / 1e6) for r in ok]
        per = int(ok[0]["images_per_request"]) if ok else 0
        err_keys = ("connect", "read", "write", "status", "timeout")
        errs = {k: sum(int(r[f"err_{k}"]) for r in ok) for k in err_keys}
        failed = len(runs) - len(ok)
        total = sum(errs.values())
        bad = bad or total > 0 or failed > 0
        text = "0" if total == 0 else f"{total} (" + ", ".join(
            f"{k} {v}" for k, v in errs.items() if v) + ")"
        if failed:
            text += f"; {failed} run(s) gave no result"
        med = (lambda xs: statistics.median(xs) if xs else 0.0)
        print(f"| {kind:<20} | {conns:5d} | {len(runs):4d} | {med(rps):10.1f} | "
              f"{med(rps) * per:10.1f} | {med([int(r['p50_us']) for r in ok]) / 1000:7.2f} | "
              f"{med([int(r['p99_us']) for r in ok]) / 1000:7.2f} | {text} |")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
