"""A short rollout, as `make run` tells it: a retrained churn version in shadow, its status after a burst, promoted.

Retrains churn on newer customers and registers it as a new version, starts a shadow
rollout of it (`foretell rollout start`), serves churn@production and sends a burst of
traffic (lookups, fresh lookups, infer requests: `foretell.demo.traffic`), shows
`foretell rollout status`, promotes it (`foretell rollout promote`), and shows the same
running server answering with the new version about a second later.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import joblib
import pyarrow.parquet as pq
from demo_server import running_server

import foretell
from foretell.demo.churn import CHURN_SIGNATURE, generate_customers, train_churn
from foretell.demo.traffic import DayPlan, simulate_day

home = Path(os.environ.get("FORETELL_HOME", ".foretell"))
BURST = DayPlan(lookups=1_500, fresh_lookups=500, infers=1_000, events=0, seed=23)


def foretell_cli(*args: str) -> None:
    print(f"$ foretell {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "foretell", *args], check=True)


def main() -> int:
    model_path = home / "demo" / "churn-retrained.joblib"
    joblib.dump(train_churn(generate_customers(50_000, seed=31), seed=11), model_path)
    info = foretell.register(
        "churn",
        model_path,
        flavor="sklearn",
        signature=CHURN_SIGNATURE,
        description="retrained on 50,000 newer customers",
        home=home,
    )
    champion = foretell.show("churn@production", home=home).version
    print(f"   registered churn/{info.version}: retrained; churn@production is version {champion}")
    foretell_cli("rollout", "start", "churn", "--challenger", str(info.version), "--shadow")
    customers = pq.read_table(home / "demo" / "customers.parquet")
    with running_server("churn@production") as url:
        traffic = simulate_day(url, customers, list(CHURN_SIGNATURE.input_names), BURST)
        sent = ", ".join(f"{count:,} {kind}" for kind, count in traffic.sent.items())
        print(f"   a burst of traffic: {sent} in {traffic.seconds:.1f} s (lookups from the store are not re-scored)")
        time.sleep(2.5)  # every worker reports its figures about once a second
        foretell_cli("rollout", "status", "churn")
        foretell_cli("rollout", "promote", "churn")
        answered = ""
        with httpx.Client(base_url=url, timeout=30) as client:
            key = customers.column("customer_id")[0].as_py()
            for _ in range(100):  # the running server follows the alias within about a second
                answered = client.get(f"/v1/models/churn/predictions/{key}", params={"fresh": "true"}).headers[
                    "x-model-version"
                ]
                if answered == str(info.version):
                    break
                time.sleep(0.1)
        print(f"   the running server now answers with version {answered} (X-Model-Version)")
    return 0 if answered == str(info.version) else 1


if __name__ == "__main__":
    sys.exit(main())
