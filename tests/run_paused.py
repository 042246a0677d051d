"""Run ``python -m MODULE ARGS...`` with a pause after each finished unit of work, so a test can kill the run
between two of them (the resume tests):

    python tests/run_paused.py SECONDS policy.sample -c ...     # sleeps after each shard is written
    python tests/run_paused.py SECONDS policy.sft -c ...        # sleeps after each checkpoint is saved
"""

import runpy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as `python -m` from the repository root would


def pause_after(owner, name: str, seconds: float) -> None:
    original = getattr(owner, name)

    def paused(*args, **kwargs):
        result = original(*args, **kwargs)
        time.sleep(seconds)
        return result

    setattr(owner, name, paused)


def main() -> None:
    seconds, module = float(sys.argv[1]), sys.argv[2]
    if module == "policy.sample":
        from policy.shards import ShardStore

        pause_after(ShardStore, "write", seconds)
    elif module == "policy.sft":
        import training

        pause_after(training, "save_checkpoint", seconds)
    else:
        raise SystemExit(f"run_paused.py: no pause point known for {module}")
    sys.argv = [module, *sys.argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
