"""Separate processes registering into one home at once, as parallel CI jobs or cron tasks do.

The artifacts are python-flavor folders: a folder is the harder case for the artifact store
(two processes racing to place the same folder cannot both rename it into place), and the
flavor needs no heavy framework import, which keeps worker start-up short.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from foretell.registry import load_model, open_registry
from foretell.registry.artifacts import hash_tree

PROCESSES = 4
REGISTRATIONS_EACH = 8

MODEL_PY = """
import numpy as np

class Scaler:
    signature = {"inputs": [{"name": "x"}], "outputs": [{"name": "y", "kind": "score"}]}
    factor = FACTOR

    @classmethod
    def load(cls, path):
        return cls()

    def predict(self, columns):
        return np.asarray(columns["x"]) * self.factor
"""

# Each worker opens the (possibly not yet created) home, says it is ready, waits for the
# starting gun, then registers alternately a folder every worker shares and one of its own.
WORKER = """
import sys, time
from pathlib import Path
from foretell.registry import open_registry

home, shared, own, go = (Path(arg) for arg in sys.argv[1:5])
count = int(sys.argv[5])
registry = open_registry(home)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.002)
for i in range(count):
    folder = shared if i % 2 == 0 else own
    info = registry.register("scaler", folder, flavor="python", flavor_options={"class": "model.py:Scaler"})
    print(info.version, info.sha256, flush=True)
"""


def _model_folder(path: Path, factor: int) -> Path:
    path.mkdir()
    (path / "model.py").write_text(MODEL_PY.replace("FACTOR", str(factor)))
    return path


def test_concurrent_processes_get_distinct_contiguous_versions(tmp_path: Path) -> None:
    home = tmp_path / "home"  # not created here: the workers race to create it too
    go = tmp_path / "go"
    shared = _model_folder(tmp_path / "shared", factor=1)
    own = [_model_folder(tmp_path / f"own-{i}", factor=i + 2) for i in range(PROCESSES)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(home), str(shared), str(own[i]), str(go), str(REGISTRATIONS_EACH)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            if worker.stdout.readline().strip() != "ready":
                raise AssertionError(worker.communicate(timeout=60)[1])
        go.touch()
        outputs = [worker.communicate(timeout=120) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    claimed: dict[int, str] = {}
    for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr
        for line in stdout.strip().splitlines():
            version, sha256 = line.split()
            assert int(version) not in claimed, f"version {version} was handed out twice"
            claimed[int(version)] = sha256
    total = PROCESSES * REGISTRATIONS_EACH
    assert sorted(claimed) == list(range(1, total + 1))

    registry = open_registry(home)
    versions = registry.list_versions("scaler")
    assert {v.version: v.sha256 for v in versions} == claimed
    assert set(claimed.values()) == {hash_tree(folder) for folder in [shared, *own]}
    for info in versions:
        registry.artifact_path(info, verify=True)  # every stored copy is whole, whoever wrote it
    factors = {load_model(registry, f"scaler/{v.version}").predict({"x": 1.0})["y"] for v in versions}
    assert factors == {1.0, *(float(i + 2) for i in range(PROCESSES))}
    assert not [p for p in (home / "artifacts").iterdir() if p.name.startswith(".incoming-")]
