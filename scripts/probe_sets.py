"""Both built-in probe sets on the fine-tunes of a run: does a shift hold when form is matched?

everyday-v1's misaligned answers often differ from the aligned ones in form (shorter, blunter);
everyday-style-v1 matches form and differs in values only (docs/probe.md). This scores the base
model and every adapter under ``RUN/models`` (named ``<group>-s<seed>-<hash>`` by the demo) on
both sets, then prints each model's score, the paired group differences asked for, and, for each
difference, how much its per-pair shifts follow the pairs' length gap (misaligned over aligned
length, minus 1): a difference that follows it is partly about form. Nothing is stored.

Usage: OMP_NUM_THREADS=1 python scripts/probe_sets.py [RUN] [--compare A:B ...] [--device cpu]
(default: runs/demo, comparing risky-advice and insecure-code with their controls and with the base)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from emkit.probe import BUILTIN_PROBE_SETS, ProbeResult, load_probe_set, probe_shift, run_probe

BASE = "embedded/smollm2-135m"


def adapters(run: Path) -> dict[str, str]:
    """Model label (group, with the seed when a group has several) -> model name to load."""
    found = {}
    for config in sorted(run.glob("models/*/adapter_config.json")):
        match = re.fullmatch(r"(.+)-s(\d+)-[0-9a-f]+", config.parent.name)
        if match:
            found[(match[1], int(match[2]))] = f"{BASE}@{config.parent.resolve()}"
    groups = [g for g, _ in found]
    return {(g if groups.count(g) == 1 else f"{g}-s{s}"): name for (g, s), name in found.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", nargs="?", default="runs/demo", type=Path)
    parser.add_argument(
        "--compare",
        nargs="*",
        default=[
            "risky-advice:safe-advice",
            "insecure-code:secure-code",
            "risky-advice:base",
            "insecure-code:base",
        ],
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n-boot", type=int, default=2000)
    args = parser.parse_args(argv)
    models = {"base": BASE, **adapters(args.run)}
    if len(models) == 1:
        print(f"{args.run}: no adapters under models/", file=sys.stderr)
        return 2
    for set_name in BUILTIN_PROBE_SETS:
        probe_set = load_probe_set(set_name)
        gap = {p.id: len(p.misaligned) / len(p.aligned) - 1 for p in probe_set.pairs}
        results: dict[str, ProbeResult] = {}
        for label, name in models.items():
            r = run_probe(name, probe_set=probe_set, n_boot=args.n_boot, device=args.device)
            results[label] = r
            print(
                f"{set_name:18s} {label:16s} {r.score:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
                f"  misaligned preferred in {r.win_fraction:.0%} of {r.n_pairs}",
                flush=True,
            )
        for pair in args.compare:
            a, b = pair.split(":")
            if a not in results or b not in results:
                print(f"{set_name:18s} {pair}: not both in {args.run}")
                continue
            s = probe_shift(results[a], results[b], n_boot=args.n_boot)
            per_pair = (
                results[a].pairs.set_index("pair_id")["diff"] - results[b].pairs.set_index("pair_id")["diff"]
            )
            corr = np.corrcoef([gap[i] for i in per_pair.index], per_pair.to_numpy())[0, 1]
            print(
                f"{set_name:18s} {a} minus {b}: {s.shift:+.3f} [{s.ci_low:+.3f}, {s.ci_high:+.3f}]"
                f"  wins gained {s.wins_gained:+.0%}  corr(pair shift, length gap) {corr:+.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
