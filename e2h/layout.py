"""Where a run's stages read and write: the one owner of the run directory.

Every stage asks the layout for its inputs and outputs. A stage's output directory set in the config
(``sft.output_dir``, ``prm.output_dir``, ``sample.output_dir``, ``score.output_dir``, ``eval.output_dir``,
``ppo.output_dir``, ``grpo.output_dir``) is where that stage writes AND where every later stage looks, so
overriding one never breaks the next::

    runs/demo/                      layout = RunLayout(cfg)
      manifest.json                 layout.manifest
      data/prm_train.jsonl          layout.prm_data          prm.data
      data/sft_train.jsonl          layout.sft_data          sft.data
      data/prompts_<split>.jsonl    layout.prompts(split)
      sft/                          layout.sft_model         sft.output_dir
      prm/                          layout.prm_model         prm.output_dir
      samples/                      layout.samples           sample.output_dir
      scored/                       layout.scored            score.output_dir
      eval/                         layout.eval_dir          eval.output_dir
      ppo/  grpo/                   layout.ppo, layout.grpo  ppo.output_dir, grpo.output_dir

Inputs a stage reads from an earlier one follow the same rule: ``e2h score`` reads ``score.model`` or else
``layout.prm_model`` and ``score.samples`` or else ``layout.samples``; ``e2h ppo`` reads ``ppo.policy_path`` or
else ``layout.sft_model``; and so on (the properties below).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from e2h.config import RunConfig


def _chosen(explicit: str | None, default: Path) -> Path:
    return Path(explicit) if explicit else default


@dataclass(frozen=True)
class RunLayout:
    cfg: RunConfig

    # --- the run directory itself -----------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return Path(self.cfg.run.out_dir)

    def path(self, *parts: str) -> Path:
        """A path inside the run directory (for what no stage's config key moves: the manifest, data/, world/)."""
        return self.root.joinpath(*parts)

    @property
    def manifest(self) -> Path:
        return self.path("manifest.json")

    # --- data (e2h data prepare) ------------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.path("data")

    def prompts(self, split: str) -> Path:
        return self.data_dir / f"prompts_{split}.jsonl"

    @property
    def prm_data(self) -> Path:
        return _chosen(self.cfg.prm.data, self.data_dir / "prm_train.jsonl")

    @property
    def sft_data(self) -> Path:
        return _chosen(self.cfg.sft.data, self.data_dir / "sft_train.jsonl")

    # --- stage outputs: where the stage writes and every later stage reads ---------------------------------
    @property
    def sft_model(self) -> Path:
        return _chosen(self.cfg.sft.output_dir, self.path("sft"))

    @property
    def prm_model(self) -> Path:
        return _chosen(self.cfg.prm.output_dir, self.path("prm"))

    @property
    def samples(self) -> Path:
        return _chosen(self.cfg.sample.output_dir, self.path("samples"))

    @property
    def scored(self) -> Path:
        return _chosen(self.cfg.score.output_dir, self.path("scored"))

    @property
    def eval_dir(self) -> Path:
        return _chosen(self.cfg.eval.output_dir, self.path("eval"))

    @property
    def ppo(self) -> Path:
        return _chosen(self.cfg.ppo.output_dir, self.path("ppo"))

    @property
    def grpo(self) -> Path:
        return _chosen(self.cfg.grpo.output_dir, self.path("grpo"))

    # --- what a stage reads from earlier stages -----------------------------------------------------------
    @property
    def score_model(self) -> Path:
        return _chosen(self.cfg.score.model, self.prm_model)

    @property
    def score_samples(self) -> Path:
        return _chosen(self.cfg.score.samples, self.samples)

    @property
    def sample_prompts(self) -> Path:
        return _chosen(self.cfg.sample.prompts, self.prompts("test"))

    @property
    def eval_candidates(self) -> list[Path]:
        """What ``e2h eval`` reads when ``eval.samples`` is unset: the scored samples, else the raw ones."""
        return [Path(self.cfg.eval.samples)] if self.cfg.eval.samples else [self.scored, self.samples]

    @property
    def ppo_policy(self) -> Path:
        return _chosen(self.cfg.ppo.policy_path, self.sft_model)

    @property
    def ppo_prm(self) -> Path:
        return _chosen(self.cfg.ppo.prm_path, self.prm_model)

    @property
    def ppo_prompts(self) -> Path:
        return _chosen(self.cfg.ppo.prompts, self.prompts("train"))

    @property
    def ppo_validation_prompts(self) -> Path:
        return _chosen(self.cfg.ppo.validation_prompts, self.prompts("validation"))

    @property
    def grpo_policy(self) -> Path:
        return _chosen(self.cfg.grpo.policy_path, self.sft_model)

    @property
    def grpo_prm(self) -> Path:
        return _chosen(self.cfg.grpo.prm_path, self.prm_model)

    @property
    def grpo_prompts(self) -> Path:
        return _chosen(self.cfg.grpo.prompts, self.prompts("train"))

    @property
    def serve_prm(self) -> Path:
        return _chosen(self.cfg.serve.prm_path, self.prm_model)
