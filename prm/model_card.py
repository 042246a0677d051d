"""The model card (README.md) `e2h train-prm` writes into the saved PRM folder: what the PRM was trained from and
on, how it reads a solution (step separator, scored token, label positions), how to score with e2h and with plain
transformers, the training hyper-parameters and the final metrics of the train log.

    write_model_card(out, backbone="runs/demo/base/model", data=DataSummary(...), info=model.info, cfg=cfg,
                     run={"steps": 120, "world_size": 2}, metrics={"loss": 0.21, "eval/step_accuracy": 0.87})
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from e2h.manifest import file_checksum
from e2h.text_format import STEP_SEPARATOR
from prm.model import HEAD_LABELS, POSITIVE_LABEL

CARD_NAME = "README.md"
# The training section's fields listed under "Training"; the rest of the config is in train_config.yaml.
HYPER_PARAMETERS = ("kind", "label_positions", "lr", "min_lr_ratio", "warmup_ratio", "weight_decay", "adam_betas",
                    "adam_eps", "grad_clip", "epochs", "global_batch_size", "micro_batch_size", "max_length",
                    "precision", "freeze_embeddings_and_norms", "freeze_backbone", "likelihood_feature", "lora_rank",
                    "lora_alpha", "lora_dropout", "lora_target_modules", "deepspeed_config", "eval_size")


@dataclass
class DataSummary:
    """What the PRM was trained on: the StepExample file and its row counts."""

    path: str
    rows: int  # examples read from the file
    train: int  # examples trained on
    dropped: int  # train-side examples dropped as longer than max_length
    held_out: int  # examples held out for evaluation
    levels: dict[str, int] = field(default_factory=dict)  # level -> examples in the file ("none" = no level)
    sha256: str = ""

    @classmethod
    def of(cls, path, examples, train: int, dropped: int, held_out: int) -> "DataSummary":
        levels = Counter("none" if e.level is None else str(e.level) for e in examples)
        return cls(path=str(path), rows=len(examples), train=train, dropped=dropped, held_out=held_out,
                   levels=dict(sorted(levels.items())), sha256=file_checksum(path))


def final_metrics(log_rows: list[dict]) -> dict:
    """The latest value of every metric in the train log (rows in order; the final evaluation is logged last)."""
    metrics: dict = {}
    for row in log_rows:
        metrics.update(row)
    return metrics


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)


def _table(rows: list[tuple[str, object]], header: tuple[str, str]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| `{key}` | {_value(value)} |" for key, value in rows]
    return "\n".join(lines)


def render_model_card(backbone: str, data: DataSummary, info: dict, cfg, run: dict, metrics: dict,
                      folder_name: str = "PATH/TO/prm") -> str:
    """The card's Markdown (with a Hugging Face metadata header)."""
    pcfg = cfg.prm
    name = cfg.run.name
    is_local = os.path.exists(backbone)
    header = ["---", "library_name: transformers", "pipeline_tag: token-classification",
              "tags:", "- process-reward-model", "- e2h"]
    if not is_local:  # a hub id: the hub links the card to it
        header.append(f"base_model: {backbone}")
    header.append("---")
    levels = ", ".join(f"{level}: {count}" for level, count in data.levels.items()) or "none recorded"
    likelihood_note = ("\n**This PRM has the likelihood feature** (`likelihood_head.safetensors`, prm/model.py): its "
                       "reward adds the backbone's log-probability of the solution's weakest token, which plain "
                       "transformers does not compute. The code below gives the head's part only; score with e2h.\n"
                       if info.get("likelihood_feature") else "")
    train_levels = ", ".join(str(level) for level in cfg.data.train_levels)
    separator = json.dumps(info.get("step_separator", STEP_SEPARATOR))
    hyper = [(key, getattr(pcfg, key)) for key in HYPER_PARAMETERS
             if hasattr(pcfg, key) and (pcfg.lora_rank > 0 or not key.startswith("lora_") or key == "lora_rank")]
    hyper += [("seed", cfg.run.seed), ("optimizer steps", run.get("steps")), ("processes", run.get("world_size"))]
    shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    metric_table = _table(sorted(shown.items()), ("metric", "value")) if shown else "(no train log)"
    labels = json.dumps({str(k): v for k, v in HEAD_LABELS.items()})
    positive = [k for k, v in HEAD_LABELS.items() if v == POSITIVE_LABEL][0]
    return f"""{chr(10).join(header)}

# {name}: a process reward model trained with e2h

A **process reward model** ({info.get("kind", "prm")}): for a math solution written as steps, it gives every
step the probability that the step is correct. It was trained by `e2h train-prm` (run `{name}`).

## Model

- **Base model**: `{backbone}` (a causal LM; its LM head was replaced by a reward head)
- **Architecture**: `*ForTokenClassification`, two labels `{labels}`; the step probability is
  `softmax(logits)[..., {positive}]` (= sigmoid of the reward logit) at the step's scored token
- **Format**: `prm_config.json` (`{info.get("format")}` version {info.get("version")})

## Data

| | |
|---|---|
| file | `{data.path}` |
| sha256 | `{data.sha256[:16]}` |
| examples read | {data.rows} |
| trained on | {data.train} |
| dropped (longer than `max_length` = {pcfg.max_length}) | {data.dropped} |
| held out for evaluation | {data.held_out} |
| levels of the examples | {levels} |
| `data.train_levels` of the run | {train_levels} |

## How the PRM reads a solution

- Text: `"# Question\\n\\n{{problem}}\\n\\n# Solution\\n\\n"` then the steps, each reasoning step followed by the
  step separator {separator} (the last one too); the answer step `"# Answer\\n\\n{{answer}}"` ends the text.
- **Step tag**: `{info.get("step_tag")}`: step *k* is scored at the token holding its **last character** (no
  special tag token is inserted).
- **Label positions** during training: `{info.get("label_positions")}` (`every_token`: every token of a labelled
  step and its separator carries the step's label; `boundary`: only the scored token).
- Only the scored tokens' probabilities are step scores; other tokens' outputs carry no meaning of their own.

## Scoring with e2h

```python
from prm.score import PRMScorer

scorer = PRMScorer("{folder_name}")
prompt = "# Question\\n\\nWhat is 2 + 3?\\n\\n# Solution\\n\\n"
print(scorer.score(prompt, ["We add 2 and 3.\\n\\n2 + 3 = 5.\\n\\n# Answer\\n\\n5"]))  # [[p_step1, p_step2, p_answer]]
```

or `e2h score --model {folder_name} --samples SAMPLES.jsonl`, or the reranking service (`e2h serve`).

## Scoring with plain transformers
{likelihood_note}
```python
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

path = "{folder_name}"
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModelForTokenClassification.from_pretrained(path).eval()

prompt = "# Question\\n\\nWhat is 2 + 3?\\n\\n# Solution\\n\\n"
steps = ["We add 2 and 3.", "2 + 3 = 5.", "# Answer\\n\\n5"]
text, ends = prompt, []
for step in steps:
    text += step
    ends.append(len(text) - 1)  # the step's last character
    if not step.startswith("# Answer"):
        text += {separator}  # every reasoning step is followed by the separator, the last one too

enc = tokenizer(text, return_offsets_mapping=True, return_tensors="pt")
offsets = enc.pop("offset_mapping")[0].tolist()
positions = [next(i for i, (s, e) in enumerate(offsets) if s <= end < e) for end in ends]
with torch.no_grad():
    probs = model(**enc).logits[0].softmax(-1)[:, model.config.label2id["{POSITIVE_LABEL}"]]
print([float(probs[i]) for i in positions])  # one probability per step

# the token-classification pipeline: one entry per token with the likelier label and its probability
tokens = pipeline("token-classification", model=model, tokenizer=tokenizer, ignore_labels=[])(text)
by_index = {{t["index"]: t for t in tokens}}
print([float(by_index[i]["score"]) if by_index[i]["entity"] == "{POSITIVE_LABEL}" else 1 - float(by_index[i]["score"])
       for i in positions])  # the same probabilities
```

## Training

{_table(hyper, ("setting", "value"))}

The whole configuration is in `train_config.yaml` next to this card.

## Final metrics (train log)

{metric_table}

`loss`, `token_accuracy`: the last optimizer step's training batch; `eval/*`: the held-out examples (step
accuracy at scored tokens); `processbench/*`: ProcessBench first-error F1, where evaluated.
"""


def write_model_card(out_dir: str | os.PathLike, backbone: str, data: DataSummary, info: dict, cfg, run: dict,
                     metrics: dict) -> Path:
    out_dir = Path(out_dir)
    path = out_dir / CARD_NAME
    text = render_model_card(str(backbone), data, info, cfg, run, metrics, folder_name=str(out_dir))
    path.write_text(text, encoding="utf-8")
    return path
