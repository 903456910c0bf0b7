"""`/invocations` as MLflow's users call it: CSV typed by the model's signature, and MLflow's own client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from mlflow.pyfunc.scoring_server.client import ScoringServerClient
from mlflow.utils.proto_json_utils import dump_input_data
from servekit import server

import foretell
from foretell.core.schema import Feature, Output, Signature

# Echoes its text feature back, so a test sees exactly the text the model was given.
ZIP_MODEL = """
import numpy as np


class Echo:
    signature = None

    @classmethod
    def load(cls, path):
        return cls()

    def predict(self, columns):
        return {"zip": np.asarray(columns["zip"], dtype=object), "n": np.asarray(columns["n"], dtype=float)}
"""


@pytest.fixture(scope="module")
def zip_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("zip-home")
    folder = tmp_path_factory.mktemp("zip-model")
    (folder / "echo.py").write_text(ZIP_MODEL)
    signature = Signature(
        (Feature("zip", "string"), Feature("n", "float64")),
        (Output("zip", "value", "string"), Output("n", "value", "float64")),
    )
    foretell.register(
        "echo", folder, flavor="python", signature=signature, flavor_options={"class": "echo.py:Echo"}, home=home
    )
    return home


def test_csv_columns_take_the_signature_types_so_numeric_looking_text_stays_text(zip_home: Path) -> None:
    csv = b"zip,n\n02139,1\n10001,2.5\n"
    with server(zip_home, "echo") as url:
        response = httpx.post(f"{url}/invocations", content=csv, headers={"content-type": "text/csv"})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer.pop("prediction_id") == response.headers["x-prediction-id"]  # the ledger's id for the request
        assert answer == {"predictions": [{"zip": "02139", "n": 1.0}, {"zip": "10001", "n": 2.5}]}

        refused = httpx.post(f"{url}/invocations", content=b"zip,n\n02139,x\n", headers={"content-type": "text/csv"})
        assert refused.status_code == 400
        assert refused.json() == {
            "error": "the CSV body could not be read: row 0, field 'n': expected a number (float64); got 'x'"
        }


def test_mlflow_own_client_scores_the_demo_customers_with_their_missing_values(tmp_path: Path) -> None:
    home = tmp_path / "home"
    made = subprocess.run(
        [sys.executable, "-m", "foretell", "demo", "init", "--customers", "2000", "--users", "100", "--movies", "100"],
        env={**os.environ, "FORETELL_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    customers = pq.read_table(home / "demo" / "customers.parquet").slice(0, 200).to_pandas()
    features = customers.drop(columns=["customer_id", "churned"])
    assert features.isna().any(axis=None)  # the demo's customers have gaps, as real ones do
    expected = foretell.load("churn@production", home=home).predict_batch(features).to_records()

    with server(home, "churn@production") as url:
        host, port = url.removeprefix("http://").split(":")
        client = ScoringServerClient(host, int(port))
        assert client.invoke(features)["predictions"] == expected

        # MLflow writes an infinity as a bare Infinity too: refused by the signature's rule, row and field named.
        features.loc[3, "tenure_months"] = np.inf
        refused = httpx.post(
            f"{url}/invocations",
            content=dump_input_data(features.head(5)),
            headers={"content-type": "application/json"},
        )
        assert refused.status_code == 400
        assert "row 3, field 'tenure_months': expected a finite number (float64); got float inf" in refused.text
