"""Registering models from the command line, by how far their files are trusted.

A `.skops` file is loaded without unpickling: types beyond skops' defaults must be named with
`--trust` when it is registered, and the list is kept with the version. A joblib/pickle file
registers as before, with a note that loading it runs code from it.
"""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import skops.io as sio
from serving.servekit import cli  # tests/integration/serving, a namespace package
from sklearn.ensemble import GradientBoostingClassifier


def test_a_skops_model_registers_with_its_types_trusted_and_predicts_as_the_pickle_does(tmp_path: Path) -> None:
    x = np.random.default_rng(3).normal(size=(400, 3))
    estimator = GradientBoostingClassifier(n_estimators=15, random_state=0).fit(x, (x[:, 0] - x[:, 2] > 0).astype(int))
    sio.dump(estimator, tmp_path / "gb.skops")
    joblib.dump(estimator, tmp_path / "gb.joblib")
    rows = tmp_path / "rows.parquet"
    pq.write_table(pa.table({f"f{i}": x[:50, i] for i in range(3)}), rows)
    home = tmp_path / "home"

    refused = cli(home, "models", "register", "gb", str(tmp_path / "gb.skops"), "--no-compile")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "does not trust by default: sklearn.tree._tree.Tree" in refused.stderr, refused.stderr
    assert "--trust sklearn.tree._tree.Tree" in refused.stderr
    assert json.loads(cli(home, "models", "list", "--json").stdout) == []  # nothing registered

    trusted = cli(home, "models", "register", "gb", str(tmp_path / "gb.skops"), "--trust",
                       "sklearn.tree._tree.Tree", "--no-compile", "--json")  # fmt: skip
    assert trusted.returncode == 0, trusted.stderr
    assert "runs code" not in trusted.stderr
    shown = json.loads(cli(home, "models", "show", "gb/1", "--json").stdout)
    assert shown["flavor"] == "skops" and shown["flavor_options"] == {"trusted": ["sklearn.tree._tree.Tree"]}

    pickled = cli(home, "models", "register", "gbp", str(tmp_path / "gb.joblib"), "--no-compile")
    assert pickled.returncode == 0, pickled.stderr
    assert "note: loading a joblib/pickle file runs code from it" in pickled.stderr

    predictions = {}
    for uri in ("gb/1", "gbp/1"):
        done = cli(home, "predict", uri, "--input", str(rows), "--json", "--predictor", "original")
        assert done.returncode == 0, done.stderr
        predictions[uri] = [row["score"] for row in json.loads(done.stdout)]
    assert len(predictions["gb/1"]) == 50 and predictions["gb/1"] == predictions["gbp/1"]
