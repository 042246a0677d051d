"""Issue #18 item 2: every config key is read by some code path (e2h.config_reads.READS, checked against the code),
`e2h config show` prints every key with its description, unknown keys fail naming the key."""

import glob

import pytest

from e2h.commands.cli import main
from e2h.config import ConfigError, RunConfig, load_config
from e2h.config_reads import READS, problems, schema_keys


def test_every_key_is_read_by_a_listed_code_path():
    assert problems() == []


def test_a_key_nobody_reads_fails(monkeypatch):
    monkeypatch.setitem(READS, "ppo.lr", ["training:batch_plan"])  # batch_plan never reads lr
    assert any("ppo.lr" in p for p in problems())
    monkeypatch.delitem(READS, "ppo.lr")
    assert "config key 'ppo.lr' is read by no code path listed in e2h.config_reads.READS" in problems()


def test_every_key_has_a_description():
    for section, info in RunConfig.model_fields.items():
        for key, field in info.annotation.model_fields.items():
            assert field.description and "\n" not in field.description, f"{section}.{key}"


def test_ppo_has_only_ppo_keys():
    ppo = RunConfig.model_fields["ppo"].annotation.model_fields
    for gone in ("epochs", "max_length", "eval_every", "log_every", "lora_rank", "global_batch_size"):
        assert gone not in ppo
    assert {"warmup_steps", "warmup_ratio", "total_epochs", "total_steps", "top_k", "whiten_padding"} <= set(ppo)


@pytest.mark.parametrize("override", ["ppo.epochs=50", "prm.log_every=1", "data.max_prm_tokens=736"])
def test_removed_keys_are_errors_naming_the_key(override):
    with pytest.raises(ConfigError, match=f"unknown config key '{override.split('=')[0]}'"):
        load_config(None, [override])


def test_config_show_prints_every_key_and_description(capsys):
    assert main(["config", "show", "configs/demo.yaml", "ppo.lr=3e-4"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for key in schema_keys():
        section, field = key.split(".")
        info = RunConfig.model_fields[section].annotation.model_fields[field]
        assert any(line.startswith(f"  {field}: ") and line.endswith(f"# {info.description}") for line in lines), key
    assert "  lr: 0.0003  #" in out


def test_config_show_unknown_key(capsys):
    assert main(["config", "show", "configs/demo.yaml", "ppo.epochs=50"]) == 2
    assert "unknown config key 'ppo.epochs'" in capsys.readouterr().err


def test_help_points_to_config_show(capsys):
    for argv in (["--help"], ["ppo", "--help"], ["train-prm", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        assert "e2h config show" in capsys.readouterr().out


@pytest.mark.parametrize("path", sorted(glob.glob("configs/*.yaml")))
def test_shipped_configs_load(path):
    assert load_config(path).run.name
