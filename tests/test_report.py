"""The HTML report: complete, self-contained, and safe with any user text."""

import dataclasses
import re

import numpy as np
import pytest

from logistic_regression import report_charts
from logistic_regression.background import Background
from logistic_regression.report import ReportInput, plots, render, warm_up
from logistic_regression.sweep_summary import Child, render_summary

HOSTILE = '<script>alert("x")</script> & <img src=x onerror=1>'


@pytest.fixture
def report_input():
    folds = [
        {
            "accuracy": 0.9 + k / 100,
            "roc_auc": 0.95,
            "log_loss": 0.2,
            "f1": 0.9,
            "precision": 0.91,
            "recall": 0.89,
        }
        for k in range(3)
    ]
    return ReportInput(
        run_id="abc123",
        run_name="logreg-C0.5-l2",
        note=HOSTILE,
        params={"model.C": "0.5", "data.input": HOSTILE},
        folds=folds,
        test={
            "accuracy": 0.93,
            "roc_auc": 0.987,
            "log_loss": 0.15,
            "f1": 0.94,
            "precision": 0.95,
            "recall": 0.93,
        },
        confusion=[[40, 2], [3, 69]],
        labels=["0", "1"],
        roc_curve=(np.array([0, 0.1, 1.0]), np.array([0, 0.9, 1.0])),
        pr_curve=(np.array([1.0, 0.9, 0.0]), np.array([0.6, 0.95, 1.0])),  # recall falls
        coefficients=[(HOSTILE, -2.5), ("radius", 1.5), ("texture", 0.5)],
        provenance={
            "mlflow.source.git.commit": "deadbeef",
            "mlflow.source.git.dirty": "false",
            "input_digest": "f00d",
        },
        packages={"mlflow": "3.17.2", "scikit-learn": "1.9.1"},
        warnings=["ConvergenceWarning: lbfgs failed to converge"],
        positive_label="1",
        intercept=[("", 0.3)],
        experiment="kit-experiments",
        train_rows=456,
        class_counts={"0": 212, "1": 357},
    )


def test_report_shows_every_section(report_input):
    html = render(report_input)
    for expected in (
        "abc123",
        "logreg-C0.5-l2",
        "Cross-validation (3 folds)",
        "mean ± std",
        "0.9100 ± 0.0082",
        "Metrics",
        "0.9870",
        "Confusion matrix",
        ">69 <small>",
        "Largest coefficients",
        "radius",
        "deadbeef",
        "f00d",
        "scikit-learn",
        "ConvergenceWarning",
    ):
        assert expected in html, expected


def test_user_text_is_escaped(report_input):
    html = render(report_input)
    assert "<script>" not in html
    assert "onerror=1>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;img" in html


def test_report_is_self_contained(report_input):
    html = render(report_input)
    assert not re.search(r"<(script|link|iframe|object|embed)\b", html, re.I)
    assert not re.search(r"url\(|@import|https?://", html, re.I)
    sources = re.findall(r'src="([^"]*)"', html)
    assert len(sources) == 3
    assert all(src.startswith("data:image/png;base64,") for src in sources)


def decoded(uri: str) -> np.ndarray:
    """The pixels of a `data:image/png;base64,` URI."""
    import base64
    import io

    from matplotlib.image import imread

    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    return imread(io.BytesIO(base64.b64decode(uri.removeprefix(prefix))), format="png")


def test_background_worker_draws_the_same_charts_as_inline(report_input):
    with Background(warm_up) as worker:
        from_worker = worker.submit(plots, report_input)()
    inline = plots(report_input)
    assert from_worker.keys() == inline.keys() == {"roc", "pr", "coefficients"}
    for name, uri in inline.items():
        image = decoded(uri)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert np.array_equal(decoded(from_worker[name]), image), name
    # The charts are really different pictures (so the comparison above means something).
    pixels = {name: decoded(uri).tobytes() for name, uri in inline.items()}
    assert len(set(pixels.values())) == 3
    # And the content depends on the input: another curve is another picture.
    other = dataclasses.replace(report_input, roc_curve=(np.array([0, 0.5, 1.0]),) * 2)
    assert not np.array_equal(decoded(plots(other)["roc"]), decoded(inline["roc"]))


def test_a_multiclass_report_names_its_classes_and_draws_no_binary_curves(report_input):
    names = ["accuracy", "roc_auc", "log_loss", "f1_macro", "f1_weighted"]
    multiclass = dataclasses.replace(
        report_input,
        folds=[dict.fromkeys(names, 0.8) for _ in range(3)],
        test=dict.fromkeys(names, 0.75),
        confusion=[[5, 1, 0], [0, 6, 1], [1, 0, 7]],
        labels=["setosa", "versicolor", "virginica"],
        roc_curve=None,
        pr_curve=None,
        positive_label=None,
        intercept=[("setosa", 0.1), ("versicolor", 0.2), ("virginica", -0.3)],
        class_counts={"setosa": 50, "versicolor": 50, "virginica": 50},
        coefficients=[("petal width [setosa]", -2.0), ("colour_red [virginica]", 1.0)],
        preprocessing={
            "rows": 150,
            "columns_in": 5,
            "columns_out": 7,
            "numeric": ["petal width"],
            "scaled": True,
            "categorical": ["colour"],
            "imputed": {"colour": 4},
            "categories": {"colour": {"categories": 3, "infrequent": 1}},
        },
    )
    html = render(multiclass)
    assert "3 classes:" in html and "multinomial" in html
    for label in multiclass.labels:
        assert f"<th>{label}</th>" in html and f'<th class="text">{label}</th>' in html
    assert "f1_macro" in html and ">recall<" not in html
    assert "150 rows and 5 feature columns in; 7 columns out" in html
    assert (
        '<td class="text">colour</td><td class="text">categorical</td><td>4</td><td>3</td>' in html
    )
    (alt,) = re.findall(r'<img alt="([^"]*)"', html)
    assert alt.startswith("Largest coefficients: petal width [setosa] -2.0000;")
    assert "towards the class in brackets" in html


def test_the_report_leads_with_a_summary_then_provenance_then_metrics(report_input):
    html = render(
        dataclasses.replace(
            report_input, provenance={**report_input.provenance, "mlflow.source.git.dirty": "true"}
        )
    )
    body = html.split("<body>", 1)[1]
    summary = body.split("<h2>", 1)[0]
    for fact in (
        "CV roc_auc",
        "0.9500 ± 0.0000",  # the headline metric (roc_auc) over the folds
        "Test roc_auc",
        "0.9870",
        "456 train",
        "114 test",  # the confusion matrix's rows
        "37.3%",  # 212 of 569 rows are class 0
        "kit-experiments",
        "deadbee<",  # the short commit
        ">dirty<",
        "stored after this was written",  # the status when written: not an invented FINISHED
        "UTC",
    ):
        assert fact in summary, fact
    assert "FINISHED" not in summary
    assert body.index("<h2>Provenance") < body.index("<h2>Metrics") < body.index("<h2>Curves")
    clean = render(report_input)
    assert ">clean<" in clean.split("<h2>", 1)[0] and ">dirty<" not in clean


def test_the_headline_metric_is_the_configured_one(report_input):
    html = render(dataclasses.replace(report_input, headline="accuracy"))
    summary = html.split("<body>", 1)[1].split("<h2>", 1)[0]
    assert "CV accuracy" in summary and "0.9100 ± 0.0082" in summary
    assert "Test accuracy" in summary and "0.9300" in summary


def test_the_confusion_matrix_names_classes_shows_shares_and_the_positive_class(report_input):
    html = render(
        dataclasses.replace(
            report_input, labels=["benign", "malignant"], positive_label="malignant"
        )
    )
    matrix = html.split('<table class="confusion">', 1)[1].split("</table>", 1)[0]
    assert "<th>benign</th><th>malignant</th>" in matrix
    assert '<th class="text">benign</th>' in matrix and '<th class="text">malignant</th>' in matrix
    # Each cell: its count and its share of the actual class's rows (40 + 2, 3 + 69).
    for cell in ("40 <small>(95.2%)", "2 <small>(4.8%)", "3 <small>(4.2%)", "69 <small>(95.8%)"):
        assert cell in matrix, cell
    assert matrix.count("background: rgba(") == 4  # shaded by share
    caption = html.split("<h3>Confusion matrix", 1)[1].split("<table", 1)[0]
    assert "the positive class is <code>malignant</code>" in caption


def drawn_figures(report, monkeypatch) -> dict:
    """The matplotlib figures `plots` draws, by chart name (instead of their PNGs)."""
    from logistic_regression import report_charts

    figures: list = []
    with monkeypatch.context() as patched:
        patched.setattr(report_charts, "png_data_uri", lambda f: figures.append(f) or "x")
        names = list(plots(report))
    return dict(zip(names, figures, strict=True))


def test_the_precision_recall_chart_shows_average_precision_and_prevalence(
    report_input, monkeypatch
):
    from sklearn.metrics import average_precision_score, precision_recall_curve

    rng = np.random.default_rng(0)
    truth = rng.random(200) < 0.3
    score = truth * 0.4 + rng.random(200)
    precision, recall, _ = precision_recall_curve(truth, score)
    real = dataclasses.replace(report_input, pr_curve=(recall, precision))
    ap = average_precision_score(truth, score)
    assert report_charts.average_precision(real.pr_curve) == pytest.approx(ap)

    axes = drawn_figures(real, monkeypatch)["pr"].axes[0]
    assert axes.get_xlim() == (0, 1) and axes.get_ylim() == (0, 1)
    legend = [t.get_text() for t in axes.get_legend().get_texts()]
    prevalence = 72 / 114  # the positive class's row of the confusion matrix
    assert legend == [f"AP {ap:.4f}", f"prevalence {prevalence:.3f}"]
    flat = [line.get_ydata() for line in axes.get_lines() if len(set(line.get_ydata())) == 1]
    assert any(ys[0] == pytest.approx(prevalence) for ys in flat if len(ys))
    html = render(real)
    assert f'Average precision <span class="nowrap">{ap:.4f}</span>' in html
    assert "prevalence of <code>1</code>" in html and f"{prevalence:.3f}" in html


def test_the_coefficient_chart_says_which_way_and_shows_the_intercept(report_input, monkeypatch):
    axes = drawn_figures(report_input, monkeypatch)["coefficients"].axes[0]
    assert axes.get_xlabel() == "← towards 0    coefficient    towards 1 →\nintercept +0.300"
    html = render(report_input)
    caption = html.split("<h2>Coefficients", 1)[1].split("</figcaption>", 1)[0]
    assert "towards <code>1</code>" in caption and "towards <code>0</code>" in caption
    assert 'towards <code>0</code>. Intercept: <span class="nowrap">+0.3000</span>' in caption


def test_the_coefficients_are_not_repeated_in_a_table(report_input):
    html = render(report_input)
    assert '<td class="text">radius</td>' not in html  # the chart shows all three
    assert "<details><summary>All" not in html
    alt = re.search(r'<img alt="(Largest coefficients[^"]*)"', html).group(1)
    assert "radius +1.5000" in alt  # for screen readers: what the chart shows
    # More coefficients than the chart shows: the full list, folded away.
    folded = render(dataclasses.replace(report_input, top_coefficients=2))
    details = folded.split("<details><summary>All 3 coefficients</summary>", 1)[1]
    assert '<td class="text">texture</td>' in details.split("</details>", 1)[0]


def test_parameters_are_grouped_and_infrastructure_is_folded_away(report_input):
    params = {
        "model.C": "0.5",
        "data.input": "cancer.csv",
        "preprocessing.scale": "True",
        "evaluation.cv_folds": "5",
        "storage.kind": "s3",
        "tracking.uri": "http://***@host",
        "notify.timeout_s": "5.0",
    }
    html = render(dataclasses.replace(report_input, params=params))
    section = html.split("<h2>Parameters</h2>", 1)[1].split("<h2>", 1)[0]
    shown, folded = section.split("<details>", 1)
    assert shown.index("<h3>model</h3>") < shown.index("model.C")
    assert shown.index("<h3>data</h3>") < shown.index("preprocessing.scale")
    assert shown.index("<h3>evaluation</h3>") < shown.index("evaluation.cv_folds")
    for key in ("storage.kind", "tracking.uri", "notify.timeout_s"):
        assert key not in shown and key in folded, key
    assert "Infrastructure settings (3: notify, storage, tracking)" in folded


def test_the_report_reads_on_a_phone(report_input):
    """The rules a narrow screen needs (the browser test measures the result)."""
    html = render(report_input)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert re.search(r"img \{[^}]*max-width: 100%", html)
    assert re.search(r"\.scroll \{[^}]*overflow-x: auto", html)
    assert re.search(r"\.nowrap \{[^}]*white-space: nowrap", html)
    tables = html.count("<table")
    assert tables == html.count('<div class="scroll"><table'), "every table scrolls sideways"
    assert '<td class="num nowrap">0.9100 ± 0.0082</td>' in html


def test_charts_are_sharp_on_high_density_screens(report_input):
    """PNGs at twice the pixels of the size they are laid out at."""
    html = render(report_input)
    for match in re.finditer(r'src="([^"]+)" width="(\d+)" height="(\d+)"', html):
        pixels = decoded(match.group(1)).shape
        assert pixels[1] >= 1.5 * int(match.group(2)) and pixels[0] >= 1.5 * int(match.group(3))


def test_user_text_in_the_charts_alt_text_cannot_leave_the_attribute(report_input):
    html = render(report_input)
    assert 'alt="Largest coefficients: &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;' in html


def sweep_children(*, failed: bool = False) -> list[Child]:
    def child(run_id, c, value, status="FINISHED", error=""):
        return Child(
            run_id=run_id,
            name=f"logreg-C{c}-l2",
            status=status,
            params={"model.C": c, "model.penalty": "l2"},
            value=value,
            error=error,
            experiment_id="7",
            std=None if value is None else 0.0046,
            test=None if value is None else 0.99,
        )

    children = [child("a" * 32, "0.1", 0.9912), child("b" * 32, "1.0", 0.9957)]
    if failed:
        children.append(child("c" * 32, "-1.0", None, "FAILED", "model.C=-1.0 is not allowed"))
    return children


def test_the_sweep_summary_is_titled_by_the_sweep_and_marks_the_best_row(report_input):
    html, best, swept = render_summary(
        "p" * 32, sweep_children(), "cv_roc_auc_mean", "maximize", title="sweep model.C=0.1,1"
    )
    assert best is not None and best.run_id == "b" * 32 and swept == ["model.C"]
    assert "<title>sweep model.C=0.1,1</title>" in html and "<h1>sweep model.C=0.1,1</h1>" in html
    rows = re.findall(r"<tr class=\"([^\"]*)\">\s*<td[^>]*>(.*?)</td>", html, re.S)
    assert [(cls, "★ best" in cell) for cls, cell in rows] == [("best", True), ("", False)]
    assert '<td class="num nowrap">0.9957 ± 0.0046</td>' in html
    assert "<th>test_roc_auc</th>" in html and '<td class="num nowrap">0.9900</td>' in html
    assert ">error<" not in html, "nothing failed: no error column"
    assert "a" * 32 in html and "<a " not in html, "no UI known: run ids, no links"
    # The shared look: the same style block as the run report.
    style = re.search(r"<style>.*?</style>", html, re.S).group(0)
    assert style == re.search(r"<style>.*?</style>", render(report_input), re.S).group(0)
    assert '<meta name="viewport"' in html


def test_the_sweep_summary_shows_errors_only_when_something_failed():
    html, _, _ = render_summary(
        "p" * 32, sweep_children(failed=True), "cv_roc_auc_mean", "maximize"
    )
    assert '<th class="text">error</th>' in html
    assert '<td class="text error">model.C=-1.0 is not allowed</td>' in html
    assert '<span class="badge failed">FAILED</span>' in html


def test_the_sweep_summary_links_each_run_and_report_in_the_ui():
    html, _, _ = render_summary(
        "p" * 32,
        sweep_children(),
        "cv_roc_auc_mean",
        "maximize",
        ui_url="http://mlflow.example:5000/",
    )
    run = "http://mlflow.example:5000/#/experiments/7/runs/" + "b" * 32
    assert f'<a href="{run}">logreg-C1.0-l2</a>' in html
    assert f'<a href="{run}/artifacts/report.html">report</a>' in html
    # Self-contained apart from those links: nothing loads from anywhere.
    assert not re.search(r"<(script|link|iframe|object|embed)\b", html, re.I)
    assert set(re.findall(r'href="(https?://[^"/]*)', html)) == {"http://mlflow.example:5000"}
    assert not re.search(r'src="https?:', html) and "url(" not in html


def test_the_sweep_summary_escapes_run_names():
    (first, second) = sweep_children()
    hostile = dataclasses.replace(second, name=HOSTILE)
    html, _, _ = render_summary("p" * 32, [first, hostile], "cv_roc_auc_mean", "maximize")
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_the_report_leaves_out_what_does_not_apply_to_the_run():
    """`model.l1_ratio 0.5` on an l2 run, an empty `data.positive_label`, and a row of
    zeros per numeric column in the preprocessing table read as if they mattered."""
    from logistic_regression.report import parameter_groups

    groups, _ = parameter_groups(
        {"model.penalty": "l2", "model.l1_ratio": "0.5", "model.C": "1.0",
         "data.positive_label": "", "data.target": "y"}
    )  # fmt: skip
    assert groups["model"] == {"model.penalty": "l2", "model.C": "1.0"}
    assert groups["data"] == {"data.target": "y"}
    elastic, _ = parameter_groups({"model.penalty": "elasticnet", "model.l1_ratio": "0.5"})
    assert elastic["model"]["model.l1_ratio"] == "0.5"


def test_the_sweep_summary_shows_what_was_fixed_and_plots_each_penalty_apart(monkeypatch):
    """A setting fixed for the whole sweep (`model.solver=liblinear`) appeared nowhere,
    and the C chart mixed l1 and l2 points with no std bars."""
    from logistic_regression import sweep_summary

    def child(run_id, c, penalty, value):
        params = {"model.C": c, "model.penalty": penalty, "model.solver": "liblinear",
                  "model.l1_ratio": "0.5", "data.target": "y", "tracking.note": ""}  # fmt: skip
        return Child(run_id, f"C{c}-{penalty}", "FINISHED", params, value, "", "7", std=0.01)

    children = [
        child(f"{i}" * 32, c, penalty, 0.9 + i / 100)
        for i, (c, penalty) in enumerate([("0.1", "l1"), ("1", "l1"), ("0.1", "l2"), ("1", "l2")])
    ]
    assert sweep_summary.fixed_parameters(children, ["model.C", "model.penalty"]) == {
        "data.target": "y",
        "model.solver": "liblinear",
    }
    drawn: list[dict] = []
    real = sweep_summary.png_data_uri

    def seen(figure):
        for axes in figure.axes:
            drawn.append({"lines": len(axes.containers), "legend": axes.get_legend() is not None})
        return real(figure)

    monkeypatch.setattr(sweep_summary, "png_data_uri", seen)
    html, _, swept = render_summary("p" * 32, children, "cv_roc_auc_mean", "maximize")
    assert swept == ["model.C", "model.penalty"]
    assert "The same in every configuration" in html and "liblinear" in html
    # the C chart: one error-bar series per penalty, with a legend
    assert drawn[0] == {"lines": 2, "legend": True}
    assert f'title="{"0" * 32}">{"0" * 12}…</code>' in html  # a short id, the full one kept
