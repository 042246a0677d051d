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
