"""Make docs/report.png, the README's picture of ``dora report``, from a generated store.

    python scripts/report_screenshot.py

Generates a store of 20,000 deployments of 12 services over 120 days
(``benchmarks/make_store.py``, seed 1), writes the report of its last 90 days by week,
opens it in headless Chromium (the distribution's package, driven by Playwright, offline)
at 1200 pixels wide and keeps the top of the page: the headlines and the first charts.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
OUT = HERE / "docs" / "report.png"


def main() -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no Chromium on the PATH: install the distribution's package")
    with tempfile.TemporaryDirectory() as tmp:
        store, page = Path(tmp) / "demo.db", Path(tmp) / "report.html"
        subprocess.run(
            [sys.executable, str(HERE / "benchmarks" / "make_store.py"), "--deployments", "20000",
             "--incidents", "2000", "--services", "12", "--days", "120",
             "--end", "2026-12-06T00:00:00Z", str(store)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        subprocess.run(
            [sys.executable, "-m", "dora", "report", "--db", str(store), "--since", "90d",
             "--until", "2026-12-06", "--interval", "week", "-o", str(page)],
            check=True,
        )  # fmt: skip
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            context = browser.new_context(offline=True, viewport={"width": 1200, "height": 1500})
            view = context.new_page()
            view.goto(page.as_uri())
            view.screenshot(path=str(OUT))
            browser.close()
    print(f"wrote {OUT.relative_to(HERE)}")


if __name__ == "__main__":
    main()
