"""Show a resolved run config, every key with its one-line description.

    e2h config show configs/demo.yaml [key.path=value ...]

Prints YAML (loadable again with --config) with each key's description as a comment: the config after the file
and the dotted overrides are applied, defaults included. Unknown keys are errors that name the key.
"""

from __future__ import annotations

import argparse

import yaml

from e2h.config import RunConfig, load_config


def _inline(value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip()
    return text[:-4].rstrip() if text.endswith("\n...") else text.removesuffix("...").strip()


def render(cfg: RunConfig) -> str:
    """The config as commented YAML: one line per key, ``key: value  # description``."""
    lines = []
    for section, info in RunConfig.model_fields.items():
        model = getattr(cfg, section)
        doc = (type(model).__doc__ or "").strip().splitlines()
        lines.append(f"{section}:" + (f"  # {doc[0]}" if doc else ""))
        values = model.model_dump(mode="json")
        for key, field in type(model).model_fields.items():
            description = " ".join((field.description or "").split())
            lines.append(f"  {key}: {_inline(values[key])}" + (f"  # {description}" if description else ""))
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    show = sub.add_parser("show", help="print the resolved config with each key's description",
                          description=__doc__.strip())
    show.add_argument("config", metavar="CONFIG", nargs="?", default=None,
                      help="YAML run config (see configs/); omitted: the defaults")
    show.add_argument("overrides", nargs="*", metavar="key.path=value", help="dotted config overrides")


def run(args) -> int:
    print(render(load_config(args.config, args.overrides)), end="")
    return 0
