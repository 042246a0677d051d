"""The GPU check (run through bench/gpu_check.sh): PRM training and scoring throughput on a 1B-class Llama.

Everything is built here, nothing is downloaded: a byte-level BPE tokenizer trained on synthetic step-formatted
text (e2h.world.tiny_models.train_tokenizer) and a Llama built from config (hidden 2048, 16 layers, 16 heads,
intermediate 5632, vocab 32000: 0.89B parameters) with random weights, as e2h's RewardModel (token
classification, one logit per token).

1. Training, bf16, the same model initialisation and the same global batches (e2h's seeded order), measured in
   useful (non-pad) tokens per second:
   - e2h: prm/train.py's step: training.micro_batches (length-grouped), prm.dataset.collate, the RewardModel
     forward, prm.dataset.pointwise_loss, and the DeepSpeed engine of training.create_engine (ZeRO-2 config,
     bf16 with fp32 master weights, FusedAdam) when DeepSpeed is importable; without DeepSpeed (``--engine
     torch``) the same loop with torch's fused AdamW on bf16 weights, and the JSON says which ran;
   - plain: a plain-torch loop: micro-batches cut in batch order, right-padded, the HF token-classification model
     called directly, masked BCE, torch AdamW (fused on CUDA) on bf16 weights, gradient clipping 1.0.
   The first step's loss must be ln 2 in both (the reward head starts at zero), a check that both train the same
   thing. The ratio e2h / plain is printed.
2. Scoring with prm.score.PRMScorer on the saved PRM folder: P prompts x N=16 solutions each, with and without
   ``share_prompt`` (the prompt's KV cache computed once per prompt); solutions/s of both, the largest
   difference between their step scores, and the seconds spent encoding on the CPU (part of both timings).

    python bench/gpu_check.py                          # the full check (CUDA)
    python bench/gpu_check.py --device cpu --tiny      # a tiny model for a few steps: keeps the code from rotting

Writes the results as JSON to ``--out`` or, when the environment sets OUT, to ``$OUT/gpu_check.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e .` (the GPU machine has no venv)
    sys.path.insert(0, str(ROOT))

FULL = dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=16, num_key_value_heads=16,
            intermediate_size=5632, vocab_size=32000, max_position_embeddings=2048)
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
            intermediate_size=128, vocab_size=32000, max_position_embeddings=512)
WORDS = ("we", "add", "the", "two", "numbers", "then", "multiply", "by", "so", "gives", "which", "is", "and",
         "divide", "both", "sides", "of", "equation", "subtract", "from", "let", "be", "sum", "product", "square",
         "root", "hence", "therefore", "value", "total", "each", "side", "area", "triangle", "angle", "circle")


# --- data ------------------------------------------------------------------------------------------------------


def sentence(rng: random.Random, words: int) -> str:
    parts = [rng.choice(WORDS) if rng.random() < 0.8 else str(rng.randint(0, 999)) for _ in range(words)]
    return " ".join(parts).capitalize() + "."


def synthetic_problem(rng: random.Random, words: int) -> str:
    return " ".join(sentence(rng, rng.randint(6, 14)) for _ in range(max(1, words // 10)))


def synthetic_steps(rng: random.Random, steps: int, words_per_step: int) -> list[str]:
    return [sentence(rng, max(3, int(rng.gauss(words_per_step, words_per_step / 3)))) for _ in range(steps)]


def build_tokenizer(seed: int, vocab_size: int):
    """e2h's tiny byte-level BPE trained on the synthetic text: words become single tokens, as in real BPEs."""
    from e2h.world.tiny_models import train_tokenizer

    rng = random.Random(seed)
    texts = [synthetic_problem(rng, 40) + "\n\n" + "\n\n".join(synthetic_steps(rng, 4, 12)) for _ in range(300)]
    return train_tokenizer(texts, vocab_size=vocab_size)


def training_examples(count: int, seed: int, tiny: bool):
    """StepExamples with a PRM800K-like length mix (every step labelled 0/1 at random)."""
    from e2h.records import StepExample
    from e2h.text_format import format_prompt

    rng = random.Random(seed)
    out = []
    for i in range(count):
        problem_words = rng.randint(5, 20) if tiny else rng.randint(30, 120)
        n_steps = rng.randint(2, 4) if tiny else rng.randint(3, 14)
        steps = synthetic_steps(rng, n_steps, 6 if tiny else 28)
        out.append(StepExample(id=f"bench/{i}", problem_id=f"p{i}", problem=format_prompt(synthetic_problem(
            rng, problem_words)), steps=steps, labels=[float(rng.random() < 0.7) for _ in steps]))
    return out


def scoring_groups(prompts: int, samples: int, seed: int, tiny: bool) -> list[tuple[str, list[str]]]:
    """(prompt, N completions) in e2h's text format: steps, then '# Answer' and an answer."""
    from e2h.text_format import format_prompt, format_solution

    rng = random.Random(seed)
    groups = []
    for _ in range(prompts):
        prompt = format_prompt(synthetic_problem(rng, 20 if tiny else 200))
        completions = []
        for _ in range(samples):
            steps = synthetic_steps(rng, rng.randint(2, 4) if tiny else rng.randint(3, 9), 6 if tiny else 25)
            completions.append(format_solution(steps, str(rng.randint(0, 99))))
        groups.append((prompt, completions))
    return groups


# --- training --------------------------------------------------------------------------------------------------


def new_reward_model(sizes: dict, seed: int, device, dtype, pad_id: int = 0):
    import torch
    from transformers import LlamaConfig

    from prm.model import RewardModel

    config = LlamaConfig(**sizes, tie_word_embeddings=False, pad_token_id=pad_id)
    torch.manual_seed(seed)
    with torch.device(device):  # built in place: a 1B model initialised on the CPU takes a minute
        model = RewardModel.from_config(config)
    return model.to(dtype=dtype)


class TorchEngine:
    """The part of DeepSpeed's engine API prm/train.py uses (forward, backward, step with gradient accumulation
    and clipping), over torch AdamW: e2h's step where DeepSpeed is not installed."""

    def __init__(self, model, lr: float, accum: int, clip: float, fused: bool):
        import torch

        self.module, self.accum, self.clip, self.micro = model, accum, clip, 0
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, fused=fused)

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def train(self):
        self.module.train()

    def backward(self, loss):
        (loss / self.accum).backward()  # DeepSpeed scales by 1/accumulation steps the same way

    def step(self):
        import torch

        self.micro += 1
        if self.micro % self.accum == 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)


def sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def run_steps(step_fn, plan, warmup: int, device) -> dict:
    """Time ``step_fn(indices)`` over the plan's global batches after ``warmup`` untimed ones."""
    losses, tokens, padded, seconds = [], 0, 0, 0.0
    for n, indices in enumerate(plan):
        sync(device)
        began = time.perf_counter()
        loss, useful, total = step_fn(indices)
        sync(device)
        elapsed = time.perf_counter() - began
        losses.append(loss)
        if n >= warmup:
            tokens, padded, seconds = tokens + useful, padded + total, seconds + elapsed
    return {"steps_timed": len(plan) - warmup, "seconds": round(seconds, 3), "useful_tokens": tokens,
            "padded_tokens": padded, "padding_fraction": round(1 - tokens / max(padded, 1), 4),
            "useful_tokens_per_s": round(tokens / max(seconds, 1e-9), 1), "first_loss": losses[0],
            "last_loss": losses[-1]}


def e2h_training(encoded, lengths, plan, micro, accum, args, device, engine_kind: str) -> dict:
    import torch

    import training
    from e2h.config import TrainSection
    from prm.dataset import collate, pointwise_loss

    precision = "bf16" if device.type == "cuda" else "fp32"
    if engine_kind == "deepspeed":
        # as prm/train.py: float32 weights handed to DeepSpeed, which keeps fp32 masters and computes in bf16
        model = new_reward_model(args.sizes, args.seed, device, torch.float32, args.pad_id)
        cfg = TrainSection(lr=args.lr, micro_batch_size=micro, global_batch_size=micro * accum, precision=precision,
                           warmup_ratio=0.0, epochs=1.0)
        dist = training.init_distributed()
        sched = training.Schedule(steps_per_epoch=len(plan), total_steps=len(plan), warmup_steps=0)
        engine = training.create_engine(model, cfg, dist, sched)
    else:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        model = new_reward_model(args.sizes, args.seed, device, dtype, args.pad_id)
        dist = training.DistContext(rank=0, world_size=1, local_rank=0, device=device)
        engine = TorchEngine(model, args.lr, accum, 1.0, fused=device.type == "cuda")
    engine.train()

    def step(indices):
        loss_sum, useful, total = 0.0, 0, 0
        for mb in training.micro_batches(indices, dist, micro, accum, lengths):
            batch = {k: v.to(device) for k, v in collate([encoded[i] for i in mb], args.pad_id).items()}
            logits, _ = engine(batch["input_ids"], attention_mask=batch["attention_mask"])
            loss = pointwise_loss(logits, batch["labels"], batch["weights"])
            engine.backward(loss)
            engine.step()
            loss_sum += float(loss.detach())
            useful += int(batch["attention_mask"].sum())
            total += batch["input_ids"].numel()
        return loss_sum / accum, useful, total

    result = run_steps(step, plan, args.warmup, device)
    result["engine"] = engine_kind
    result["peak_memory_gib"] = peak_memory(device)
    del engine, model
    release(device)
    return result


def plain_training(encoded, plan, micro, accum, args, device) -> dict:
    import torch
    import torch.nn.functional as F

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    net = new_reward_model(args.sizes, args.seed, device, dtype, args.pad_id).net  # the same initial weights as e2h's run
    net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, fused=device.type == "cuda")

    def step(indices):
        loss_sum, useful, total = 0.0, 0, 0
        for a in range(accum):
            rows = [encoded[i] for i in indices[a * micro:(a + 1) * micro]]  # batch order, no length grouping
            width = max(len(r.input_ids) for r in rows)
            ids = torch.full((len(rows), width), args.pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            labels = torch.zeros((len(rows), width))
            weights = torch.zeros((len(rows), width))
            for r, row in enumerate(rows):
                n = len(row.input_ids)
                ids[r, :n], mask[r, :n] = torch.tensor(row.input_ids), 1
                labels[r, :n], weights[r, :n] = torch.tensor(row.labels), torch.tensor(row.weights)
            ids, mask, labels, weights = ids.to(device), mask.to(device), labels.to(device), weights.to(device)
            logits = net(input_ids=ids, attention_mask=mask).logits.squeeze(-1).float()
            loss = (F.binary_cross_entropy_with_logits(logits, labels, reduction="none") * weights).sum() / weights.sum()
            (loss / accum).backward()
            loss_sum += float(loss.detach())
            useful += int(mask.sum())
            total += ids.numel()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss_sum / accum, useful, total

    result = run_steps(step, plan, args.warmup, device)
    result["engine"] = "torch AdamW" + (" (fused)" if device.type == "cuda" else "")
    result["peak_memory_gib"] = peak_memory(device)
    del net, optimizer
    release(device)
    return result


def peak_memory(device) -> float | None:
    import torch

    if device.type != "cuda":
        return None
    peak = torch.cuda.max_memory_allocated(device) / 2**30
    torch.cuda.reset_peak_memory_stats(device)
    return round(peak, 2)


def release(device) -> None:
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# --- scoring ---------------------------------------------------------------------------------------------------


def scoring(tokenizer, groups, args, device) -> dict:
    import torch

    from prm.score import PRMScorer

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = new_reward_model(args.sizes, args.seed + 1, device, dtype, args.pad_id)
    with torch.no_grad():  # a non-zero head, so scores differ between steps and the comparison means something
        torch.nn.init.normal_(model.net.score.weight, std=0.05)
    folder = Path(tempfile.mkdtemp(prefix="e2h-gpu-check-prm-"))
    try:
        model.save_pretrained(folder, tokenizer)
        del model
        release(device)
        scorer = PRMScorer(folder, device=str(device), dtype=dtype, batch_tokens=args.batch_tokens)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    results, scores = {}, {}
    # the CPU part of scoring (splitting, tokenizing, the step-tag check), which no GPU speeds up
    from e2h.text_format import split_solution

    began = time.perf_counter()
    for prompt, completions in groups:
        for completion in completions:
            scorer.encode(prompt, split_solution(completion))
    results["encode_seconds"] = round(time.perf_counter() - began, 3)
    for share in (False, True):
        scorer.share_prompt = share
        scorer.score(*groups[0])  # warm-up: kernels, allocator
        sync(device)
        began = time.perf_counter()
        scores[share] = [scorer.score(prompt, completions) for prompt, completions in groups]
        sync(device)
        seconds = time.perf_counter() - began
        solutions = sum(len(c) for _, c in groups)
        results["share_prompt" if share else "no_sharing"] = {
            "solutions": solutions, "seconds": round(seconds, 3),
            "solutions_per_s": round(solutions / max(seconds, 1e-9), 2)}
    flat = [(a, b) for g0, g1 in zip(scores[False], scores[True]) for s0, s1 in zip(g0, g1) for a, b in zip(s0, s1)]
    if not flat or any(len(s0) != len(s1) for g0, g1 in zip(scores[False], scores[True]) for s0, s1 in zip(g0, g1)):
        raise RuntimeError("scoring with and without prompt sharing scored different numbers of steps")
    results["steps_scored"] = len(flat)
    results["max_abs_score_diff"] = max(abs(a - b) for a, b in flat)
    results["speedup_share_prompt"] = round(results["share_prompt"]["solutions_per_s"]
                                            / max(results["no_sharing"]["solutions_per_s"], 1e-9), 3)
    results["prompt_tokens_mean"] = round(sum(len(scorer.tokenizer(p)["input_ids"]) for p, _ in groups)
                                          / len(groups), 1)
    results["batch_tokens"] = args.batch_tokens
    del scorer
    release(device)
    return results


# --- main ------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--tiny", action="store_true", help="a tiny model, few steps (the CPU test)")
    parser.add_argument("--engine", choices=("auto", "deepspeed", "torch"), default="auto",
                        help="e2h's step on DeepSpeed (auto: when importable and on CUDA) or on torch AdamW")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per training run (warm-up included)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first steps")
    parser.add_argument("--micro", type=int, default=None, help="micro-batch size (rows)")
    parser.add_argument("--accum", type=int, default=None, help="micro-batches per optimizer step")
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--prompts", type=int, default=None, help="scoring prompts (N=--samples solutions each)")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--batch-tokens", type=int, default=None, help="PRMScorer token budget per forward")
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON file (default: $OUT/gpu_check.json when OUT is set)")
    args = parser.parse_args(argv)
    defaults = (dict(steps=4, warmup=1, micro=2, accum=2, max_length=256, prompts=2, batch_tokens=2048) if args.tiny
                else dict(steps=20, warmup=5, micro=8, accum=4, max_length=1024, prompts=32, batch_tokens=32768))
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.sizes = TINY if args.tiny else FULL
    if args.warmup >= args.steps:
        parser.error("--warmup must be smaller than --steps")
    return args


def main(argv=None) -> dict:
    import torch

    import transformers

    import training
    from prm.dataset import encode_all

    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: --device cuda but torch sees no GPU (use --device cpu --tiny on a CPU)")
    engine_kind = args.engine
    if engine_kind == "auto":
        try:
            import deepspeed  # noqa: F401
            engine_kind = "deepspeed" if device.type == "cuda" else "torch"
        except ImportError:
            engine_kind = "torch"
    began = time.perf_counter()
    report: dict = {"device": str(device), "tiny": args.tiny, "torch": torch.__version__,
                    "transformers": transformers.__version__}
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
        torch.backends.cuda.matmul.allow_tf32 = True

    tokenizer = build_tokenizer(args.seed, vocab_size=300 if args.tiny else 4000)
    args.pad_id = tokenizer.pad_token_id
    micro, accum = args.micro, args.accum
    examples = training_examples(micro * accum * args.steps, args.seed, args.tiny)
    encoded, dropped = encode_all(tokenizer, examples, label_positions="every_token", max_length=args.max_length)
    if dropped or len(encoded) < micro * accum * args.steps:
        # the plan needs every global batch full; raise --max-length rather than train on fewer rows
        raise SystemExit(f"gpu_check: {dropped} examples did not fit --max-length {args.max_length}")
    lengths = [len(e) for e in encoded]
    plan = [training.global_batch(s, len(encoded), args.steps, micro * accum, args.seed) for s in range(args.steps)]
    report["model"] = {**args.sizes, "params": None}
    report["data"] = {"examples": len(encoded), "mean_tokens": round(sum(lengths) / len(lengths), 1),
                      "max_tokens": max(lengths), "micro_batch": micro, "accumulation": accum,
                      "global_batch": micro * accum}
    from transformers import LlamaConfig

    with torch.device("meta"):  # the parameter count without allocating anything
        from transformers import AutoModelForTokenClassification

        shell = AutoModelForTokenClassification.from_config(LlamaConfig(**args.sizes, num_labels=1))
    report["model"]["params"] = sum(p.numel() for p in shell.parameters())
    del shell
    print(f"gpu_check: {report['model']['params'] / 1e6:.0f}M-parameter PRM on {report.get('gpu', device)}; "
          f"{len(encoded)} examples, mean {report['data']['mean_tokens']} tokens", flush=True)

    try:
        e2h = e2h_training(encoded, lengths, plan, micro, accum, args, device, engine_kind)
    except Exception as err:  # noqa: BLE001
        if engine_kind != "deepspeed" or args.engine == "deepspeed":
            raise
        # e.g. no nvcc for DeepSpeed's FusedAdam JIT build: still measure e2h's step, on torch, and say why
        report["deepspeed_error"] = f"{type(err).__name__}: {err}"[:2000]
        print(f"  DeepSpeed failed ({report['deepspeed_error'][:200]}); e2h's step on torch AdamW instead", flush=True)
        release(device)
        e2h = e2h_training(encoded, lengths, plan, micro, accum, args, device, "torch")
    print(f"  e2h step ({e2h['engine']}): {e2h['useful_tokens_per_s']:.0f} useful tokens/s, padding "
          f"{e2h['padding_fraction']:.1%}", flush=True)
    plain = plain_training(encoded, plan, micro, accum, args, device)
    print(f"  plain torch loop: {plain['useful_tokens_per_s']:.0f} useful tokens/s, padding "
          f"{plain['padding_fraction']:.1%}", flush=True)
    for name, result in (("e2h", e2h), ("plain", plain)):
        # the reward head starts at zero: p = 0.5 everywhere, so the first loss is ln 2 whatever the batch
        if not math.isclose(result["first_loss"], math.log(2), abs_tol=1e-3):
            raise RuntimeError(f"{name}: first loss {result['first_loss']:.5f} != ln 2: the runs do not start "
                               f"from the same zero-head model")
    ratio = e2h["useful_tokens_per_s"] / max(plain["useful_tokens_per_s"], 1e-9)
    report["train"] = {"e2h": e2h, "plain": plain, "ratio_e2h_over_plain": round(ratio, 3)}
    print(f"  training ratio e2h / plain: {ratio:.2f}x", flush=True)

    groups = scoring_groups(args.prompts, args.samples, args.seed + 7, args.tiny)
    score = scoring(tokenizer, groups, args, device)
    report["score"] = score
    print(f"  scoring: {score['no_sharing']['solutions_per_s']:.1f} solutions/s without prefix sharing, "
          f"{score['share_prompt']['solutions_per_s']:.1f} with ({score['speedup_share_prompt']:.2f}x); "
          f"scores agree within {score['max_abs_score_diff']:.2g}", flush=True)
    report["seconds"] = round(time.perf_counter() - began, 1)

    out = args.out or (os.path.join(os.environ["OUT"], "gpu_check.json") if os.environ.get("OUT") else None)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2) + "\n")
        print(f"  wrote {out}")
    return report


if __name__ == "__main__":
    main()
