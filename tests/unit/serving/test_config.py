"""`ServeConfig`: the serve TOML file, flags on top, per-model batching knobs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foretell.errors import InvalidServeConfig
from foretell.serving.config import ServeConfig, load_serve_config
from foretell.serving.policy import BatchPolicy

FILE = """
models = ["churn@production", "movies@production"]
port = 8100
max_batch_size = 48
max_queue = 512

[batching.churn]
max_batch_size = 16
max_delay_ms = 0
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "serve.toml"
    path.write_text(text)
    return path


def test_file_settings_and_per_model_knobs(tmp_path):
    config = load_serve_config(write(tmp_path, FILE))
    assert config.models == ("churn@production", "movies@production")
    assert config.port == 8100
    assert config.policy_for("movies") == BatchPolicy(max_batch_size=48, max_queue=512)
    assert config.policy_for("churn") == BatchPolicy(max_batch_size=16, max_delay_ms=0, max_queue=512)


def test_most_specific_wins_model_table_then_flags_then_file_then_defaults(tmp_path):
    config = load_serve_config(write(tmp_path, FILE)).with_flags(max_batch_size=8, max_queue=None, port=9000)
    assert config.port == 9000
    assert config.policy_for("movies").max_batch_size == 8  # the flag beats the file's top level
    assert config.policy_for("movies").max_queue == 512  # a flag not given leaves the file's value
    assert config.policy_for("churn").max_batch_size == 16  # the model's own table beats the flag
    assert config.policy_for("other").max_delay_ms == BatchPolicy().max_delay_ms  # built-in default


def test_flags_without_a_file():
    config = ServeConfig().with_flags(models=["churn/3"], max_delay_ms=0.0, access_log=True)
    assert config.models == ("churn/3",) and config.access_log
    assert config.policy_for("churn").max_delay_ms == 0.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prot = 8000", "unknown key 'prot'"),
        ("port = '8000'", "port must be int"),
        ("max_delay_ms = 'fast'", "max_delay_ms must be int or a number"),
        ("max_batch_size = 0", "max_batch_size must be at least 1"),
        ("models = 'churn'", "'models' must be a list of model URIs"),
        ("[batching.churn]\nmax_batch = 3", "[batching.churn]: unknown key(s) ['max_batch']"),
        ("[batching.churn]\nmax_queue = 0", "max_queue must be at least 1"),
        ("[batching.churn]\nport = 1", "unknown key(s) ['port']"),
        ("overload_status = 500", "overload_status must be 429 or 503"),
        ("port = [", "not valid TOML"),
    ],
)
def test_mistakes_name_the_key(tmp_path, text, message):
    with pytest.raises(InvalidServeConfig) as caught:
        load_serve_config(write(tmp_path, text))
    assert message in str(caught.value)


def test_a_missing_file_is_said_plainly(tmp_path):
    with pytest.raises(InvalidServeConfig, match="does not exist"):
        load_serve_config(tmp_path / "nope.toml")


def test_unknown_flag_is_refused():
    with pytest.raises(InvalidServeConfig, match="unknown serve settings"):
        ServeConfig().with_flags(max_batch=3)


knobs = st.fixed_dictionaries(
    {},
    optional={
        "max_batch_size": st.integers(1, 512),
        "max_delay_ms": st.floats(0, 100, allow_nan=False),
        "max_queue": st.integers(1, 10_000),
    },
)


@settings(max_examples=100, deadline=None)
@given(
    models=st.lists(st.sampled_from(["churn@production", "movies/2", "recs"]), max_size=3),
    defaults=knobs,
    per_model=st.dictionaries(st.sampled_from(["churn", "movies"]), knobs, max_size=2),
    port=st.integers(1, 65535),
    access_log=st.booleans(),
)
def test_settings_survive_the_trip_to_worker_processes(models, defaults, per_model, port, access_log):
    config = ServeConfig.from_dict(
        {"models": models, "port": port, "access_log": access_log, "batching": per_model, **defaults}
    )
    again = ServeConfig.from_dict(config.to_dict())
    assert again == config
    for name in ("churn", "movies", "other"):
        assert again.policy_for(name) == config.policy_for(name)


def test_events_from_is_read_from_the_file_and_reaches_worker_processes(tmp_path):
    path = tmp_path / "serve.toml"
    path.write_text('events_from = "redis://127.0.0.1:6379/0?stream=ratings"\n')
    config = load_serve_config(path)
    assert config.events_from == "redis://127.0.0.1:6379/0?stream=ratings"
    assert ServeConfig.from_dict(config.to_dict()).events_from == config.events_from
    path.write_text("events_from = 5\n")
    with pytest.raises(InvalidServeConfig, match="events_from must be str"):
        load_serve_config(path)
