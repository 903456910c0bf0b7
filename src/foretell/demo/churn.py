"""The churn demo: an online store's customers, whether they left, and a model that guesses who will.

Every customer is drawn from three hidden traits (engagement, satisfaction, price
sensitivity) that the observed features only reflect with noise, and churn follows a
logistic rule of those traits and of the contract terms. A model can therefore learn a
lot but not everything: a gradient-boosting classifier reaches a holdout AUC of about
0.8, which is what real churn models report, not a suspicious 0.99.

Generation is whole-column numpy, so a million customers take seconds; the batch
demos score populations of that size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from threadpoolctl import threadpool_limits

from foretell.adapters.outputs import classifier_outputs
from foretell.core.feature import Feature
from foretell.core.schema import Signature
from foretell.errors import InvalidInput

__all__ = [
    "CATEGORIES",
    "CHURN_SIGNATURE",
    "NUMERIC_FEATURES",
    "features_matrix",
    "generate_customers",
    "train_churn",
]

Floats = npt.NDArray[np.float64]

#: The fixed category lists; a model sees the index into each as a float code.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "plan": ("basic", "standard", "premium"),
    "contract": ("monthly", "annual", "two_year"),
    "payment_method": ("credit_card", "debit_card", "paypal", "bank_transfer", "gift_card"),
    "region": ("north_america", "europe", "asia_pacific", "latin_america", "middle_east_africa"),
    "acquisition_channel": ("organic_search", "paid_search", "social", "referral", "email", "affiliate"),
}
_CATEGORY_SHARES = {
    "plan": (0.45, 0.35, 0.20),
    "payment_method": (0.40, 0.22, 0.20, 0.13, 0.05),
    "region": (0.35, 0.28, 0.20, 0.10, 0.07),
    "acquisition_channel": (0.30, 0.20, 0.18, 0.14, 0.10, 0.08),
}

NUMERIC_FEATURES = (
    "tenure_months",
    "age",
    "monthly_spend",
    "total_spend",
    "orders_90d",
    "avg_order_value",
    "days_since_last_order",
    "returns_90d",
    "delivery_delays_90d",
    "support_calls_30d",
    "support_calls_90d",
    "avg_resolution_hours",
    "sessions_30d",
    "avg_session_minutes",
    "pages_per_session",
    "days_since_last_login",
    "cart_abandon_rate",
    "discount_usage_rate",
    "late_payments_12m",
    "failed_payments_90d",
    "email_open_rate",
    "nps_score",
    "loyalty_points",
    "devices",
    "autopay",
    "mobile_app",
)

# Every feature may be missing: HistGradientBoosting routes NaN down a learned branch, and
# real customer tables have holes (age not given, no survey answer, no orders to average).
CHURN_SIGNATURE = Signature(
    inputs=(
        *(Feature(name, "category", allow_missing=True, categories=cats) for name, cats in CATEGORIES.items()),
        *(Feature(name, "float64", allow_missing=True) for name in NUMERIC_FEATURES),
    ),
    outputs=classifier_outputs([0, 1]),
)

_PLAN_PRICE = np.array([19.99, 39.99, 79.99])
_TENURE_MEAN = np.array([14.0, 30.0, 44.0])  # by contract: longer commitments stay longer


def _sigmoid(x: Floats) -> Floats:
    return 1.0 / (1.0 + np.exp(-x))


def _beta(rng: np.random.Generator, a: Floats | float, b: float, n: int) -> Floats:
    return np.round(rng.beta(a, b, size=n), 3)


def generate_customers(n: int, seed: int = 7) -> pa.Table:
    """`n` customers: `customer_id`, the signature's features (categories as strings), and `churned` (0/1).

    The same `n` and `seed` always give the same table.
    """
    if n < 1:
        raise ValueError(f"need at least one customer, got n={n}")
    rng = np.random.default_rng(seed)
    engagement = rng.standard_normal(n)
    satisfaction = rng.standard_normal(n)
    price_sensitivity = rng.standard_normal(n)

    codes = {name: rng.choice(len(shares), size=n, p=shares) for name, shares in _CATEGORY_SHARES.items()}
    # Premium customers commit for longer; satisfied ones too.
    commit = 0.35 * codes["plan"] + 0.25 * satisfaction + rng.logistic(0.0, 0.6, n)
    codes["contract"] = np.digitize(commit, [0.45, 1.25])
    plan, contract, payment = codes["plan"], codes["contract"], codes["payment_method"]

    tenure = np.clip(np.ceil(rng.exponential(_TENURE_MEAN[contract])), 1, 72)
    age = np.clip(np.round(18 + rng.gamma(3.0, 7.0, n)), 18, 85)
    monthly = np.round(_PLAN_PRICE[plan] + rng.gamma(2.0, 6.0, n) * np.exp(0.25 * engagement), 2)
    total = np.round(monthly * tenure * rng.lognormal(0.0, 0.08, n), 2)

    sessions = rng.poisson(np.exp(2.2 + 0.6 * engagement)).astype(np.float64)
    idle = sessions == 0
    session_minutes = np.round(rng.lognormal(np.log(8.0) + 0.2 * engagement, 0.4), 1)
    pages = np.round(rng.lognormal(np.log(5.0) + 0.15 * engagement, 0.35), 1)
    last_login = np.round(rng.exponential(3.0 * np.exp(-0.8 * engagement)))
    last_login[idle] = 30 + np.round(rng.exponential(25.0, int(idle.sum())))

    orders = rng.poisson(np.exp(0.8 + 0.5 * engagement + 0.2 * plan)).astype(np.float64)
    no_orders = orders == 0
    order_value = np.round(rng.lognormal(np.log(45.0) + 0.2 * plan, 0.45), 2)
    last_order = np.minimum(np.round(rng.exponential(90.0 / (orders + 1.0))), 90.0)
    last_order[no_orders] = 90 + np.round(rng.exponential(60.0, int(no_orders.sum())))
    returns = rng.binomial(orders.astype(np.int64), _sigmoid(-2.2 - 0.5 * satisfaction)).astype(np.float64)
    region_delay = np.array([0.05, 0.06, 0.09, 0.14, 0.12])[codes["region"]]
    delays = rng.binomial(orders.astype(np.int64), region_delay).astype(np.float64)

    calls_90d = rng.poisson(np.exp(-0.3 - 0.7 * satisfaction + 0.4 * (delays > 0))).astype(np.float64)
    calls_30d = rng.binomial(calls_90d.astype(np.int64), 0.4).astype(np.float64)
    resolution = np.round(rng.lognormal(np.log(20.0) - 0.25 * satisfaction, 0.6), 1)

    cart_abandon = _beta(rng, 2.0 + 0.8 * np.maximum(price_sensitivity, 0.0), 5.0, n)
    discount_use = _beta(rng, 1.2 + np.maximum(price_sensitivity + 0.5, 0.0), 4.0, n)
    risky_payment = np.isin(payment, [3, 4])  # bank transfers and gift cards bounce more often
    late = np.minimum(rng.poisson(0.3 * np.exp(0.5 * price_sensitivity) * (1 + risky_payment)), tenure)
    failed = rng.poisson(0.08 + 0.25 * risky_payment).astype(np.float64)
    email_open = _beta(rng, 1.5 + np.maximum(engagement + 1.0, 0.0), 5.0, n)
    nps = np.clip(np.round(7.0 + 1.8 * satisfaction + rng.normal(0.0, 1.2, n)), 0, 10)
    loyalty = np.floor(total * rng.uniform(0.3, 1.0, n))
    devices = 1.0 + rng.poisson(np.exp(-0.5 + 0.4 * engagement))
    autopay = (rng.random(n) < 0.45 + 0.25 * (contract > 0) - 0.25 * np.isin(payment, [2, 4])).astype(np.float64)
    mobile_app = (rng.random(n) < _sigmoid(0.3 + 0.8 * engagement - 0.03 * (age - 40))).astype(np.float64)

    logit = (
        -2.4
        + 1.1 * (contract == 0)
        - 0.9 * (contract == 2)
        - 0.03 * np.minimum(tenure, 48)
        + 0.45 * calls_30d
        + 0.12 * calls_90d
        + 0.025 * np.minimum(last_login, 60)
        - 0.5 * engagement
        - 0.5 * satisfaction
        + 0.3 * np.minimum(late, 4)
        + 0.5 * failed
        + 1.2 * discount_use * (price_sensitivity > 0)
        - 0.5 * autopay
        + 0.3 * (plan == 0)
        + 0.2 * np.isin(codes["acquisition_channel"], [1, 5])  # paid clicks and affiliates are fickle
        + 0.15 * delays
    )
    churned = (rng.random(n) < _sigmoid(logit)).astype(np.int64)

    # Holes where a real table has them: age not given, the survey mostly unanswered,
    # e-mail opt-outs, and averages over nothing (no sessions, orders or calls).
    age[rng.random(n) < 0.06] = np.nan
    nps[rng.random(n) < 0.65] = np.nan
    email_open[rng.random(n) < 0.12] = np.nan
    session_minutes[idle] = np.nan
    pages[idle] = np.nan
    order_value[no_orders] = np.nan
    resolution[calls_90d == 0] = np.nan

    numeric: dict[str, Floats] = {
        "tenure_months": tenure,
        "age": age,
        "monthly_spend": monthly,
        "total_spend": total,
        "orders_90d": orders,
        "avg_order_value": order_value,
        "days_since_last_order": last_order,
        "returns_90d": returns,
        "delivery_delays_90d": delays,
        "support_calls_30d": calls_30d,
        "support_calls_90d": calls_90d,
        "avg_resolution_hours": resolution,
        "sessions_30d": sessions,
        "avg_session_minutes": session_minutes,
        "pages_per_session": pages,
        "days_since_last_login": last_login,
        "cart_abandon_rate": cart_abandon,
        "discount_usage_rate": discount_use,
        "late_payments_12m": late.astype(np.float64),
        "failed_payments_90d": failed,
        "email_open_rate": email_open,
        "nps_score": nps,
        "loyalty_points": loyalty,
        "devices": devices.astype(np.float64),
        "autopay": autopay,
        "mobile_app": mobile_app,
    }
    columns: dict[str, Any] = {"customer_id": _customer_ids(n)}
    for name, cats in CATEGORIES.items():
        columns[name] = pc.take(pa.array(cats, pa.string()), pa.array(codes[name]))
    for name in NUMERIC_FEATURES:
        columns[name] = pa.array(numeric[name], pa.float64(), from_pandas=True)  # NaN → null
    columns["churned"] = pa.array(churned, pa.int64())
    return pa.table(columns)


def _customer_ids(n: int) -> pa.Array:
    """`C-000001` … built as fixed-width bytes: a Python f-string per row costs seconds at a million."""
    width = max(6, len(str(n)))
    ids = np.arange(1, n + 1, dtype=np.int64)
    digits = (ids[:, None] // 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)) % 10 + ord("0")
    chars = np.empty((n, width + 2), dtype=np.uint8)
    chars[:, 0], chars[:, 1] = ord("C"), ord("-")
    chars[:, 2:] = digits
    return pa.array(chars.view(f"S{width + 2}").ravel()).cast(pa.string())


def features_matrix(table: pa.Table) -> Floats:
    """The signature's features as one float64 matrix (categories as codes, missing as NaN).

    Column for column this is what `CHURN_SIGNATURE.coerce(table)` hands a model, done
    with Arrow kernels so that training on a million rows does not walk them in Python.
    """
    names = set(table.schema.names)
    missing = [f.name for f in CHURN_SIGNATURE.inputs if f.name not in names]
    if missing:
        raise InvalidInput(f"the customers table lacks feature column(s) {missing}")
    # Filled feature by feature, then transposed once: writing strided columns into a
    # row-major matrix directly is several times slower at a million rows.
    by_feature = np.empty((len(CHURN_SIGNATURE.inputs), table.num_rows), dtype=np.float64)
    for i, feature in enumerate(CHURN_SIGNATURE.inputs):
        column = table.column(feature.name)
        if feature.categories is not None:
            codes = pc.index_in(column, value_set=pa.array(feature.categories, pa.string()))
            if codes.null_count > column.null_count:
                unknown = pc.filter(column, pc.and_(pc.is_null(codes), pc.is_valid(column)))
                raise InvalidInput(
                    f"column {feature.name!r} holds {unknown[0].as_py()!r}, not one of {list(feature.categories)}"
                )
            column = codes
        by_feature[i] = pc.cast(column, pa.float64()).to_numpy()
    return np.ascontiguousarray(by_feature.T)


def train_churn(table: pa.Table, seed: int = 7) -> Any:
    """A `HistGradientBoostingClassifier` fitted on `features_matrix(table)` against `churned`.

    Fitted on a plain matrix (not a DataFrame), so the sklearn flavor feeds it the same
    float matrix at prediction time; the category columns are declared categorical so
    the trees split on sets of codes rather than on their arbitrary order.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    categorical = [i for i, f in enumerate(CHURN_SIGNATURE.inputs) if f.dtype == "category"]
    model = HistGradientBoostingClassifier(
        max_iter=150,
        learning_rate=0.06,
        max_leaf_nodes=15,
        min_samples_leaf=40,
        l2_regularization=1.0,
        categorical_features=categorical,
        early_stopping=False,  # a fixed number of rounds keeps training time and results predictable
        random_state=seed,
    )
    # One OpenMP thread: HistGradientBoosting meets at a thread barrier thousands of times per
    # fit, and when another process holds a core each barrier waits out a scheduler slice, which
    # can make a fit many times longer (docs/serving-batching.md, "The same trap in training").
    # One thread costs little.
    with threadpool_limits(limits=1, user_api="openmp"):
        return model.fit(features_matrix(table), table.column("churned").to_numpy())
