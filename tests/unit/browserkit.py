"""Headless Chromium for the report tests: the DOM after scripts ran, the console, a screenshot (imported by name)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        if os.environ.get("FORETELL_REQUIRE_CHROMIUM") == "1":
            pytest.fail("FORETELL_REQUIRE_CHROMIUM=1 but no chromium on PATH (apt-get install chromium)")
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    return found


def _flags(scratch: Path) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={scratch / 'chromium-profile'}"]


def rendered(page: Path, scratch: Path) -> tuple[str, list[str]]:
    """The page's DOM as Chromium built it, and its console lines (a script error, a resource not loaded)."""
    shown = subprocess.run(
        [chromium(), *_flags(scratch), "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return shown.stdout, [line for line in shown.stderr.splitlines() if ":CONSOLE" in line]


def screenshot(page: Path, scratch: Path, size: str) -> bytes:
    """A PNG of the page at `size` ("900,2400")."""
    shot = scratch / f"{page.stem}.png"
    subprocess.run(
        [chromium(), *_flags(scratch), f"--screenshot={shot}", f"--window-size={size}", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    return shot.read_bytes()
