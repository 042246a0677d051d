"""Sampling throughput: vLLM vs ``transformers.generate``, same tiny model, same prompts, same run.

    bash scripts/loopback.sh python bench/bench_sampling.py                    # tiny Llama built on the fly
    bash scripts/loopback.sh python bench/bench_sampling.py --model runs/demo/sft --prompts 128 --n 16

Three ways to produce ``prompts x n`` samples of up to ``--max-tokens`` tokens (T 0.7, top-k 20):

- ``vllm``: :class:`policy.vllm_engine.VLLMGenerator` (one engine, all requests at once, per-request seeds);
- ``hf_seeded``: :class:`policy.hf_generator.HFGenerator`, the fallback backend (one sequence per call, so each
  sample has its own seed and the output does not depend on batching);
- ``hf_batched``: plain batched ``model.generate`` (left padding, ``num_return_sequences=n``, ``--hf-batch``
  prompts per call), the strongest transformers baseline, without reproducible per-request seeds.

Engine start and a warm-up call are excluded from the timings. Prints samples/s and tokens/s per backend and
the ratio of vLLM to each transformers baseline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_tiny_policy(directory: Path, hidden: int, layers: int, heads: int) -> str:
    from e2h.config import BackboneSection
    from e2h.text_format import format_prompt, format_solution
    from e2h.world.tiny_models import save_tiny_model, train_tokenizer

    texts = [format_prompt(f"What is {a} + {b}?") + format_solution([f"We add {a} and {b}."], str(a + b))
             for a in range(30) for b in range(30)]
    sizes = BackboneSection(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                            num_attention_heads=heads, num_key_value_heads=max(1, heads // 2),
                            max_position_embeddings=512)
    return save_tiny_model(directory / "policy", train_tokenizer(texts, 512), sizes, seed=0)


def timed(label: str, fn, samples_expected: int) -> dict:
    start = time.perf_counter()
    outputs = fn()
    seconds = time.perf_counter() - start
    completions = [c for per_prompt in outputs for c in per_prompt]
    assert len(completions) == samples_expected, (label, len(completions))
    tokens = sum(c.num_tokens for c in completions)
    return {"backend": label, "samples": len(completions), "tokens": tokens, "seconds": seconds,
            "samples_per_s": len(completions) / seconds, "tokens_per_s": tokens / seconds}


def hf_batched(model_path: str, prompts: list[str], params, batch: int):
    """Plain batched transformers.generate: left-padded prompts, n sequences each."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from policy.generator import Completion

    tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    eos = tokenizer.eos_token_id

    def run():
        torch.manual_seed(0)
        results = []
        with torch.inference_mode():
            for i in range(0, len(prompts), batch):
                enc = tokenizer(prompts[i:i + batch], return_tensors="pt", padding=True)
                out = model.generate(**enc, do_sample=True, temperature=params.temperature, top_k=params.top_k,
                                     top_p=params.top_p, max_new_tokens=params.max_tokens,
                                     num_return_sequences=params.n, pad_token_id=tokenizer.pad_token_id,
                                     eos_token_id=eos)
                new = out[:, enc.input_ids.shape[1]:].tolist()
                for p in range(len(new) // params.n):
                    per = []
                    for ids in new[p * params.n:(p + 1) * params.n]:
                        pad = tokenizer.pad_token_id
                        ids = ids[: ids.index(eos) + 1] if eos in ids else [t for t in ids if t != pad]
                        per.append(Completion(text=tokenizer.decode(ids, skip_special_tokens=True),
                                              num_tokens=len(ids)))
                    results.append(per)
        return results

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a causal-LM folder (default: build a tiny Llama)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)  # head_dim 32: vLLM CPU's smallest
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--hf-batch", type=int, default=8, help="prompts per batched generate call")
    parser.add_argument("--skip-hf-seeded", action="store_true", help="it is the slowest; skip it on big runs")
    args = parser.parse_args()

    from policy.generator import GenerationParams, request_seed
    from policy.hf_generator import HFGenerator
    from policy.vllm_engine import VLLMGenerator

    with tempfile.TemporaryDirectory(prefix="bench-sampling-") as tmp:
        model = args.model or build_tiny_policy(Path(tmp), args.hidden, args.layers, args.heads)
        prompts = [f"# Question\n\nWhat is {i % 30} + {(7 * i) % 30}?\n\n# Solution\n\n" for i in range(args.prompts)]
        seeds = [request_seed(0, f"bench/{i}") for i in range(args.prompts)]
        params = GenerationParams(n=args.n, temperature=0.7, top_k=20, max_tokens=args.max_tokens)
        expected = args.prompts * args.n
        warm = GenerationParams(n=1, temperature=0.7, top_k=20, max_tokens=4)

        results = []
        start = time.perf_counter()
        vllm = VLLMGenerator(model, max_model_len=512, kv_cache_gib=0.25)
        engine_start = time.perf_counter() - start
        vllm.generate(prompts[:2], warm, seeds[:2])
        results.append(timed("vllm", lambda: vllm.generate(prompts, params, seeds), expected))
        vllm.close()

        batched = hf_batched(model, prompts, params, args.hf_batch)
        batched()  # warm-up (first-call allocations)
        results.append(timed(f"hf_batched(b={args.hf_batch})", batched, expected))
        if not args.skip_hf_seeded:
            seeded = HFGenerator(model)
            seeded.generate(prompts[:1], warm, seeds[:1])
            results.append(timed("hf_seeded", lambda: seeded.generate(prompts, params, seeds), expected))

    print(f"\nmodel: {model if args.model else f'tiny Llama hidden {args.hidden}, {args.layers} layers'}; "
          f"{args.prompts} prompts x n={args.n}, max {args.max_tokens} tokens; vLLM engine start "
          f"{engine_start:.1f} s (not timed below)")
    print(f"{'backend':<18}{'samples':>8}{'tokens':>9}{'seconds':>9}{'samples/s':>11}{'tokens/s':>10}")
    for r in results:
        print(f"{r['backend']:<18}{r['samples']:>8}{r['tokens']:>9}{r['seconds']:>9.2f}"
              f"{r['samples_per_s']:>11.1f}{r['tokens_per_s']:>10.0f}")
    for r in results[1:]:
        print(f"vLLM / {r['backend']}: {results[0]['tokens_per_s'] / r['tokens_per_s']:.1f}x tokens/s, "
              f"{results[0]['samples_per_s'] / r['samples_per_s']:.1f}x samples/s")


if __name__ == "__main__":  # vLLM spawns its engine core: the guard is required
    main()
