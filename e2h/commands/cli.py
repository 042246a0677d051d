"""The ``e2h`` command (also ``python -m e2h``). Each command lives in its own module with
``add_arguments(parser)`` and ``run(args)``; this file only lists them. A command is listed here once it works."""

from __future__ import annotations

import argparse
import importlib
import sys

from e2h.config import ConfigError
from e2h.jsonl import RecordError

# (command, module, one-line help). Sub-commands ("data prepare") are handled by the module's own parser.
CONFIG_HELP = "Every config key, its value and what it does: e2h config show CONFIG [key.path=value ...]"

COMMANDS: list[tuple[str, str, str]] = [
    ("config", "e2h.commands.config_command",
     "show a resolved config with every key's description (e2h config show CONFIG)"),
    ("demo", "e2h.commands.pipeline",
     "the whole pipeline offline on the leveled world with tiny models (CPU, ~10 min)"),
    ("data", "e2h.data.commands", "prepare PRM / SFT data and prompt sets; inspect loaders"),
    ("world", "e2h.world.commands", "generate the offline leveled world and its tiny models"),
    ("models", "e2h.commands.models_command",
     "convert a packaged pretrained model (SmolLM2-135M GGUF) into an HF checkpoint, once"),
    ("doctor", "e2h.commands.doctor",
     "check versions, devices, disk, paths, collectives and the Ray cluster before a run"),
    ("pretrain", "policy.pretrain", "pretrain the world's base model on its unlabeled corpus, once per world config"),
    ("sft", "policy.sft", "fine-tune the policy on step-formatted solutions with DeepSpeed (resumable)"),
    ("sample", "policy.sample", "sample N solutions per problem with vLLM (sharded, resumable, Ray actors)"),
    ("ppo", "policy.ppo", "PPO with process rewards (DeepSpeed actor/critic, vLLM rollouts)"),
    ("grpo", "policy.grpo", "GRPO with the PPO's process reward (TRL GRPOTrainer, colocated vLLM)"),
    ("serve", "e2h.serve.commands", "serve PRM step scores and reranking over HTTP (FastAPI; --ray for Ray Serve)"),
    ("train-prm", "prm.train", "train the process reward model with DeepSpeed (torchrun -m prm.train for N processes)"),
    ("score", "prm.score",
     "score samples with the PRM: per-step probabilities + min/prod/last/mean (sharded, resumable)"),
    ("eval-processbench", "prm.processbench", "ProcessBench first-error accuracy / F1 of a PRM"),
    ("grade", "e2h.grading.commands", "grade predictions against gold answers (safe SymPy)"),
    ("eval", "e2h.commands.eval_command",
     "grade samples, rerank (majority / best-of-N / weighted vote), curves and report"),
    ("report", "e2h.report.commands", "compare evaluated runs side by side (report.md + report.html)"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="e2h",
        description="Easy-to-hard generalisation: train a process reward model on easy math, judge hard math.",
        epilog=CONFIG_HELP,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name, help_text in COMMANDS:
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip(),
                                  epilog=CONFIG_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
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
