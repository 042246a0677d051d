
# --- debris: what killed process trees leave in /dev/shm -------------------------------------------------------
import pytest as _pytest


def kill_process_group(proc) -> list[str]:
    """SIGKILL the process group of ``proc`` (started with start_new_session=True: the run and its vLLM engine,
    DataLoader workers, resource tracker), wait for it, then remove the /dev/shm files its processes held: killed,
    neither they nor their resource tracker can (vLLM's psm_ message queues are 400 MiB). Returns the names
    removed (e2h.shm: ours and unused only)."""
    import os
    import signal

    from e2h.shm import remove_unused, shm_held_by_group

    held = shm_held_by_group(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # it had already exited
        pass
    proc.wait()
    return remove_unused(held)


@_pytest.fixture(scope="session", autouse=True)
def _no_shm_debris():
    """At the end of the session, what its process tree left in /dev/shm goes: debris-named files (psm_*, sem.mp-*,
    DeepSpeed's buffers) that this process or a descendant (vLLM engines, Ray workers) mapped while the session
    ran, and that no live process maps any more. Another job's files, of this user or another, are never
    touched (e2h.shm.ShmTracker)."""
    from e2h.shm import SHM, ShmTracker, remove_unused

    if not SHM.is_dir():
        yield
        return
    tracker = ShmTracker().start()
    yield
    removed = remove_unused(tracker.stop())
    if removed:
        print(f"\nconftest: removed {len(removed)} file(s) this session left in /dev/shm: {' '.join(removed)}")


# --- policy (sampling / SFT) fixtures -------------------------------------------------------------------------


def arithmetic_problem(a: int, b: int, index: int | None = None):
    """A one-step arithmetic Problem and its step-formatted solution in e2h's text format."""
    from e2h.records import Problem
    from e2h.text_format import format_solution

    steps = [f"We add {a} and {b}.", f"{a} + {b} = {a + b}."]
    return Problem(id=f"arith/{a}+{b}" if index is None else f"arith/{index}", problem=f"What is {a} + {b}?",
                   answer=str(a + b), level=1, subject="Arithmetic",
                   solution=format_solution(steps, str(a + b)))


@_pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory):
    """A tokenizer trained on arithmetic solutions and an untrained tiny Llama (head_dim 32 for vLLM CPU).

    Returns {"path": model folder, "problems": [Problem, ...] (train set), "test": [Problem, ...]}.
    """
    from e2h.config import BackboneSection
    from e2h.text_format import format_prompt
    from e2h.world.tiny_models import save_tiny_model, train_tokenizer

    pairs = [(a, b) for a in range(20) for b in range(20)]
    problems = [arithmetic_problem(a, b) for a, b in pairs]
    texts = [format_prompt(p.problem) + p.solution for p in problems]
    tokenizer = train_tokenizer(texts, vocab_size=400)
    folder = tmp_path_factory.mktemp("tiny_policy") / "model"
    sizes = BackboneSection(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                            num_key_value_heads=1, max_position_embeddings=256)
    save_tiny_model(folder, tokenizer, sizes, seed=0)
    test = [arithmetic_problem(a, b, index=i) for i, (a, b) in enumerate([(21, 3), (7, 22), (30, 5), (12, 26),
                                                                          (25, 25), (1, 33)])]
    return {"path": str(folder), "problems": problems, "test": test, "sizes": sizes}


# --- serve (reranking service) fixtures ----------------------------------------------------------------------


@_pytest.fixture(scope="session")
def serve_tiny_prm(tmp_path_factory):
    """A random tiny PRM folder (prm.model format) whose head is NOT zero, so step scores differ."""
    import torch

    from e2h.config import BackboneSection
    from e2h.world.tiny_models import llama_config, train_tokenizer
    from prm.model import RewardModel

    texts = [f"# Question\n\nWhat is {a} + {b}?\n\n# Solution\n\nWe add {a} and {b}.\n\n# Answer\n\n{a + b}"
             for a in range(20) for b in range(20)]
    tokenizer = train_tokenizer(texts, vocab_size=400)
    torch.manual_seed(0)
    model = RewardModel.from_config(llama_config(tokenizer, BackboneSection(max_position_embeddings=512)))
    torch.nn.init.normal_(model.net.score.weight, std=0.5)
    folder = tmp_path_factory.mktemp("serve_prm") / "prm"
    model.save_pretrained(folder, tokenizer)
    return str(folder)


class _ThreadServer:
    """uvicorn on 127.0.0.1 and a free port, in a thread of the test process (the app is the real one)."""

    def __init__(self, app, settings=None) -> None:
        """``settings`` (a ServeSection): serve with e2h.serve.server's uvicorn config (its connection timeouts)."""
        import threading

        import uvicorn

        from e2h.loopback import free_port
        from e2h.serve.server import uvicorn_config

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if settings is None:
            config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        else:
            config = uvicorn_config(app, settings.model_copy(update={"host": "127.0.0.1", "port": self.port}),
                                    "warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def wait_started(self, timeout: float = 30.0) -> "_ThreadServer":
        import time

        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def wait_ready(self, timeout: float = 60.0) -> "_ThreadServer":
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while (r := httpx.get(self.url + "/readyz", timeout=5)).status_code != 200:
            if r.json().get("message") != "model is loading":  # the load failed: say why at once
                raise RuntimeError(f"server not ready: {r.json()}")
            if time.monotonic() > deadline:
                raise RuntimeError("server not ready")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@_pytest.fixture(scope="module")
def serve_thread_server():
    """Factory: start(app, settings=None) -> a running _ThreadServer; the servers a module started stop when it
    ends."""
    servers = []

    def start(app, settings=None):
        servers.append(_ThreadServer(app, settings).wait_started())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


# --- PRM fixtures (prm/, training/) ---------------------------------------------------------------------------


def prm_step_examples(count: int, seed: int = 0, wrong_fraction: float = 0.4):
    """Arithmetic StepExamples in e2h's text format: a right or wrong sum step, then the answer step.

    Wrong sums are off by 10 or more, and both the sum step and the answer step carry the step's label, so a
    tiny PRM can learn them. Example: steps ["We add 3 and 4.", "3 + 4 = 17.", "# Answer\\n\\n17"], labels
    [1.0, 0.0, 0.0].
    """
    import random

    from e2h.records import StepExample
    from e2h.text_format import answer_step

    rng = random.Random(seed)
    examples = []
    for index in range(count):
        a, b = rng.randrange(20), rng.randrange(20)
        wrong = rng.random() < wrong_fraction
        total = a + b + (rng.choice([10, 20, 30]) if wrong else 0)
        label = 0.0 if wrong else 1.0
        steps = [f"We add {a} and {b}.", f"{a} + {b} = {total}.", answer_step(str(total))]
        examples.append(StepExample(id=f"prm-{seed}-{index}", problem_id=f"arith/{a}+{b}",
                                    problem=f"What is {a} + {b}?", steps=steps, labels=[1.0, label, label],
                                    level=1, source="test"))
    return examples


@_pytest.fixture(scope="session")
def tiny_tokenizer():
    """A byte-level BPE tokenizer trained on a few hundred prompt + solution texts (separator = two 'Ċ')."""
    from e2h.text_format import format_prompt, format_solution
    from e2h.world.tiny_models import train_tokenizer

    texts = [format_prompt(e.problem) + format_solution(e.steps) for e in prm_step_examples(400, seed=99)]
    return train_tokenizer(texts, vocab_size=400)


TINY_PRM_SIZES = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, max_position_embeddings=256)


@_pytest.fixture(scope="session")
def tiny_prm_backbone(tmp_path_factory, tiny_tokenizer):
    """Folder of an untrained tiny LlamaForCausalLM + tokenizer (the backbone a PRM is trained on)."""
    from e2h.config import BackboneSection
    from e2h.world.tiny_models import save_tiny_model

    folder = tmp_path_factory.mktemp("tiny_prm_backbone") / "model"
    save_tiny_model(folder, tiny_tokenizer, BackboneSection(**TINY_PRM_SIZES), seed=0)
    return str(folder)


@_pytest.fixture(scope="session")
def tiny_prm_dir(tmp_path_factory, tiny_prm_backbone, tiny_tokenizer):
    """A saved PRM (our format) whose reward head is random, so step scores differ from 0.5 and from each other."""
    import torch

    from prm.model import RewardModel

    model = RewardModel.from_backbone(tiny_prm_backbone)
    torch.manual_seed(1)
    with torch.no_grad():
        model.net.score.weight.normal_(0.0, 0.5)
    folder = tmp_path_factory.mktemp("tiny_prm") / "prm"
    model.save_pretrained(folder, tokenizer=tiny_tokenizer)
    return str(folder)


@_pytest.fixture
def world_of_one(monkeypatch):
    """The environment of a one-process torch.distributed world on loopback (what torchrun would set)."""
    from e2h.loopback import free_port

    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(key, value)
    yield


# --- world samples (ORM data, the demo's PRM pool) -------------------------------------------------------------


def world_sample(problem, index: int, completion: str):
    """A policy sample of a world problem, as `e2h sample` writes it."""
    from e2h.records import Sample
    from e2h.text_format import format_prompt

    return Sample(problem_id=problem.id, sample_index=index, prompt=format_prompt(problem.problem),
                  completion=completion, gold_answer=problem.answer, level=problem.level)


def wrong_answer(problem) -> str:
    """The problem's reference reasoning with an answer one off."""
    reasoning = problem.solution.rsplit("\n\n# Answer\n\n", 1)[0]
    return f"{reasoning}\n\n# Answer\n\n{int(problem.answer) + 1}"
