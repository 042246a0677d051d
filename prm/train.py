"""Train a process reward model with DeepSpeed (`e2h train-prm`): the stage-one recipe, top to bottom.

    e2h train-prm -c configs/demo.yaml                                   # one process (CPU: gloo, fp32)
    torchrun --nproc_per_node 2 -m prm.train -c configs/demo.yaml        # N processes, ZeRO from prm.deepspeed_config
    e2h train-prm -c configs/demo.yaml --fresh                           # delete the checkpoints, start over

Resume is the default: a run whose output holds a checkpoint of the same config hash (the ``prm`` section less
paths/logging/checkpoint cadence, the data file's checksum, the backbone, the seed) continues from it; one of
another config is an error naming both hashes. SIGTERM / SIGUSR1 (Slurm's ``--signal``, preemption) save a
checkpoint after the current optimizer step and exit with code 75 (training.Stopped); rerunning resumes.

Data: StepExample JSONL (``prm.data``, default ``<run>/data/prm_train.jsonl``). PRM, ORM and OPRM differ only
in that data (``prm.kind`` is recorded in the saved model). Backbone: ``prm_backbone.path`` (a causal LM folder).
Output: ``<run>/prm`` (HF weights + tokenizer + prm_config.json + a model card, README.md: prm/model_card.py),
``checkpoints/`` (DeepSpeed state, resumed by default), ``tensorboard/``, ``train_log.jsonl``. The folder loads with
plain transformers too (``AutoModelForTokenClassification``, ``pipeline("token-classification")``: two labels,
p("correct") is the step score; prm/model.py).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import training
from e2h.config import RunConfig, add_config_arguments, config_from_args, save_config
from e2h.layout import RunLayout
from e2h.manifest import file_checksum
from e2h.records import StepExample, load_records
from prm.dataset import collate, encode_all, pointwise_loss, step_accuracy_counts
from prm.model import RewardModel
from prm.model_card import DataSummary, final_metrics, write_model_card
from prm.preflight import check_batch, preflight_dataset
from prm.processbench import evaluate_model_on_processbench

log = logging.getLogger(__name__)


def split_eval(examples: list[StepExample], eval_size: int, seed: int) -> tuple[list[StepExample], list]:
    """Hold out ``eval_size`` examples chosen by a seeded permutation (whole problems stay on one side)."""
    if eval_size <= 0:
        return examples, []
    problem_ids = sorted({e.problem_id for e in examples})
    order = training.epoch_order(len(problem_ids), epoch=10_000, seed=seed)
    held, count = set(), 0
    for index in order:
        if count >= eval_size:
            break
        held.add(problem_ids[index])
        count += sum(e.problem_id == problem_ids[index] for e in examples)
    return [e for e in examples if e.problem_id not in held], [e for e in examples if e.problem_id in held]


def evaluate_steps(engine, encoded, pad_id: int, device, batch_size: int = 16) -> dict[str, float]:
    """Step accuracy at boundary tokens of labelled steps, and the mean loss, over held-out examples.
    Every rank runs the same forwards (ZeRO-3 gathers parameters collectively)."""
    import torch

    engine.module.eval()
    correct = total = 0
    loss_sum = 0.0
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start:start + batch_size]
            batch = {k: v.to(device) for k, v in collate(chunk, pad_id).items()}
            logits, _ = engine(batch["input_ids"], attention_mask=batch["attention_mask"],
                               solution_start=batch["solution_start"])
            loss_sum += float(pointwise_loss(logits, batch["labels"], batch["weights"])) * len(chunk)
            boundary = torch.zeros_like(batch["weights"], dtype=torch.bool)
            for row, e in enumerate(chunk):
                for step, label in enumerate(e.step_labels):
                    if label is not None and e.boundaries[step] < len(e):
                        boundary[row, e.boundaries[step]] = True
            c, t = step_accuracy_counts(logits, batch["labels"], batch["weights"], boundary)
            correct, total = correct + c, total + t
    engine.module.train()
    return {"eval/step_accuracy": correct / max(total, 1), "eval/loss": loss_sum / max(len(encoded), 1)}


def resolve_paths(cfg: RunConfig, data: str | None, output_dir: str | None, backbone: str | None):
    data_path = Path(data) if data else RunLayout(cfg).prm_data
    out = Path(output_dir) if output_dir else RunLayout(cfg).prm_model
    backbone_path = backbone or cfg.prm_backbone.path
    if backbone_path is None:
        raise ValueError("no PRM backbone: set prm_backbone.path (a causal LM folder) or pass --backbone")
    if not data_path.exists():
        raise FileNotFoundError(f"PRM data not found: {data_path} (run `e2h data prepare` first)")
    return data_path, out, backbone_path


def prm_config_hash(cfg: RunConfig, data_path: Path, backbone_path: str) -> str:
    """What decides the trained PRM: the prm section (less paths, logging, checkpoint cadence), the data's
    checksum, the backbone and the seed. Stored with each checkpoint; resume needs the same hash."""
    return training.config_hash({"prm": training.training_keys(cfg.prm), "data": file_checksum(data_path),
                                 "backbone": str(backbone_path), "seed": cfg.run.seed})


@dataclass
class _PRMData:
    """The training examples as the model reads them (tokenised with offsets, too-long ones dropped)."""

    examples: list[StepExample]
    encoded: list
    eval_encoded: list
    dropped: int
    checked: int  # examples whose step tags the preflight verified

    @property
    def lengths(self) -> list[int]:
        return [len(e) for e in self.encoded]


def train_prm(cfg: RunConfig, data: str | None = None, output_dir: str | None = None, backbone: str | None = None,
              resume: bool = False, max_steps: int | None = None, fresh: bool = False) -> dict:
    """Train, resuming from ``<out>/checkpoints`` when they hold this config's checkpoint (the default);
    ``fresh`` deletes them first, ``resume`` requires one. Raises :class:`training.Stopped` after saving when
    SIGTERM/SIGUSR1 arrive."""
    import torch  # heavy: the CLI imports this module for --help

    data_path, out, backbone_path = resolve_paths(cfg, data, output_dir, backbone)
    key = prm_config_hash(cfg, data_path, backbone_path)
    plan = training.resume_plan(out, key, fresh=fresh, require=resume)  # before any model is built
    dist = training.init_distributed()
    if plan == "fresh":
        training.start_fresh(out, dist)
    torch.manual_seed(cfg.run.seed)

    tokenizer, model = _build_model(cfg, backbone_path)
    lora = cfg.prm.lora_rank > 0
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0
    data = _prepare_data(cfg, data_path, tokenizer, dist)
    micro, accum = training.batch_plan(cfg.prm, dist.world_size)
    engine, sched, start_step = _start_engine(cfg, model, data, dist, plan, out, lora)
    stop_step = sched.total_steps if max_steps is None else min(sched.total_steps, max_steps)
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out, "train_config.yaml")
        training.truncate_train_log(out, start_step)  # rows a killed run wrote after its last checkpoint
        if start_step:
            log.info("resuming from step %d (config hash %s)", start_step, key)
        log.info("PRM data: %d train (%d dropped as too long, %d preflighted), %d eval; %d steps, micro %d x "
                 "accum %d x %d ranks", len(data.encoded), data.dropped, data.checked, len(data.eval_encoded),
                 sched.total_steps, micro, accum, dist.world_size)

    def save_hf(state_dict, folder):
        model.save_pretrained(folder, tokenizer=tokenizer, state_dict=state_dict)

    client = {"num_examples": len(data.encoded), "seed": cfg.run.seed, "config_hash": key}
    logger = training.TrainLogger(dist, out, sched.total_steps, initial_step=start_step, desc="train-prm",
                                  report_to=cfg.prm.report_to, config=cfg.model_dump(mode="json"))
    last = _train_loop(cfg, engine, sched, data, dist, pad_id, (micro, accum), logger, out, client, save_hf, lora,
                       start_step, stop_step)
    final = {"steps": stop_step, "train_examples": len(data.encoded), "dropped": data.dropped, **last}
    if stop_step > start_step or not (out / "checkpoints" / "latest").exists():
        training.save_checkpoint(engine, out, stop_step, client, save_hf, trainable_only=lora)
    # The final model goes where score/serve look, also after --max-steps (a short run is still a run).
    if data.eval_encoded:
        final.update(evaluate_steps(engine, data.eval_encoded, pad_id, dist.device))
    training.save_final(engine, out, save_hf)
    if cfg.prm.processbench_eval_size > 0 and dist.is_main:
        final.update(evaluate_model_on_processbench(str(out), cfg.data.processbench, cfg.prm.processbench_eval_size))
    if dist.is_main:
        logger.log(stop_step, {k: v for k, v in final.items() if k.startswith(("eval/", "processbench/"))},
                   advance=False)
    logger.close()
    if dist.is_main:  # README.md: what the PRM is, how to score with e2h and with plain transformers
        data_summary = DataSummary.of(data_path, data.examples, train=len(data.encoded), dropped=data.dropped,
                                      held_out=len(data.eval_encoded))
        write_model_card(out, backbone_path, data_summary, model.info, cfg,
                         {"steps": stop_step, "world_size": dist.world_size},
                         final_metrics(training.read_train_log(out)) or final)
    return final


def _build_model(cfg: RunConfig, backbone_path):
    """Tokenizer and a fresh zero head on the backbone; the paper freezes embeddings and norms."""
    from transformers import AutoTokenizer  # heavy: see train_prm

    pcfg = cfg.prm
    tokenizer = AutoTokenizer.from_pretrained(backbone_path)
    model = RewardModel.from_backbone(backbone_path, kind=pcfg.kind, label_positions=pcfg.label_positions,
                                      likelihood_feature=pcfg.likelihood_feature)
    if pcfg.freeze_embeddings_and_norms:
        model.freeze_embeddings_and_norms()
    if pcfg.freeze_backbone:
        model.freeze_backbone()
    if pcfg.lora_rank > 0:  # adapters on the backbone + the full head; saving merges them (prm/model.py)
        model.apply_lora(pcfg.lora_rank, pcfg.lora_alpha, pcfg.lora_dropout, pcfg.lora_target_modules)
    return tokenizer, model


def _prepare_data(cfg: RunConfig, data_path, tokenizer, dist) -> _PRMData:
    """Tokenise with offsets, drop examples whose labelled step does not fit, preflight the step tags."""
    pcfg = cfg.prm
    examples = load_records(data_path, StepExample)
    train_examples, eval_examples = split_eval(examples, pcfg.eval_size, cfg.run.seed)
    encoded, dropped = encode_all(tokenizer, train_examples, pcfg.label_positions, pcfg.max_length)
    eval_encoded, _ = encode_all(tokenizer, eval_examples, pcfg.label_positions, pcfg.max_length)
    checked = preflight_dataset(tokenizer, train_examples, encoded, pcfg.label_positions, limit=pcfg.preflight_limit)
    if checked == 0 and dist.is_main:
        log.warning("the step-tag preflight checked no example (prm.preflight_limit=%s): nothing verifies that the "
                    "PRM is trained at the tokens scoring will read", pcfg.preflight_limit)
    return _PRMData(examples, encoded, eval_encoded, dropped, checked)


def _start_engine(cfg: RunConfig, model, data: _PRMData, dist, plan: str, out: Path, lora: bool):
    """Schedule and DeepSpeed engine; on resume, the checkpoint's weights and step. Returns (engine, sched, step)."""
    pcfg = cfg.prm
    sched = training.schedule(pcfg, len(data.encoded) // pcfg.global_batch_size)
    engine = training.create_engine(model, pcfg, dist, sched)
    start_step = 0
    if plan == "resume":
        state = training.resume(engine, out, trainable_only=lora)
        if state is None:
            raise RuntimeError(f"{training.checkpoint_root(out)}: the checkpoint vanished while loading")
        start_step = int(state["step"])
        if state.get("num_examples") != len(data.encoded):
            raise RuntimeError(f"resume: the checkpoint was trained on {state.get('num_examples')} examples, "
                               f"the data now has {len(data.encoded)}")
    return engine, sched, start_step


def _train_loop(cfg: RunConfig, engine, sched, data: _PRMData, dist, pad_id: int, batching: tuple[int, int], logger,
                out: Path, client: dict, save_hf, lora: bool, start_step: int, stop_step: int) -> dict:
    """Optimizer steps start_step..stop_step with logging, evaluation and checkpoints; the last step's metrics.
    SIGTERM / SIGUSR1: every rank saves after the current step and raises training.Stopped."""
    pcfg = cfg.prm
    engine.train()
    last = {}
    with training.GracefulStop() as stop:
        for step in range(start_step, stop_step):
            last = _train_step(cfg, engine, sched, data, dist, pad_id, batching, step)
            done = step + 1
            if data.eval_encoded and pcfg.eval_every and done % pcfg.eval_every == 0:
                last.update(evaluate_steps(engine, data.eval_encoded, pad_id, dist.device))
            logger.log(done, last)
            saved = pcfg.checkpoint_every and done % pcfg.checkpoint_every == 0 and done < stop_step
            if saved:
                training.save_checkpoint(engine, out, done, client, save_hf, trainable_only=lora)
            if done < stop_step and stop.requested():  # collective: every rank saves, then every rank leaves
                if not saved:
                    training.save_checkpoint(engine, out, done, client, save_hf, trainable_only=lora)
                logger.close()
                training.barrier()
                raise training.Stopped(done, stop.reason, out)
    return last


def _train_step(cfg: RunConfig, engine, sched, data: _PRMData, dist, pad_id: int, batching: tuple[int, int],
                step: int) -> dict:
    """One optimizer step over the step's global batch (``batching``: micro-batch size and accumulation steps);
    its metrics, summed over ranks."""
    pcfg = cfg.prm
    micro, accum = batching
    began = time.perf_counter()
    indices = training.global_batch(step, len(data.encoded), sched.steps_per_epoch, pcfg.global_batch_size,
                                    cfg.run.seed)
    loss_sum, tokens, correct, total = 0.0, 0, 0, 0
    for mb in training.micro_batches(indices, dist, micro, accum, data.lengths):
        batch = {k: v.to(dist.device) for k, v in collate([data.encoded[i] for i in mb], pad_id).items()}
        check_batch(batch["weights"], where=f"step {step + 1}")
        logits, _ = engine(batch["input_ids"], attention_mask=batch["attention_mask"],
                           solution_start=batch["solution_start"])
        loss = pointwise_loss(logits, batch["labels"], batch["weights"])
        engine.backward(loss)
        engine.step()
        loss_sum += float(loss.detach())
        tokens += int(batch["attention_mask"].sum())
        c, t = step_accuracy_counts(logits.detach(), batch["labels"], batch["weights"])
        correct, total = correct + c, total + t
    loss_sum, tokens, correct, total = training.sum_across_ranks([loss_sum, tokens, correct, total])
    seconds = time.perf_counter() - began
    return {
        "loss": loss_sum / (accum * dist.world_size),
        "lr": pcfg.lr * training.lr_multiplier(step, sched.total_steps, sched.warmup_steps, pcfg.min_lr_ratio),
        "token_accuracy": correct / max(total, 1),
        "tokens_per_s": tokens / max(seconds, 1e-9),
    }


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--data", help="StepExample JSONL (default prm.data or <run>/data/prm_train.jsonl)")
    parser.add_argument("--backbone", help="causal LM folder (default prm_backbone.path)")
    parser.add_argument("--output-dir", help="default prm.output_dir or <run>/prm")
    training.add_resume_arguments(parser)
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (schedule unchanged)")


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        summary = train_prm(config_from_args(args), data=args.data, output_dir=args.output_dir,
                            backbone=args.backbone, resume=args.resume, max_steps=args.max_steps, fresh=args.fresh)
    except training.Stopped as err:  # SIGTERM / SIGUSR1: checkpoint saved, exit 75 so a requeue resumes
        return training.report_stopped(err)
    if int(os.environ.get("RANK", "0")) == 0:
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":  # torchrun --nproc_per_node N -m prm.train -c CONFIG
    import argparse
    import sys

    _parser = argparse.ArgumentParser(prog="python -m prm.train", description=__doc__.split("\n")[0])
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
