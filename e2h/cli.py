"""The ``e2h`` command. Each command lives in its own module with ``add_arguments(parser)`` and ``run(args)``;
this file only lists them. A command is listed here once it works."""

from __future__ import annotations

import argparse
import importlib
import sys

from e2h.config import ConfigError
from e2h.jsonl import RecordError

# (command, module, one-line help). Sub-commands ("data prepare") are handled by the module's own parser.
COMMANDS: list[tuple[str, str, str]] = [
    ("data", "e2h.data.commands", "prepare PRM / SFT data and prompt sets; inspect loaders"),
    ("world", "e2h.world.commands", "generate the offline leveled world and its tiny models"),
]


def add_config_arguments(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """--config FILE plus dotted overrides such as prm.lr=1e-5."""
    parser.add_argument("--config", "-c", required=required, help="YAML run config (see configs/)")
    parser.add_argument("overrides", nargs="*", metavar="key.path=value", help="dotted config overrides")


def config_from_args(args: argparse.Namespace):
    from e2h.config import load_config

    return load_config(args.config, args.overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="e2h",
        description="Easy-to-hard generalisation: train a process reward model on easy math, judge hard math.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name, help_text in COMMANDS:
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args._run(args)
    except (ConfigError, RecordError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
