import glob

import pytest

from e2h.config import ConfigError, RunConfig, load_config, save_config


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_and_yaml_and_override(tmp_path):
    path = write(tmp_path, "prm:\n  lr: 3.0e-5\nrun:\n  name: x\n")
    cfg = load_config(path, ["prm.lr=1e-5", "sample.n=8", "data.train_levels=[1,2]"])
    assert cfg.prm.lr == pytest.approx(1e-5)  # the override wins over the file
    assert cfg.sample.n == 8
    assert cfg.data.train_levels == [1, 2]
    assert cfg.run.name == "x"
    assert cfg.sft.lr == RunConfig().sft.lr  # untouched sections keep their defaults


@pytest.mark.parametrize(
    "text, overrides, message",
    [
        ("prm:\n  lrr: 1\n", [], "unknown config key 'prm.lrr'"),
        ("", ["prm.lrr=1"], "unknown config key 'prm.lrr'"),
        ("", ["nosuch.x=1"], "unknown config key 'nosuch'"),
        ("", ["prm.lr=fast"], "config key 'prm.lr'"),
        ("", ["sample.n=[1]"], "config key 'sample.n'"),
        ("", ["prm.kind=rm"], "config key 'prm.kind'"),
        ("", ["prm.lr"], "not of the form"),
        ("", ["prm.lr.x=1"], "config key 'prm.lr'"),
        ("prm:\n  lr: 1.0\n", ["prm.lr.x=1"], "'prm.lr' is not a section"),
        ("- a\n- b\n", [], "top level must be a mapping"),
        ("prm: [\n", [], "invalid YAML"),
    ],
)
def test_config_errors_name_the_key(tmp_path, text, overrides, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load_config(write(tmp_path, text), overrides)


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("no/such/file.yaml")


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["prm.lr=7e-6", "run.out_dir=somewhere"])
    saved = save_config(cfg, tmp_path / "run")
    assert load_config(saved) == cfg


@pytest.mark.parametrize("path", sorted(glob.glob("configs/*.yaml")))
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.run.name


def test_paper_configs_carry_reference_hyperparameters():
    seven = load_config("configs/llemma-7b-prm800k-level1-3.yaml")
    big = load_config("configs/llemma-34b-prm800k-level1-3.yaml")
    assert (seven.prm.lr, big.prm.lr, seven.sft.lr, big.sft.lr) == (2e-5, 1e-5, 2e-5, 1e-5)
    assert (seven.prm.epochs, seven.sft.epochs, seven.prm.global_batch_size) == (2, 3, 128)
    assert (seven.sample.temperature, seven.sample.top_k) == (0.7, 20)
    assert (seven.ppo.kl_coef, seven.ppo.process_reward_upper_bound, seven.ppo.gamma, seven.ppo.lam) == (0.01, 0.5, 1, 1)
    assert load_config("configs/llemma-7b-prm800k-level1-5.yaml").data.train_levels == [1, 2, 3, 4, 5]


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _leaves(sub, f"{prefix}{key}.").items()}
    return {prefix[:-1]: tree}


def _changed(base: str, variant: str) -> dict:
    one, two = (_leaves(load_config(f"configs/{name}.yaml").model_dump()) for name in (base, variant))
    return {key: two[key] for key in one if one[key] != two[key]}


@pytest.mark.parametrize("size", ["7b", "34b"])
def test_oprm_variants_differ_from_their_prm800k_config_only_in_the_outcome_data(size):
    base = f"llemma-{size}-prm800k-level1-3"
    assert _changed(base, f"llemma-{size}-oprm-level1-3") == {
        "run.name": f"llemma-{size}-oprm-level1-3", "run.out_dir": f"runs/llemma-{size}-oprm-level1-3",
        "data.orm_samples": f"runs/{base}/samples_train", "sft.output_dir": f"runs/{base}/sft",
        "prm.kind": "oprm", "prm.max_length": 1024}


def test_metamath_shepherd_variant_differs_only_in_its_data_sft_and_ppo():
    changed = _changed("llemma-7b-prm800k-level1-3", "llemma-7b-metamath-shepherd-level1-3")
    assert changed == {
        "run.name": "llemma-7b-metamath-shepherd-level1-3", "run.out_dir": "runs/llemma-7b-metamath-shepherd-level1-3",
        "data.sft_source": "metamath", "data.prm_source": "math_shepherd", "data.metamath_include_gsm": True,
        "data.shepherd_match": "prefix",
        "sft.lr": 8e-6, "sft.max_length": 1024, "sft.precision": "fp32",
        "ppo.lr": 5e-6, "ppo.step_batch_size": 256, "ppo.temperature": 1.2, "ppo.kl_coef": 0.002}
    cfg = load_config("configs/llemma-7b-metamath-shepherd-level1-3.yaml")
    assert (cfg.data.metamath, cfg.data.math_shepherd) == ("meta-math/MetaMathQA", "peiyi9979/Math-Shepherd")
