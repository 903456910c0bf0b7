"""Recognising artifacts by name and first bytes, and reading ONNX class labels, with no framework at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from foretell.adapters import detect_flavor
from foretell.adapters.lightgbm import LightGBMFlavor
from foretell.adapters.onnx import OnnxFlavor, graph_classes
from foretell.adapters.xgboost import XGBoostFlavor
from foretell.errors import UnsupportedModel


def write(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("name", "content", "flavor"),
    [
        ("model.txt", b"tree\nversion=v4\nnum_class=1\n", "lightgbm"),
        ("model.lgb", b"tree\r\nversion=v4\r\n", "lightgbm"),
        ("booster.model", b"tree\nversion=v3\n", "lightgbm"),
        ("model.json", b'{"learner":{"attributes":{}},"version":[3,2,0]}', "xgboost"),
        ("pretty.json", b'{\n  "learner": {\n    "attributes": {}\n  }\n}', "xgboost"),
        ("model.ubj", b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner{}", "xgboost"),
        ("model.UBJ", b"{i\x07learner{}", "xgboost"),
        ("model.onnx", b"\x08\x07", "onnx"),
    ],
)
def test_recognises_a_model_file(tmp_path: Path, name: str, content: bytes, flavor: str) -> None:
    assert detect_flavor(write(tmp_path, name, content)).name == flavor


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.txt", b"trees are tall\n"),  # starts with "tree" but that is not the whole first line
        ("empty.txt", b""),
        ("data.csv", b"tree\nversion=v4\n"),  # right content, wrong suffix
        ("config.json", b'{"name": "x", "learner": {}}'),  # "learner" is not the first key
        ("list.json", b'[{"learner": {}}]'),
        ("empty.json", b""),
        ("model.ubj", b"[learner]"),
    ],
)
def test_does_not_claim_other_files(tmp_path: Path, name: str, content: bytes) -> None:
    with pytest.raises(UnsupportedModel, match="cannot tell the flavor"):
        detect_flavor(write(tmp_path, name, content))


def test_a_folder_is_never_a_model_file(tmp_path: Path) -> None:
    for name in ("model.onnx", "model.txt", "model.json"):
        folder = tmp_path / name
        folder.mkdir()
        assert not OnnxFlavor().matches(folder)
        assert not LightGBMFlavor().matches(folder)
        assert not XGBoostFlavor().matches(folder)


# -- ONNX class labels from the protobuf wire format ---------------------------------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64s travel as their 64-bit two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def node(op: str, domain: str, *attributes: bytes) -> bytes:
    return field(4, op.encode()) + field(7, domain.encode()) + b"".join(field(5, a) for a in attributes)


def model(*nodes: bytes) -> bytes:
    graph = b"".join(field(1, n) for n in nodes) + field(2, b"main")
    return field(1, 8) + field(7, graph)


def test_reads_packed_and_negative_integer_labels() -> None:
    packed = field(1, b"classlabels_ints") + field(8, b"".join(varint(v) for v in (-1, 3, 300)))
    assert graph_classes(model(node("LinearClassifier", "ai.onnx.ml", packed))) == [-1, 3, 300]


def test_reads_string_labels_from_the_node_nearest_the_outputs() -> None:
    first = field(1, b"classlabels_int64s") + field(8, 0) + field(8, 1)
    last = field(1, b"classlabels_strings") + field(9, b"no") + field(9, b"s\xc3\xad")
    graph = model(node("TreeEnsembleClassifier", "ai.onnx.ml", first), node("ZipMap", "ai.onnx.ml", last))
    assert graph_classes(graph) == ["no", "sí"]


def test_ignores_labels_outside_the_ml_domain_and_graphs_without_any() -> None:
    labels = field(1, b"classlabels_ints") + field(8, 1)
    assert graph_classes(model(node("Custom", "com.example", labels))) is None
    assert graph_classes(model(node("Relu", ""))) is None


def test_a_truncated_graph_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="runs past the end"):
        graph_classes(model(node("ZipMap", "ai.onnx.ml"))[:-3])
