"""`grpc_port` in the serve config: off by default, a port from the file or the flag, refused with its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from foretell.errors import InvalidServeConfig
from foretell.serving.config import ServeConfig, load_serve_config, settings_over


def test_grpc_is_off_unless_a_port_is_given(tmp_path: Path) -> None:
    assert ServeConfig().grpc_port is None
    path = tmp_path / "serve.toml"
    path.write_text("grpc_port = 8001\n")
    config = load_serve_config(path)
    assert config.grpc_port == 8001
    assert settings_over(config, (), {"grpc_port": 9001}).grpc_port == 9001  # the flag over the file
    assert ServeConfig.from_dict(config.to_dict()).grpc_port == 8001  # as --workers processes read it


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("grpc_port = 0", "grpc_port must be between 1 and 65535, got 0"),
        ('grpc_port = "8001"', "grpc_port must be int, got '8001'"),
    ],
)
def test_a_bad_grpc_port_is_refused_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "serve.toml"
    path.write_text(text + "\n")
    with pytest.raises(InvalidServeConfig, match=message):
        load_serve_config(path)
