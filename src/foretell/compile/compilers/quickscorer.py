"""Tree ensembles scored by bit vectors (QuickScorer), as C that gcc compiles.

tl2cgen writes each tree as nested `if`s. A row walks every tree down one branch after
another, and on real data many of those branches are mispredicted, so the walk spends
most of its time waiting on the branch predictor (docs/compile.md, "How the trees are
scored").

QuickScorer (Lucchese et al., SIGIR 2015) turns the walk inside out. Number each
tree's leaves left to right and give the tree a bit vector with every leaf set. A
split that sends the row right rules out every leaf of its left subtree: clear those
bits. Once every split that sends the row right has cleared its bits, the lowest set
bit is the leaf the walk would have reached: each leaf left of it hangs off the left
of some split on its path that went right. The splits that go right are found
feature by feature: with a feature's thresholds sorted, they are a prefix of the list
(the thresholds below the row's value), scanned with one predictable loop. Missing
values and categorical splits cannot be sorted that way, so each has its own list
of splits to apply, chosen by one lookup.

The generated file (quickscorer_c.py) is data (the sorted thresholds, the bit masks,
the leaf values) and one fixed evaluator, so it builds in a fraction of a second whatever the model's
size. It keeps tl2cgen's order of operations (trees summed in order, averaged, base
scores added, then the link function), and the parity proof checks its answers
against the framework's before it is ever used, as for any compiled predictor.

It takes trees of at most 64 leaves (one machine word per tree: the boosted models'
defaults of 15, 31 or 63 leaves); deeper trees, such as a random forest grown to
purity, go to tl2cgen.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from foretell.errors import NotCompilable

__all__ = ["MAX_LEAVES", "Tables", "quickscorer_tables"]

MAX_LEAVES = 64
#: Category codes a categorical feature may use before its lookup table would outgrow the caches.
MAX_CATEGORY_ENTRIES = 4_000_000

# treelite's enums, as its field accessors return them.
_LEAF, _NUMERICAL, _CATEGORICAL = 0, 1, 2
_LESS, _LESS_OR_EQUAL = 2, 3

_POSTPROCESSORS = frozenset(
    {
        "identity",
        "identity_multiclass",
        "signed_square",
        "hinge",
        "sigmoid",
        "exponential",
        "exponential_standard_ratio",
        "logarithm_one_plus_exp",
        "softmax",
        "multiclass_ova",
    }
)


@dataclass
class _Lists:
    """Per-key lists of (tree, mask) to apply, flattened with offsets."""

    trees: list[int] = field(default_factory=list)
    masks: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=lambda: [0])

    def close(self, entries: list[tuple[int, int]]) -> None:
        for tree, mask in entries:
            self.trees.append(tree)
            self.masks.append(mask)
        self.offsets.append(len(self.trees))


@dataclass
class Tables:
    """A treelite ensemble laid out for the bit-vector evaluator."""

    n_features: int
    n_trees: int
    n_target: int
    max_n_class: int
    num_class: list[int]
    leaf_type: str
    round_inputs: bool
    thresholds: list[float] = field(default_factory=list)
    numeric: _Lists = field(default_factory=_Lists)
    missing: _Lists = field(default_factory=_Lists)
    categorical: _Lists = field(default_factory=_Lists)
    category_base: list[int] = field(default_factory=list)
    category_max: list[int] = field(default_factory=list)
    leaf_base: list[int] = field(default_factory=list)
    tree_width: list[int] = field(default_factory=list)
    output_base: list[int] = field(default_factory=list)
    output_index: list[int] = field(default_factory=list)
    leaf_values: list[float] = field(default_factory=list)
    base_scores: list[float] = field(default_factory=list)
    average_counts: list[int] = field(default_factory=list)
    postprocessor: str = "identity"
    sigmoid_alpha: float = 1.0
    ratio_c: float = 1.0
    max_leaves: int = 1

    @property
    def n_outputs(self) -> int:
        return self.n_target * self.max_n_class


def _header(model: Any, name: str) -> Any:
    return model.get_header_accessor().get_field(name)


def quickscorer_tables(model: Any) -> Tables:
    """Lay `model` (a treelite model) out as bit-vector tables, or raise NotCompilable saying why not."""
    threshold_type, leaf_type = str(model.input_type), str(model.output_type)
    if threshold_type not in ("float64", "float32") or leaf_type not in ("float64", "float32"):
        raise NotCompilable(f"trees with {threshold_type} thresholds and {leaf_type} leaves")
    postprocessor = str(_header(model, "postprocessor"))
    if postprocessor not in _POSTPROCESSORS:
        raise NotCompilable(f"link function {postprocessor!r}")
    num_class = [int(c) for c in np.atleast_1d(_header(model, "num_class"))]
    n_target = int(np.atleast_1d(_header(model, "num_target"))[0])
    tables = Tables(
        n_features=int(model.num_feature),
        n_trees=int(model.num_tree),
        n_target=n_target,
        max_n_class=max(num_class),
        num_class=num_class,
        leaf_type="double" if leaf_type == "float64" else "float",
        round_inputs=threshold_type == "float32",
        postprocessor=postprocessor,
        sigmoid_alpha=float(np.atleast_1d(_header(model, "sigmoid_alpha"))[0]),
        ratio_c=float(np.atleast_1d(_header(model, "ratio_c"))[0]),
    )
    shape = [int(s) for s in np.atleast_1d(_header(model, "leaf_vector_shape"))]
    target_ids = np.atleast_1d(_header(model, "target_id")).tolist()
    class_ids = np.atleast_1d(_header(model, "class_id")).tolist()
    base_scores = np.asarray(_header(model, "base_scores"), dtype=np.float64).ravel()
    tables.base_scores = (base_scores.tolist() + [0.0] * tables.n_outputs)[: tables.n_outputs]
    counts = [0] * tables.n_outputs

    numeric: dict[int, list[tuple[float, int, int]]] = defaultdict(list)
    missing: dict[int, list[tuple[int, int]]] = defaultdict(list)
    categorical: dict[int, list[tuple[frozenset[int], bool, int, int]]] = defaultdict(list)
    for tree_id in range(tables.n_trees):
        tree = model.get_tree_accessor(tree_id)
        outputs = _outputs_of(tables, shape, int(target_ids[tree_id]), int(class_ids[tree_id]))
        for index in outputs:
            counts[index] += 1
        leaves = _Tree(tree).leaves_and_masks(tree_id, numeric, missing, categorical, threshold_type)
        tables.max_leaves = max(tables.max_leaves, len(leaves))
        tables.leaf_base.append(len(tables.leaf_values))
        tables.tree_width.append(len(outputs))
        tables.output_base.append(len(tables.output_index))
        tables.output_index += outputs
        for values in leaves:
            if len(values) != len(outputs):
                raise NotCompilable(f"tree {tree_id}: leaf vectors of {len(values)} values for {len(outputs)} outputs")
            tables.leaf_values += values
    if bool(np.atleast_1d(_header(model, "average_tree_output"))[0]):
        tables.average_counts = counts

    entries = 0
    for feature in range(tables.n_features):
        ordered = sorted(numeric.get(feature, []))
        tables.thresholds += [tau for tau, _, _ in ordered]
        tables.numeric.close([(tree, mask) for _, tree, mask in ordered])
        tables.missing.close(missing.get(feature, []))
        splits = categorical.get(feature)
        if not splits:
            tables.category_base.append(-1)
            tables.category_max.append(-1)
            continue
        largest = max((max(codes) for codes, _, _, _ in splits if codes), default=-1)
        entries += (largest + 2) * len(splits)
        if entries > MAX_CATEGORY_ENTRIES:
            raise NotCompilable("categorical splits over too many category codes for bit-vector tables")
        tables.category_base.append(len(tables.categorical.offsets) - 1)
        tables.category_max.append(largest)
        for code in range(largest + 2):  # every code, then any other value ("not in any list")
            tables.categorical.close(
                [
                    (tree, mask)
                    for codes, right_if_listed, tree, mask in splits
                    if (code in codes and code <= largest) == right_if_listed
                ]
            )
    return tables


def _outputs_of(tables: Tables, shape: list[int], target_id: int, class_id: int) -> list[int]:
    """The output slots a tree's leaves add to, in its leaf vectors' order (treelite's layout)."""
    targets = list(range(tables.n_target)) if target_id < 0 else [target_id]
    classes = list(range(tables.max_n_class)) if class_id < 0 else [class_id]
    if len(targets) * len(classes) != shape[0] * shape[1] and not (len(targets) == len(classes) == 1):
        raise NotCompilable(f"leaf vectors of shape {shape} for {len(targets)} targets and {len(classes)} classes")
    return [t * tables.max_n_class + c for t in targets for c in classes]


class _Tree:
    def __init__(self, tree: Any) -> None:
        self.node_type = np.asarray(tree.get_field("node_type")).tolist()
        self.left = np.asarray(tree.get_field("cleft")).tolist()
        self.right = np.asarray(tree.get_field("cright")).tolist()
        self.feature = np.asarray(tree.get_field("split_index")).tolist()
        self.default_left = np.asarray(tree.get_field("default_left")).tolist()
        self.threshold = np.asarray(tree.get_field("threshold"), dtype=np.float64).tolist()
        self.cmp = np.asarray(tree.get_field("cmp")).tolist()
        self.leaf_value = np.asarray(tree.get_field("leaf_value"), dtype=np.float64).tolist()
        self.leaf_vector = np.asarray(tree.get_field("leaf_vector"), dtype=np.float64).tolist()
        self.vector_begin = np.asarray(tree.get_field("leaf_vector_begin")).tolist()
        self.vector_end = np.asarray(tree.get_field("leaf_vector_end")).tolist()
        self.category_list = np.asarray(tree.get_field("category_list")).tolist()
        self.category_begin = np.asarray(tree.get_field("category_list_begin")).tolist()
        self.category_end = np.asarray(tree.get_field("category_list_end")).tolist()
        self.category_right = np.asarray(tree.get_field("category_list_right_child")).tolist()

    def leaves_and_masks(
        self,
        tree_id: int,
        numeric: dict[int, list[tuple[float, int, int]]],
        missing: dict[int, list[tuple[int, int]]],
        categorical: dict[int, list[tuple[frozenset[int], bool, int, int]]],
        threshold_type: str,
    ) -> list[list[float]]:
        """Each leaf's values, left to right; each split's mask goes into its feature's lists."""
        leaves: list[list[float]] = []
        # In-order numbering: a subtree's leaves are consecutive, so a left subtree is one run of bits.
        stack: list[tuple[int, bool]] = [(0, False)]
        spans: dict[int, tuple[int, int]] = {}
        while stack:
            node, expanded = stack.pop()
            if self.node_type[node] == _LEAF:
                spans[node] = (len(leaves), len(leaves) + 1)
                leaves.append(self._leaf(node))
                if len(leaves) > MAX_LEAVES:
                    raise NotCompilable(f"tree {tree_id} has over {MAX_LEAVES} leaves")
            elif expanded:
                spans[node] = (spans[self.left[node]][0], spans[self.right[node]][1])
            else:
                stack += [(node, True), (self.right[node], False), (self.left[node], False)]
        for node, kind in enumerate(self.node_type):
            if kind == _LEAF or node not in spans:
                continue
            low, high = spans[self.left[node]]
            mask = ~(((1 << (high - low)) - 1) << low) & (2**MAX_LEAVES - 1)
            feature = self.feature[node]
            if not self.default_left[node]:
                missing[feature].append((tree_id, mask))
            if kind == _NUMERICAL:
                numeric[feature].append((self._goes_right_above(node, threshold_type), tree_id, mask))
            elif kind == _CATEGORICAL:
                codes = frozenset(self.category_list[self.category_begin[node] : self.category_end[node]])
                categorical[feature].append((codes, bool(self.category_right[node]), tree_id, mask))
            else:
                raise NotCompilable(f"tree {tree_id}: split type {kind}")
        return leaves

    def _leaf(self, node: int) -> list[float]:
        begin, end = self.vector_begin[node], self.vector_end[node]
        return self.leaf_vector[begin:end] if end > begin else [self.leaf_value[node]]

    def _goes_right_above(self, node: int, threshold_type: str) -> float:
        """The value above which a row goes right at this split (`x <= t` goes left, so: above t)."""
        threshold, operator = self.threshold[node], self.cmp[node]
        if np.isnan(threshold):
            raise NotCompilable("a split threshold is NaN")
        if operator == _LESS_OR_EQUAL:
            return float(threshold)
        if operator == _LESS and threshold == -np.inf:
            raise NotCompilable("a `< -inf` split (every value goes right, -inf too)")
        if operator == _LESS:  # x < t goes left: right from t itself, i.e. above the value just below t
            if threshold_type == "float32":
                return float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))
            return float(np.nextafter(threshold, -np.inf))
        raise NotCompilable(f"comparison operator code {operator} (only < and <= splits)")
