"""`pip install foretell` with no extras, in a fresh venv: every command starts, the demo and advise run.

The shared test venv holds every extra, so an import that only an extra (or `dev`) brings
passes there unnoticed; this venv has only what a plain install pulls in. pip's wheel
cache keeps the install to about a minute after the first run.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

# Run inside the fresh venv: every command path of the installed CLI, so a new command is covered.
LIST_COMMANDS = """
import json
import typer.main
from foretell.cli.app import app

def walk(command, path):
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from walk(sub, [*path, name])

print(json.dumps(list(walk(typer.main.get_command(app), []))))
"""


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv's bin folder, with foretell installed from this tree by a plain `pip install`."""
    root = tmp_path_factory.mktemp("plain-install")
    # Built from a copy: pip builds a source tree in place, and this one must stay as git has it.
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    installed = subprocess.run(
        [bin_dir / "python", "-m", "pip", "install", "--disable-pip-version-check", "--quiet", str(source)],
        capture_output=True,
        text=True,
        env=plain_env(bin_dir, root / "home"),
        timeout=900,
        cwd=root,
    )
    assert installed.returncode == 0, installed.stderr
    return bin_dir


def plain_env(bin_dir: Path, home: Path) -> dict[str, str]:
    # Only the venv's own packages: no PYTHONPATH pointing back at the source tree or the test venv.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return env | {"FORETELL_HOME": str(home), "COLUMNS": "200", "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}


def run(bin_dir: Path, home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`foretell ARGS` as the venv installed it, from a folder outside the source tree."""
    return subprocess.run(
        [bin_dir / "foretell", *args],
        capture_output=True,
        text=True,
        env=plain_env(bin_dir, home),
        timeout=timeout,
        cwd=home.parent,
    )


def python(bin_dir: Path, home: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [bin_dir / "python", "-c", code],
        capture_output=True,
        text=True,
        env=plain_env(bin_dir, home),
        timeout=60,
        cwd=home.parent,
    )


def test_the_venv_has_foretell_as_installed_and_no_extra(plain: Path, tmp_path: Path) -> None:
    where = python(plain, tmp_path / "home", "import foretell; print(foretell.__file__)")
    assert where.returncode == 0 and "site-packages" in where.stdout, where.stderr
    for module in ("treelite", "skl2onnx", "pytest"):
        assert python(plain, tmp_path / "home", f"import {module}").returncode == 1, module


def test_every_command_shows_its_help(plain: Path, tmp_path: Path) -> None:
    listed = python(plain, tmp_path / "home", LIST_COMMANDS)
    assert listed.returncode == 0, listed.stderr
    commands = json.loads(listed.stdout)
    assert ["advise"] in commands and ["entities", "get"] in commands and len(commands) > 20

    def helps(command: list[str]) -> tuple[list[str], subprocess.CompletedProcess[str]]:
        return command, run(plain, tmp_path / "home", *command, "--help", timeout=60)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for command, shown in pool.map(helps, commands):
            assert shown.returncode == 0, (command, shown.stderr)
            assert "Usage: foretell" in shown.stdout, command


def test_demo_init_then_advise_quick(plain: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    made = run(plain, home, "demo", "init", "--customers", "2000")
    assert made.returncode == 0, made.stderr
    # No [compile] extra: the churn model keeps its original predictor, and says which extra compiles it.
    assert "keeps its original predictor" in made.stdout
    assert "install it with: pip install 'foretell[compile]'" in made.stdout

    advised = run(plain, home, "advise", "churn@production", "--preset", "nightly-churn", "--quick", "--json")
    assert advised.returncode == 0, advised.stderr
    advice = json.loads(advised.stdout)
    assert advice["recommendation"] in advice["modes"]
    assert advice["measurements"]["live_rps"] > 0 and advice["measurements"]["batch_rows_per_s"] > 0
