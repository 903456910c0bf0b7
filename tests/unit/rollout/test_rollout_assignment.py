"""Assignment: the same unit always gets the same arm, and the challenger's share is what was asked."""

from __future__ import annotations

import numpy as np
import pytest

from foretell.core.frame import Frame
from foretell.rollout import arm_for, bucket_of, digest_of_frame

KEYS = [f"C-{i}" for i in range(100_000)]


def share(salt: str, percent: float) -> float:
    return sum(arm_for(salt, key, percent) == "challenger" for key in KEYS) / len(KEYS)


@pytest.mark.parametrize("salt", ["a1b2c3d4e5f6", "0f0f0f0f0f0f"])
def test_ten_percent_of_100000_keys_is_ten_percent_within_half_a_point(salt: str) -> None:
    assert abs(share(salt, 10) - 0.10) <= 0.005


def test_the_same_key_gets_the_same_arm_every_time() -> None:
    first = [arm_for("rollout-1", key, 10) for key in KEYS[:5000]]
    again = [arm_for("rollout-1", key, 10) for key in KEYS[:5000]]
    assert first == again
    assert [arm_for("rollout-1", key.encode(), 10) for key in KEYS[:5000]] == first  # str or bytes alike


def test_a_bigger_share_keeps_the_keys_a_smaller_one_had() -> None:
    """Growing a canary from 5 % to 20 % only adds keys: nobody who met the challenger goes back."""
    small = {key for key in KEYS[:20_000] if arm_for("grow", key, 5) == "challenger"}
    large = {key for key in KEYS[:20_000] if arm_for("grow", key, 20) == "challenger"}
    assert small < large


def test_each_rollout_draws_its_own_keys() -> None:
    one = {key for key in KEYS[:20_000] if arm_for("rollout-a", key, 10) == "challenger"}
    two = {key for key in KEYS[:20_000] if arm_for("rollout-b", key, 10) == "challenger"}
    assert 0.05 < len(one & two) / len(one) < 0.2  # about 10 % overlap, as for independent draws


def test_shares_at_the_edges() -> None:
    assert all(arm_for("s", key, 100) == "challenger" for key in KEYS[:1000])
    assert all(arm_for("s", key, 0.0) == "champion" for key in KEYS[:1000])
    assert 0 <= bucket_of("s", "C-1") < 10_000


def test_a_digest_names_the_rows_not_the_frame() -> None:
    x = np.arange(6, dtype=np.float64).reshape(3, 2)
    same = digest_of_frame(Frame({"x": x.copy()}))
    assert digest_of_frame(Frame({"x": x})) == same
    assert digest_of_frame(Frame({"x": x + 1})) != same
    words = digest_of_frame(Frame({"plan": np.array(["basic", "pro", None], dtype=object)}))
    assert words == digest_of_frame(Frame({"plan": np.array(["basic", "pro", None], dtype=object)}))
