"""Real pretrained models from registry packages, converted once into ordinary Hugging Face checkpoints.

    e2h models list
    e2h models fetch smollm2-135m [--cache-dir DIR] [--force]     # prints the checkpoint folder
    e2h models check PATH                                           # EOS / chat template / weights of any HF folder

How a model is converted, and where it is kept: e2h/models.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys

from e2h.models import MODELS, ModelError, check_checkpoint, fetch, model_dir, read_marker


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="known models, whether their package is installed and where they are converted")
    fetch_parser = sub.add_parser("fetch", help="convert a packaged GGUF model into an HF checkpoint (once)")
    fetch_parser.add_argument("name", choices=sorted(MODELS))
    fetch_parser.add_argument("--cache-dir", default=None,
                              help="folder that holds converted models (default $E2H_CACHE/models)")
    fetch_parser.add_argument("--force", action="store_true", help="convert again even if already converted")
    check_parser = sub.add_parser("check", help="check an HF folder: weights, EOS token, chat template")
    check_parser.add_argument("path")


def run(args: argparse.Namespace) -> int:
    try:
        if args.models_command == "list":
            for spec in MODELS.values():
                installed = importlib.util.find_spec(spec.module) is not None
                folder = model_dir(spec.name)
                state = str(folder) if read_marker(folder) is not None else "not converted"
                package = f"{spec.package} ({'installed' if installed else 'not installed: ' + spec.install_command})"
                print(f"{spec.name}\t{package}\t{spec.gguf_file}\t{spec.license}\t{state}")
                print(f"    {spec.description}")
            return 0
        if args.models_command == "fetch":
            result = fetch(args.name, args.cache_dir, force=args.force)
            if not result.skipped:
                print(f"converted {args.name}: {result.params / 1e6:.1f}M parameters, logits within "
                      f"{result.max_abs_logit_diff:.2g} of the GGUF model, {result.seconds:.0f} s", file=sys.stderr)
            print(result.path)
            return 0
        summary = check_checkpoint(args.path)
        print(json.dumps(summary, indent=2))
        return 0
    except ModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
