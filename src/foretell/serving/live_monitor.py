"""Live gauges of what the server predicts: score distributions, feature drift, labels joined.

Nothing here runs on the request path. The ledger writer hands every table of rows it
converts (about four times a second) to `LiveMonitor.observe`, on its own thread; labels
posted to the server are counted against the ledger by a thread of their own
(`LabelJoins`). `/metrics` then reads figures that are already computed:

- `foretell_prediction_score{model,source}`: a histogram of the `score` output of answered
  predictions (buckets of 0.05 for a classifier's or a score the reference profile keeps
  within [0, 1], else the profile's ventiles, else Prometheus' defaults);
- `foretell_feature_drift_psi{model,feature}`: each one-value input's PSI against the
  serving version's reference profile, over the last `window_seconds` of traffic that
  carried its inputs (`foretell.profiles.WindowedBins`); none for a version without a
  profile, nor for a vector input (`foretell monitor` judges those);
- `foretell_labels_received_total{model}` / `foretell_labels_joined_total{model}`: labels
  posted here, and those of them that joined a prediction in the ledger (by the ledger's
  point-in-time rule), counted a few seconds after they arrive.
"""

# ruff: noqa: S608 - the SQL is built from quoted values and ints

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from foretell.profiles.drift import WindowedBins
from foretell.profiles.reference import ReferenceProfile

if TYPE_CHECKING:
    import pyarrow as pa

    from foretell.ledger.query import LedgerReader

__all__ = ["LabelJoins", "LiveMonitor"]

log = logging.getLogger("foretell.serving")

_UNIT_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

#: A version's reference profile, or None when it has none (`foretell.registry.ProfileStore.load`).
ProfileOf = Callable[[str, int], ReferenceProfile | None]


class _Scores:
    """One (model, source) histogram: counts per bucket (the last for past the top one) and their sum."""

    __slots__ = ("counts", "edges", "total")

    def __init__(self, edges: tuple[float, ...]) -> None:
        self.edges = edges
        self.counts = np.zeros(len(edges) + 1, dtype=np.int64)
        self.total = 0.0

    def add(self, values: np.ndarray) -> None:
        # Prometheus buckets are `le`: a value equal to an edge belongs to that edge's bucket.
        self.counts += np.bincount(np.searchsorted(self.edges, values, side="left"), minlength=len(self.counts))
        self.total += float(values.sum())


class LiveMonitor(Collector):
    """Figures computed from the rows the ledger writer converts; a Prometheus collector of them."""

    def __init__(
        self,
        profile_of: ProfileOf | None = None,
        *,
        ledger: str | None = None,
        window_seconds: float = 900.0,
        join_every_seconds: float = 2.0,
    ) -> None:
        self._profile_of = profile_of
        self.window_seconds = window_seconds
        self._lock = threading.Lock()
        self._scores: dict[tuple[str, str], _Scores] = {}
        self._edges: dict[str, tuple[float, ...]] = {}
        self._received: Counter[str] = Counter()
        self._joined: Counter[str] = Counter()
        self._bins: dict[tuple[str, int], WindowedBins | None] = {}
        self._psi: dict[tuple[str, str], float] = {}
        self._unreadable: set[tuple[str, int]] = set()
        self._joins = LabelJoins(ledger, self, every_seconds=join_every_seconds) if ledger is not None else None
        self._warm()

    def _warm(self) -> None:
        """Run the Arrow kernels `observe` uses once, on a row of nothing, while the server starts.

        Their first use sets up pyarrow's compute functions: at start-up, not in the middle of the
        first traffic. (The memory a flood left behind came from copying whole chunks, not from this;
        see `observe`.)
        """
        import pyarrow as pa

        row = pa.table(
            {
                "status": ["ok"],
                "source": ["live"],
                "version": pa.array([0], pa.int64()),
                "outputs": pa.array([{"score": 0.5, "proba": [0.5, 0.5]}]),
                "inputs": pa.array([{"x": 0.0}]),
            }
        )
        profile_of, self._profile_of = self._profile_of, None  # no profile to look up for a row of nothing
        try:
            self.observe("", row)
        finally:
            self._profile_of = profile_of
        with self._lock:
            self._scores.clear()
            self._edges.clear()
            self._bins.clear()

    def labels_written(self, model: str, path: str, count: int) -> None:
        """Labels the server just published as the file `path`: counted, and their joins counted soon after."""
        if self._joins is not None:
            self._joins.written(model, path, count)
        else:
            self.labels_counted(model, count, 0)

    def close(self) -> None:
        if self._joins is not None:
            self._joins.close()

    # -- fed by the ledger writer's thread --------------------------------------------------------

    def observe(self, model: str, table: pa.Table) -> None:
        """Rows the ledger converted (`LedgerWriter` observer): their inputs into the drift window, their scores.

        Column by column, never the whole table filtered: rows may carry large vectors, and a
        copy of every column of every chunk would be memory the writer's thread keeps for good.
        """
        if table.num_rows == 0 or "status" not in table.column_names:
            return
        import pyarrow.compute as pc
        import pyarrow.types as pa_types

        ok = pc.equal(table.column("status"), "ok")
        if not pc.any(ok).as_py():
            return
        names = table.column_names
        if "inputs" in names and pa_types.is_struct(table.column("inputs").type):
            # A shadow row repeats the inputs of the row that answered: counted once, under the answering version.
            answered = pc.and_(ok, pc.not_equal(table.column("source"), "shadow"))
            with_inputs = pc.and_(answered, pc.is_valid(table.column("inputs")))
            self._observe_inputs(model, table.column("version"), table.column("inputs"), with_inputs)
        if "outputs" in names and pa_types.is_struct(table.column("outputs").type):
            self._observe_scores(model, table, ok)

    def _observe_scores(self, model: str, table: pa.Table, ok: Any) -> None:
        """Count a one-number `score` output per source (a vector output has no one score to chart)."""
        import pyarrow.compute as pc
        import pyarrow.types as pa_types

        outputs = table.column("outputs")
        kinds = {f.name: f.type for f in outputs.type}
        kind = kinds.get("score")
        if kind is None or not (pa_types.is_floating(kind) or pa_types.is_integer(kind)):
            return
        score = pc.struct_field(outputs, "score")
        chosen = pc.and_(ok, pc.is_valid(score))
        scores = pc.filter(score, chosen).to_numpy(zero_copy_only=False).astype(np.float64)
        if not len(scores):
            return
        sources = pc.filter(table.column("source"), chosen).to_numpy(zero_copy_only=False)
        version = pc.filter(table.column("version"), chosen)[0].as_py()
        edges = self._edges_for(model, int(version), probability="proba" in kinds)
        finite = np.isfinite(scores)
        for source in np.unique(sources):
            counted = scores[(sources == source) & finite]
            with self._lock:
                histogram = self._scores.get((model, str(source)))
                if histogram is None:
                    histogram = self._scores[(model, str(source))] = _Scores(edges)
                histogram.add(counted)

    def _observe_inputs(self, model: str, versions: Any, inputs: Any, chosen: Any) -> None:
        """Count the inputs of answered rows into their version's window; refresh the PSI gauges."""
        import pyarrow.compute as pc

        for version in pc.unique(pc.filter(versions, chosen)).to_pylist():
            bins = self._bins_for(model, int(version))
            if bins is None:
                continue
            rows = pc.and_(chosen, pc.equal(versions, version))
            # One value per row only: a vector input (an image, an embedding) is thousands of values a row,
            # too much to count on the writer's thread for a gauge; `foretell monitor` judges it offline.
            scalar = [field.name for field in inputs.type if not _is_vector(field.type)]
            if not scalar:
                continue
            columns = {name: pc.filter(pc.struct_field(inputs, name), rows) for name in scalar}
            bins.add(columns, at=time.time())
            found = {name: value for name, value in bins.psi_by_feature().items() if value is not None}
            with self._lock:
                self._psi.update({(model, name): value for name, value in found.items()})

    def _bins_for(self, model: str, version: int) -> WindowedBins | None:
        key = (model, version)
        if key not in self._bins:
            profile = self._profile(model, version)
            self._bins[key] = WindowedBins(profile, window=self.window_seconds) if profile is not None else None
        return self._bins[key]

    def _profile(self, model: str, version: int) -> ReferenceProfile | None:
        """The version's reference profile; None without one, or when it cannot be read (said once per version)."""
        if self._profile_of is None:
            return None
        try:
            return self._profile_of(model, version)
        except Exception as exc:
            if (model, version) not in self._unreadable:
                self._unreadable.add((model, version))
                log.warning("%s v%s: its reference profile cannot be read (no drift gauges): %s", model, version, exc)
            return None

    def _edges_for(self, model: str, version: int, *, probability: bool) -> tuple[float, ...]:
        """The score buckets of a model (fixed by its first version seen: a histogram's buckets never change).

        A classifier's score (it answers `proba` too) is a probability: buckets of 0.05 up to 1.
        """
        edges = self._edges.get(model)
        if edges is not None:
            return edges
        edges = _UNIT_BUCKETS if probability else _DEFAULT_BUCKETS
        profile = self._profile(model, version)
        score = getattr(profile, "outputs", {}).get("score") if profile is not None else None
        if not probability and score is not None and getattr(score, "kind", None) == "numeric":
            if score.min >= 0.0 and score.max <= 1.0:
                edges = _UNIT_BUCKETS
            else:
                quantiles = score.quantiles
                edges = tuple(sorted({float(quantiles[i]) for i in range(5, 101, 5)}))
        self._edges[model] = edges
        return edges

    # -- fed by LabelJoins --------------------------------------------------------------------------

    def labels_counted(self, model: str, received: int, joined: int) -> None:
        with self._lock:
            self._received[model] += received
            self._joined[model] += joined

    # -- read at each scrape ------------------------------------------------------------------------

    def describe(self) -> Iterator[Any]:
        return iter(())  # families appear as traffic does; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        with self._lock:
            scores = {key: (h.edges, h.counts.copy(), h.total) for key, h in self._scores.items()}
            received, joined = dict(self._received), dict(self._joined)
            drift = dict(self._psi)
        family = HistogramMetricFamily(
            "foretell_prediction_score",
            "The score output of answered predictions, by model and source (batch, live, precomputed, ...).",
            labels=["model", "source"],
        )
        for (model, source), (edges, counts, total) in sorted(scores.items()):
            cumulative = np.cumsum(counts)
            buckets = [(_le(edge), float(c)) for edge, c in zip(edges, cumulative[:-1], strict=True)]
            buckets.append(("+Inf", float(cumulative[-1])))
            family.add_metric([model, source], buckets, total)
        yield family
        for name, values, text in (
            ("foretell_labels_received", received, "Labels posted to this server (POST /v1/labels)."),
            ("foretell_labels_joined", joined, "Labels posted here that joined a prediction in the ledger."),
        ):
            counter = CounterMetricFamily(name, text, labels=["model"])
            for model, count in sorted(values.items()):
                counter.add_metric([model], count)
            yield counter
        gauge = GaugeMetricFamily(
            "foretell_feature_drift_psi",
            "Each input's PSI against the serving version's reference profile, over the recent window.",
            labels=["model", "feature"],
        )
        for (model, feature), psi in sorted(drift.items()):
            gauge.add_metric([model, feature], psi)
        yield gauge


def _is_vector(kind: pa.DataType) -> bool:
    import pyarrow.types as pa_types

    return bool(pa_types.is_list(kind) or pa_types.is_large_list(kind) or pa_types.is_fixed_size_list(kind))


def _le(edge: float) -> str:
    return repr(float(edge))


class LabelJoins:
    """Counts, off the request path, how many of the labels posted here joined a prediction in the ledger."""

    def __init__(self, location: str, monitor: LiveMonitor, *, every_seconds: float = 2.0) -> None:
        self._location = location
        self._reader: LedgerReader | None = None  # made when the first labels come: DuckDB is not a server's start-up
        self._monitor = monitor
        self._every = every_seconds
        self._pending: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def written(self, model: str, path: str, count: int) -> None:
        """A label file the server just published (`publish_labels`); counted on the joiner's thread."""
        with self._lock:
            self._pending.append((model, path, count))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="label-joins", daemon=True)
                self._thread.start()
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            time.sleep(0 if self._stop.is_set() else self._every)  # let a burst of posts gather
            with self._lock:
                pending, self._pending = self._pending, []
            for model in sorted({m for m, _, _ in pending}):
                files = [(p, n) for m, p, n in pending if m == model]
                try:
                    joined = self._joined(model, [p for p, _ in files])
                except Exception as exc:  # a ledger that cannot be read leaves the counts behind, not the server
                    log.warning("labels for %s: could not count their joins in the ledger: %s", model, exc)
                    joined = 0
                self._monitor.labels_counted(model, sum(n for _, n in files), joined)

    def _joined(self, model: str, paths: list[str]) -> int:
        from foretell.ledger.query import LedgerReader
        from foretell.ledger.sql import file_list

        if self._reader is None:
            self._reader = LedgerReader(self._location)
        files = file_list([self._reader.url_of(p) for p in paths])
        with self._reader.session(model) as session:
            [(count,)] = session.rows(
                "SELECT count(DISTINCT label_id) FROM labelled "
                f"WHERE label_id IN (SELECT label_id FROM read_parquet({files}))"
            )
        return int(count)
