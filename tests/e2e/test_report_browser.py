"""The report and the sweep summary as people see them: opened in headless Chromium at a
laptop's width (1280 px) and a phone's (420 px), from a real training run and a real sweep.

Nothing may stick out sideways (wide tables scroll inside their own box), every chart
decodes, the summary's facts are there, a figure like "0.9957 ± 0.0046" stays on one
line, and a hostile note runs no script. Screenshots of each page at each width land in
test-artifacts/screenshots/ (ignored by git) for a person to look at.

The browser is the system's Chromium (/usr/bin/chromium, from apt); Playwright is only
the driver and never downloads one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from browser import SCREENSHOTS
from browser import WIDTHS as BROWSER_WIDTHS
from browser import browser as launch_browser
from mlflow.tracking import MlflowClient

from logistic_regression import pipeline, train

WIDTHS = tuple(BROWSER_WIDTHS.values())
HOSTILE_NOTE = '<script>alert("note")</script><img src=x onerror=alert(1)>'

# What the page measures of itself: overflow, images, inline SVGs, lines that wrapped.
MEASURE = """() => {
  const wide = [...document.querySelectorAll('table, img, svg, pre')].filter(el =>
    el.getBoundingClientRect().right > window.innerWidth + 1 && !el.closest('.scroll'));
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    images: [...document.images].map(img => ({
      alt: img.alt.slice(0, 40), complete: img.complete, naturalWidth: img.naturalWidth,
      width: img.getBoundingClientRect().width})),
    svgs: [...document.querySelectorAll('svg')].map(svg => {
      const box = svg.getBoundingClientRect(); return box.width * box.height; }),
    wrapped: [...document.querySelectorAll('.nowrap')]
      .filter(el => {
        const tops = [...el.getClientRects()].map(r => r.top);
        const size = parseFloat(getComputedStyle(el).fontSize);
        return Math.max(...tops) - Math.min(...tops) > 0.9 * size;
      })
      .map(el => el.textContent),
    unboxed: wide.map(el => el.tagName + ' ' + (el.textContent || '').slice(0, 40)),
    text: document.body.innerText,
  };
}"""


@pytest.fixture(scope="module")
def browser():
    with launch_browser() as chromium:
        yield chromium


def look_at(browser, html_file: Path, name: str) -> dict[int, dict]:
    """The page measured at each width, a full-page screenshot saved per width."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return {width: look_at_width(browser, html_file, name, width) for width in WIDTHS}


def look_at_width(browser, html_file: Path, name: str, width: int) -> dict:
    """One width: fails on any dialog (a script that ran) or any request that leaves the
    file (the page must be self-contained)."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    dialogs: list[str] = []
    requests: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(html_file.as_uri())
    page.wait_for_load_state("load")
    measured = page.evaluate(MEASURE)
    shot = SCREENSHOTS / f"{name}-{width}.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    page.close()
    assert not dialogs, f"a script ran in {name} at {width} px: {dialogs}"
    outside = [url for url in requests if not url.startswith(("file:", "data:"))]
    assert not outside, f"{name} fetched {outside}"
    return measured


def assert_reads_well(measured: dict[int, dict], name: str) -> None:
    for width, m in measured.items():
        where = f"{name} at {width} px"
        assert m["scrollWidth"] <= m["innerWidth"], f"{where} overflows sideways"
        assert not m["unboxed"], f"{where}: wider than the page outside a scroll box"
        assert m["images"], f"{where} shows no chart"
        for image in m["images"]:
            assert image["complete"] and image["naturalWidth"] > 0, f"{where}: {image}"
            assert 0 < image["width"] <= width, f"{where}: {image}"
        assert all(area > 0 for area in m["svgs"]), f"{where}: an empty inline svg"
        assert not m["wrapped"], f"{where}: broken across lines: {m['wrapped']}"


def artifacts(run) -> Path:
    return Path(run.info.artifact_uri.removeprefix("file://"))


def test_a_real_runs_report_reads_well_on_a_laptop_and_a_phone(config, browser):
    config = dataclasses.replace(
        config,
        tracking=dataclasses.replace(
            config.tracking, note=HOSTILE_NOTE, experiment_name="browser-check"
        ),
    )
    summary = pipeline.run(config)
    run = MlflowClient().get_run(summary.run_id)
    measured = look_at(browser, artifacts(run) / "report.html", "report")
    assert_reads_well(measured, "report.html")

    tags = run.data.tags
    headline = f"{summary.cv_mean:.4f} ± {summary.cv_std:.4f}"
    for width, m in measured.items():
        text = m["text"]
        assert headline in text and f"{summary.test_value:.4f}" in text, width
        assert "browser-check" in text and summary.run_id in text
        assert "455 train" in text and "114 test" in text  # breast_cancer: 569 rows, 20 %
        if "mlflow.source.git.commit" in tags:
            assert tags["mlflow.source.git.commit"][:7] in text
            dirty = tags["mlflow.source.git.dirty"] == "true"
            assert ("dirty" if dirty else "clean") in text
        assert HOSTILE_NOTE in text  # shown as the text it is
        assert "FINISHED" not in text.split("Provenance")[0]  # the summary claims no end
    assert len(measured[420]["images"]) == 3  # ROC, precision-recall, coefficients


def test_a_real_sweeps_summary_reads_well_on_a_laptop_and_a_phone(browser):
    code = train.main(
        [
            "-m",
            "tracking.experiment_name=browser-sweep",
            "model.C=0.1,1,-1",
            "evaluation.cv_folds=3",
        ]
    )
    assert code == 0
    client = MlflowClient()
    experiment = client.get_experiment_by_name("browser-sweep").experiment_id
    (parent,) = [
        r for r in client.search_runs([experiment]) if "mlflow.parentRunId" not in r.data.tags
    ]
    measured = look_at(browser, artifacts(parent) / "sweep_summary.html", "sweep-summary")
    assert_reads_well(measured, "sweep_summary.html")
    best = parent.data.tags["sweep.best_run_id"]
    for m in measured.values():
        text = m["text"]
        assert "sweep model.C=0.1,1,-1" in text.splitlines()[0]
        assert "★ best" in text and best in text
        assert "error" in text and "model.C=-1.0 is not allowed" in text  # one failed
        assert " ± " in text


def test_a_multiclass_report_reads_well_too(config, browser):
    """Three classes: a 3 x 3 confusion matrix, one coefficient per feature and class."""
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, input="iris"),
        evaluation=dataclasses.replace(config.evaluation, cv_folds=3),
    )
    summary = pipeline.run(config)
    run = MlflowClient().get_run(summary.run_id)
    measured = look_at(browser, artifacts(run) / "report.html", "report-multiclass")
    assert_reads_well(measured, "multiclass report.html")
    for m in measured.values():
        text = m["text"]
        assert f"{summary.cv_mean:.4f} ± {summary.cv_std:.4f}" in text
        assert "120 train" in text and "30 test" in text
        assert "towards the class in brackets" in text
        assert len(m["images"]) == 1  # no binary curves
