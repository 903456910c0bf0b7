"""How long a `foretell` command takes to start, as a user runs it: a new process each time.

    .venv/bin/python benchmarks/cli_start.py [--runs 15] [--tree base=/path/to/old/src --tree new=src]

Times `foretell --version` (the interpreter, the CLI's imports, typer building the command
tree), `foretell ledger show --help` and `foretell predict --help` (the same, plus the help's
rendering), median over `--runs`. With several `--tree NAME=SRC` (a checkout's `src` folder,
put first on PYTHONPATH), every command runs once per tree in turn, so the trees share the
machine's load and the ratio between them is what to read. Without `--tree`, this checkout's `src`.
No command reads a FORETELL_HOME: a scratch folder stands in.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = [("--version",), ("ledger", "show", "--help"), ("predict", "--help")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--tree", action="append", default=[], help="NAME=SRC, a checkout's src folder")
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1] / "src"
    trees = dict(t.split("=", 1) for t in args.tree) or {"this": str(here)}
    trees = {name: str(Path(src).resolve()) for name, src in trees.items()}

    samples: dict[tuple[str, tuple[str, ...]], list[float]] = {(t, c): [] for t in trees for c in COMMANDS}
    with tempfile.TemporaryDirectory(prefix="foretell-cli-start-") as home:
        for _ in range(args.runs):
            for command in COMMANDS:
                for name, src in trees.items():
                    env = {**os.environ, "PYTHONPATH": src, "FORETELL_HOME": home}
                    started = time.perf_counter()
                    argv = [sys.executable, "-m", "foretell", *command]
                    subprocess.run(argv, env=env, capture_output=True, check=True)
                    samples[(name, command)].append(time.perf_counter() - started)

    first = next(iter(trees))
    for command in COMMANDS:
        cells = []
        for name in trees:
            median = statistics.median(samples[(name, command)]) * 1000
            cells.append(f"{name} {median:6.1f} ms")
        if len(trees) > 1:
            base = statistics.median(samples[(first, command)])
            last = statistics.median(samples[(list(trees)[-1], command)])
            cells.append(f"({base / last:.2f}x)")
        print(f"foretell {' '.join(command):<22} " + "   ".join(cells))


if __name__ == "__main__":
    main()
