"""conf/local/default.yaml: every key its README documents takes effect, the command line
still wins over it, and the file is optional."""

from __future__ import annotations

import shutil

import pytest

from logistic_regression import config as config_module
from logistic_regression.config import compose_config, public_config

# (YAML under `# @package _global_`, dotted key, the value the composed config must hold)
DOCUMENTED = [
    (
        "tracking:\n  experiment_name: my-experiments\n",
        "tracking.experiment_name",
        "my-experiments",
    ),
    ("model:\n  max_iter: 2000\n", "model.max_iter", 2000),
    (
        "notify:\n  webhook_url: https://hooks.example.com/services/XXXX\n",
        "notify.webhook_url",
        "https://hooks.example.com/services/XXXX",
    ),
    ("storage:\n  bucket: team-artifacts\n", "storage.bucket", "team-artifacts"),
    ("seed: 7\n", "seed", 7),
    ("sweep:\n  metric: test_f1\n", "sweep.metric", "test_f1"),
    ("registry:\n  model_name: mine\n", "registry.model_name", "mine"),
]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of conf/ the test may add a local file to (the real one is never touched)."""
    root = tmp_path / "project"
    shutil.copytree(config_module.PROJECT_DIR / "conf", root / "conf")
    for stray in (root / "conf" / "local").glob("*.yaml"):
        stray.unlink()  # a developer's own local file must not leak into the test
    monkeypatch.setattr(config_module, "PROJECT_DIR", root)
    monkeypatch.delenv("LOGREG_WEBHOOK_URL", raising=False)
    return root


def value(config, dotted: str):
    node = config
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


@pytest.mark.parametrize(("yaml", "key", "expected"), DOCUMENTED, ids=[k for _, k, _ in DOCUMENTED])
def test_each_documented_local_key_takes_effect(project, yaml, key, expected):
    assert value(compose_config([]), key) != expected, "the default must differ to prove it"
    (project / "conf" / "local" / "default.yaml").write_text("# @package _global_\n" + yaml)
    assert value(compose_config([]), key) == expected


def test_the_command_line_still_wins_over_the_local_file(project):
    (project / "conf" / "local" / "default.yaml").write_text(
        "# @package _global_\nseed: 7\nmodel:\n  max_iter: 2000\n"
    )
    composed = compose_config(["seed=9", "model.max_iter=50"])
    assert (composed.seed, composed.model.max_iter) == (9, 50)


def test_a_local_webhook_is_recorded_only_as_stars(project):
    (project / "conf" / "local" / "default.yaml").write_text(
        "# @package _global_\nnotify:\n  webhook_url: https://hooks.example.com/s/SECRET\n"
    )
    assert public_config(compose_config([]))["notify"]["webhook_url"] == "***"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "note: a long note about this machine's runs, which belongs under tracking\n",
            "its settings are read as local.<setting> because its first line is not "
            "`# @package _global_`",
        ),
        (
            "# @package _global_\nnote: a long note about this machine's runs\n",
            "note is not a setting there; did you mean tracking.note?",
        ),
        (
            "# @package _global_\ntracking:\n  notes: x\n",
            "notes is not a setting there; did you mean tracking.note?",
        ),
    ],
)
def test_a_mistake_in_the_local_file_is_one_line_naming_the_key(project, text, named):
    """Hydra's own error was `In 'local/default': ConfigKeyError raised while composing
    config:` with the key on a second line, cut off."""
    from logistic_regression.errors import ConfigError

    (project / "conf" / "local" / "default.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        compose_config([])
    message = str(caught.value)
    assert message.startswith("conf/local/default.yaml: ") and named in message, message
    assert "\n" not in message
