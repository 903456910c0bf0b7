"""Text with square brackets reaches the terminal whole: rich must not read "[compile]" or "[beta]" as markup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

# The CLI as `pip install foretell` without the [compile] extra runs it: importing a compiler's
# package fails as it does when the package is absent (test_plain_install.py does it for real).
WITHOUT_COMPILE_EXTRA = (
    "import sys\n"
    "for name in ('treelite', 'tl2cgen', 'skl2onnx'):\n"
    "    sys.modules[name] = None\n"
    "from foretell.cli import main\n"
    "sys.argv[0] = 'foretell'\n"
    "main()\n"
)


def run(home: Path, *args: str, without_compile: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FORETELL_HOME": str(home), "COLUMNS": "200"}
    command = ["-c", WITHOUT_COMPILE_EXTRA] if without_compile else ["-m", "foretell"]
    return subprocess.run([sys.executable, *command, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("markup-home")


def test_demo_init_without_the_compile_extra_names_the_extra(home: Path) -> None:
    made = run(home, "demo", "init", "--customers", "1000", "--users", "100", "--movies", "100", without_compile=True)
    assert made.returncode == 0, made.stderr
    assert "install it with: pip install 'foretell[compile]'" in made.stdout
    shown = run(home, "models", "show", "churn@production")
    assert "install it with: pip install 'foretell[compile]'" in shown.stdout


def test_descriptions_values_and_commands_keep_their_brackets(home: Path, tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(100, 2))
    joblib.dump(LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), tmp_path / "clf.joblib")
    registered = run(home, "models", "register", "clf", str(tmp_path / "clf.joblib"), "--description", "[beta] clf")
    assert registered.returncode == 0, registered.stderr
    assert "[beta] clf" in run(home, "models", "show", "clf").stdout.splitlines()[0]
    assert "[beta] clf" in run(home, "models", "list").stdout

    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{"f0": 1.0, "f1": 2.0}, {"f0": "[x]", "f1": 2.0}]))
    predicted = run(home, "predict", "clf", "--input", str(rows))
    assert "refused row 1, field 'f0': expected a number (float64); got str '[x]'" in predicted.stderr

    argv = ("predict", "clf", "--input", "rows[1].json")
    added = run(home, "schedule", "add", "hourly", "--cron", "@hourly", "--", *argv)
    assert added.returncode == 0, added.stderr
    assert "foretell predict clf --input 'rows[1].json'" in added.stdout
    assert "--input 'rows[1].json'" in run(home, "schedule", "list").stdout
