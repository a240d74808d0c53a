"""`compare RUN_A RUN_B`: real runs in a real SQLite store, compared section by section
(parameters, code, data, environment, metrics), as text and as an HTML page."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser
from pathlib import Path

from conftest import git, recorded_run
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_breast_cancer

from logistic_regression import packages, pipeline, provenance
from logistic_regression.__main__ import main as cli
from logistic_regression.config import PROJECT_DIR
from logistic_regression.importer import import_file
from logistic_regression.tracking.baselines import mark_baseline


def trained(config, C: float = 0.5, data_input: str | None = None) -> str:
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, C=C))
    if data_input:
        config = dataclasses.replace(
            config, data=dataclasses.replace(config.data, input=data_input)
        )
    return pipeline.run(config).run_id


def compared(capsys, *args: str) -> list[str]:
    capsys.readouterr()  # what training printed
    assert cli(["compare", *args]) == 0
    return capsys.readouterr().out.splitlines()


def two_commits(folder: Path) -> tuple[str, str]:
    """A small repository whose second commit changes one file and adds another."""
    folder.mkdir()
    git(folder, "init", "-q", "-b", "main")
    (folder / "model.py").write_text("C = 0.5\n")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "first")
    first = git(folder, "rev-parse", "HEAD")
    (folder / "model.py").write_text("C = 1.0\n")
    (folder / "notes.txt").write_text("why\n")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "second")
    return first, git(folder, "rev-parse", "HEAD")


def test_a_parameter_a_commit_and_a_package_that_differ_are_each_shown(
    config, tmp_path, capsys, monkeypatch, closed_port
):
    """Two real runs, C=0.5 and C=1.0 on the same data; then B's code is said to be a later
    commit of another repository (cloned read-only to list the files) and its
    environment.txt holds another scikit-learn."""
    a, b = trained(config, 0.5), trained(config, 1.0)
    client = MlflowClient()
    repo = tmp_path / "elsewhere"
    first, second = two_commits(repo)
    for run_id, commit in ((a, first), (b, second)):
        client.set_tag(run_id, provenance.GIT_COMMIT, commit)
        client.set_tag(run_id, provenance.GIT_REPO_URL, str(repo))
        client.set_tag(run_id, provenance.GIT_DIRTY, "false")
    lock = packages.lock(packages.current(PROJECT_DIR))
    sklearn = packages.parse(lock).packages["scikit-learn"]
    client.log_text(b, lock.replace(f"scikit-learn=={sklearn}", "scikit-learn==0.0.1"),
                    "environment.txt")  # fmt: skip

    out = compared(capsys, a, b)
    text = "\n".join(out)
    assert out[0] == f"compare run A {a} (breast_cancer-target-C0.5-l2) with run B {b} " + (
        "(breast_cancer-target-C1-l2)"
    )
    assert out[3] == ("differences in parameters, code, environment, metrics; the same: data")
    assert "  model.C: 0.5 -> 1.0" in out
    assert "model.penalty" not in text  # the same: shown with --all only
    assert f"  commit: {first} -> {second}" in out
    assert (
        f"  files changed between the commits (in {repo}): 2 files changed, 2 insertions(+), "
        "1 deletion(-)"
    ) in out, text
    assert "    M  model.py" in out and "    A  notes.txt" in out
    assert f"  scikit-learn: {sklearn} -> 0.0.1" in out
    assert re.search(r"^environment: 1 of \d+ differ", text, re.M)
    assert "data: the same (" in text

    history = {
        run_id: {m.step: m.value for m in client.get_metric_history(run_id, "cv_roc_auc_per_fold")}
        for run_id in (a, b)
    }
    differences = [history[b][k] - history[a][k] for k in range(1, 6)]
    ahead = sum(d > 0 for d in differences)
    behind = sum(d < 0 for d in differences)
    (folds,) = [line for line in out if line.startswith("    roc_auc: mean ")]
    assert folds.startswith(f"    roc_auc: mean {sum(differences) / 5:+.6f}, std ")
    assert f"B better in {ahead} of 5 folds, worse in {behind}" in folds
    assert "an indication only" in text
    metrics = client.get_run(b).data.metrics
    (row,) = [line for line in out if line.split()[:1] == ["test_log_loss"]]
    assert row.split()[2] == f"{metrics['test_log_loss']:.6f}"

    every = "\n".join(compared(capsys, a, b, "--all"))
    assert "  model.penalty: l2" in every and "  model.C: 0.5 -> 1.0" in every
    assert "  tree: clean" in every and "accuracy: mean +0.000000" in every

    # Recorded somewhere that cannot be cloned: read in this checkout's repository, when
    # it holds both commits; else not known, and said so.
    gone = f"git://127.0.0.1:{closed_port}/gone.git"
    for run_id in (a, b):
        client.set_tag(run_id, provenance.GIT_REPO_URL, gone)
        client.set_tag(run_id, provenance.SOURCE_NAME, gone)
    monkeypatch.chdir(repo)
    assert "    A  notes.txt" in compared(capsys, a, b)
    monkeypatch.chdir(tmp_path)
    assert (
        "  files changed between the commits: not known (neither this checkout's repository "
        "nor a clone of a repository the runs recorded holds both commits)"
    ) in compared(capsys, a, b)


def test_runs_on_other_data_show_input_digest_rows_and_class_balance(config, tmp_path, capsys):
    frame = load_breast_cancer(as_frame=True).frame.iloc[:500]
    table = tmp_path / "fewer.csv"
    frame.to_csv(table, index=False)
    a, b = trained(config), trained(config, data_input=str(table))
    out = compared(capsys, a, b)
    assert out[3].startswith("differences in parameters, data, metrics")
    assert f"  input: breast_cancer -> {table}" in out
    assert "  rows: 569 -> 500" in out
    counts = frame["target"].value_counts()
    assert (
        "  class balance: 0: 212 (37.3%), 1: 357 (62.7%) -> "
        + (f"0: {counts[0]} ({counts[0] / 500:.1%}), 1: {counts[1]} ({counts[1] / 500:.1%})")
        in out
    )
    assert any(line.startswith("  digest: ") and " -> " in line for line in out)
    assert "  not compared fold by fold: the folds hold other rows (digest differs)" in out


def test_identical_runs_and_a_run_with_itself_say_they_are_the_same(config, capsys):
    a, b = trained(config), trained(config)
    out = compared(capsys, a, b)
    assert out[3] == "no differences in parameters, code, data, environment, metrics"
    assert not any(" -> " in line for line in out)
    itself = compared(capsys, a, a)
    assert itself[3] == (
        "A and B are the same run: no differences in parameters, code, data, environment, metrics"
    )


def test_baseline_compares_a_run_with_its_experiments_baseline(capsys):
    base = recorded_run("exp", "base", {"model.C": "0.5"}, {"test_roc_auc": 0.90})
    other = recorded_run("exp", "other", {"model.C": "2.0"}, {"test_roc_auc": 0.95})
    assert cli(["compare", other, "--baseline"]) == 2
    assert "experiment 'exp' has no baseline" in capsys.readouterr().err
    mark_baseline(base)
    out = compared(capsys, other, "--baseline")
    assert out[0] == f"compare run A {base} (base) with run B {other} (other)"
    assert "its experiment's baseline" in out[1]
    assert "  model.C: 0.5 -> 2.0" in out
    assert any(line.split()[:4] == ["test_roc_auc", "0.900000", "0.950000", "+0.050000"]
               for line in out)  # fmt: skip
    assert compared(capsys, other, "", "--baseline=true")[0] == out[0]  # as the MLproject passes it
    assert cli(["compare", base, "--baseline"]) == 2
    assert "is itself the baseline" in capsys.readouterr().err
    assert cli(["compare", base, other, "--baseline"]) == 2


def test_unknown_or_deleted_runs_are_one_line_and_exit_2(capsys):
    run = recorded_run("exp", "here", {"model.C": "1"})
    assert cli(["compare", run, "f00"]) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line] == [
        f"error: no run with id 'f00' in {MlflowClient().tracking_uri}"
    ]
    MlflowClient().delete_run(run)
    assert cli(["compare", run, run]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: run {run} is deleted; restore it")


def test_an_imported_run_says_what_it_did_not_record(tmp_path, capsys):
    sheet = tmp_path / "past.csv"
    sheet.write_text("model.C,test_roc_auc\nparameter,metric\n0.5,0.91\n")
    import_file(sheet, "exp")
    (imported,) = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("exp").experiment_id]
    )
    config = "model:\n  C: 0.5\n  penalty: l2\nseed: 42\n"
    recorded = recorded_run(
        "exp", "kit", {"model.C": "0.5"}, {"test_roc_auc": 0.93}, texts={"config.yaml": config},
        tags={provenance.GIT_COMMIT: "a" * 40, provenance.GIT_DIRTY: "false"},
    )  # fmt: skip
    out = compared(capsys, imported.info.run_id, recorded)
    assert "  A: FINISHED in experiment 'exp'; imported from past.csv (row 3)" in out
    assert "  model.penalty: not recorded -> l2" in out and "  seed: not recorded -> 42" in out
    assert "model.C" not in "\n".join(out)  # the same in both: 0.5
    assert f"  commit: not recorded -> {'a' * 40}" in out
    assert "environment: not recorded by either run" in out
    assert "  input: not recorded" in compared(capsys, imported.info.run_id, recorded, "--all")


def test_two_configurations_of_a_sweep_are_compared_as_runs(capsys):
    from logistic_regression import train

    assert train.main(["-m", "model.C=0.1,1", "evaluation.cv_folds=3"]) == 0
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("logistic-regression").experiment_id])
    children = sorted(
        (r for r in runs if "mlflow.parentRunId" in r.data.tags),
        key=lambda r: float(r.data.params["model.C"]),
    )
    parent = children[0].data.tags["mlflow.parentRunId"]
    out = compared(capsys, children[0].info.run_id, children[1].info.run_id)
    assert (
        f"  A: FINISHED in experiment 'logistic-regression'; a configuration of sweep run {parent}"
        in out
    )
    assert "  model.C: 0.1 -> 1.0" in out
    assert any(line.startswith("    roc_auc: mean ") for line in out), "the same folds: paired"


class Checked(HTMLParser):
    """Every element closed in order (void ones aside), and no script anywhere."""

    VOID = {"meta", "br", "col", "img", "link", "hr", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "script" or any(name.startswith("on") for name, _ in attrs):
            self.problems.append(f"script: <{tag} {attrs}>")
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if not self.open or self.open.pop() != tag:
            self.problems.append(f"</{tag}> closes nothing open")


def test_the_html_page_escapes_user_text_hides_secrets_and_stacks_on_a_phone(tmp_path, capsys):
    hostile = '<script>alert("x")</script>'
    secret = "s3://AKIAEXAMPLE:hunter2hunter2@bucket/data.csv"
    a = recorded_run("exp", "plain", {"tracking.note": "fine", "input_path": "s3://bucket/a.csv"})
    b = recorded_run("exp", hostile, {"tracking.note": hostile, "input_path": secret})
    page = tmp_path / "compare.html"
    out = "\n".join(compared(capsys, a, b, "--html", str(page)))
    html = page.read_text()
    assert "hunter2" not in out and "hunter2" not in html and "s3://***@bucket" in html
    assert hostile not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    checker = Checked()
    checker.feed(html)
    assert checker.problems == [] and checker.open == []
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert html.count("<table") == html.count('<table class="stack">') > 0
    assert re.search(r"@media \(max-width: 40rem\) \{\s*table\.stack, [^}]*display: block", html)
    assert 'data-label="B">&lt;script&gt;' in html  # each value labelled when stacked


def test_a_reproduction_is_named_and_what_neither_run_recorded_is_said(capsys):
    original = recorded_run("exp", "first", {"model.C": "1.0"}, {"test_f1": 0.9})
    again = recorded_run(
        "exp", "first", {"model.C": "1.0"}, {"test_f1": 0.9},
        tags={provenance.REPRODUCTION_OF: original, "reproduce.verdict": "reproduced"},
    )  # fmt: skip
    out = compared(capsys, original, again)
    assert out[2] == (
        f"  B: FINISHED in experiment 'exp'; a reproduction of run {original} (reproduced)"
    )
    assert out[3] == (
        "no differences in parameters, code, data, environment, metrics "
        "(recorded by neither run: code, data, environment)"
    )
