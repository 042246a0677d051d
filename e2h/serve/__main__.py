"""``python -m e2h.serve --config configs/serve.yaml`` = ``e2h serve ...`` (used by bench/bench_serve.py)."""

from __future__ import annotations

import argparse
import sys

from e2h.serve import commands

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m e2h.serve", description=commands.__doc__)
    commands.add_arguments(parser)
    sys.exit(commands.run(parser.parse_args()))
