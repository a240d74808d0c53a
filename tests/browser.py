"""Headless Chromium for the tests that look at pages as people do: Debian's browser
(`/usr/bin/chromium`, installed by scripts/test.sh), driven by Playwright's Python
package, never a browser Playwright downloads. Screenshots are kept in
test-artifacts/screenshots/ (git-ignored) for a person to look at after the run."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
WIDTHS = {"desktop": 1280, "phone": 420}

# As root, with a closed network: no sandbox, and none of Chromium's background calls home
# (refused here, many at a time, at every start).
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium")
    if not path:
        pytest.fail("no chromium on PATH: install Debian's `chromium` (scripts/test.sh does)")
    return path


@contextlib.contextmanager
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def undecoded_images(page_or_frame) -> list[str]:
    """The alt text of every <img> that did not decode (naturalWidth 0)."""
    return page_or_frame.evaluate(
        "() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
        ".map(i => i.alt || i.src.slice(0, 40))"
    )
