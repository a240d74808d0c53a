"""The HTML report: complete, self-contained, and safe with any user text."""

import dataclasses
import re

import numpy as np
import pytest

from logistic_regression.background import Background
from logistic_regression.report import ReportInput, plots, render, warm_up

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
