#!/usr/bin/env python3
"""Throughput and p99 against offered load for `relay` and `fanout`, Hush and
its baseline (the raw relay) measured in the same run at each point.

    python3 docs/benchmarks/plot.py [--bench target/release/hush-bench] [--quick]
    python3 docs/benchmarks/plot.py --from docs/benchmarks/sweep.json

Runs `hush-bench relay --rate R` and `hush-bench fanout --rate R` at each
offered load, saves every JSON result to docs/benchmarks/sweep.json and draws
docs/benchmarks/load.png (needs matplotlib: `pip install matplotlib`).
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RELAY_RATES = [2000, 5000, 10000, 20000, 30000, 40000, 60000]
FANOUT_RATES = [5, 10, 20, 40, 100]
SECONDS = 5


def run(bench, scenario, rate, extra):
    cmd = [bench, scenario, "--rate", str(rate), "--json"] + extra
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def sweep(bench, quick):
    results = {"relay": [], "fanout": []}
    for rate in RELAY_RATES[:3] if quick else RELAY_RATES:
        msgs = rate * (1 if quick else SECONDS)
        results["relay"].append(run(bench, "relay", rate, ["--messages", str(msgs), "--max-seconds", str(SECONDS + 5)]))
    for rate in FANOUT_RATES[:2] if quick else FANOUT_RATES:
        extra = ["--max-seconds", str(1 if quick else SECONDS)]
        if quick:
            extra += ["--devices", "100"]
        results["fanout"].append(run(bench, "fanout", rate, extra))
    return results


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for col, (scenario, unit) in enumerate([("relay", "msgs/s"), ("fanout", "group msgs/s")]):
        rows = sorted(results.get(scenario, []), key=lambda r: r["params"]["rate"])
        offered = [r["params"]["rate"] for r in rows]
        ours = [r["msgs_per_sec"] for r in rows]
        base = [r["baseline_msgs_per_sec"] for r in rows]
        p99 = [r["p99_ms"] for r in rows]
        bp99 = [r["baseline_detail"]["p99_ms"] for r in rows]
        ax = axes[0][col]
        ax.plot(offered, ours, "o-", label="hush-server")
        ax.plot(offered, base, "s--", label="raw relay (baseline)")
        ax.plot(offered, offered, ":", color="grey", label="offered")
        ax.set_title(f"{scenario}: delivered throughput")
        ax.set_xlabel(f"offered load ({unit})")
        ax.set_ylabel(unit)
        ax.legend()
        ax.grid(True, alpha=0.3)
        ax = axes[1][col]
        ax.plot(offered, p99, "o-", label="hush-server")
        ax.plot(offered, bp99, "s--", label="raw relay (baseline)")
        if scenario == "fanout":
            group = rows[0]["params"]["group"] if rows else "?"
            ax.axhline(50, color="red", alpha=0.4, label="goal: 50 ms")
            ax.set_title(f"fanout to {group} devices: last-recipient p99")
        else:
            ax.set_title("relay: p99 send-to-delivery latency")
        ax.set_xlabel(f"offered load ({unit})")
        ax.set_ylabel("p99 (ms, log)")
        ax.set_yscale("log")
        ax.legend()
        ax.grid(True, alpha=0.3)
    fig.suptitle("hush-bench, 2 shared cores, server on CPU 0, generator on CPU 1")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="target/release/hush-bench")
    ap.add_argument("--from", dest="source")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "load.png"))
    args = ap.parse_args()
    if args.source:
        with open(args.source) as f:
            results = json.load(f)
    else:
        results = sweep(args.bench, args.quick)
        with open(os.path.join(HERE, "sweep.json"), "w") as f:
            json.dump(results, f, indent=1)
    plot(results, args.out)


if __name__ == "__main__":
    main()
