"""Tree ensembles scored by bit vectors (QuickScorer), as C that gcc compiles.

tl2cgen writes each tree as nested `if`s. A row walks every tree down one branch after
another, and on real data about half of those branches are mispredicted: 150 trees of
15 leaves cost ~2.5 µs a row here, ~50 cycles a tree, almost all of it waiting on the
branch predictor.

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

The generated file is data (the sorted thresholds, the bit masks, the leaf values)
and one fixed evaluator, so it builds in a fraction of a second whatever the model's
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

from foretell.adapters.compiled.base import ENTRY_VERSION
from foretell.errors import NotCompilable

__all__ = ["MAX_LEAVES", "Tables", "quickscorer_c", "quickscorer_tables"]

MAX_LEAVES = 64
#: Category codes a categorical feature may use before its lookup table would outgrow the caches.
MAX_CATEGORY_ENTRIES = 4_000_000
#: tl2cgen reads a category from a value in [0, 2**24] (a float's exact integers), as does this evaluator.
_LARGEST_CATEGORY = float(2**24)

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


def _doubles(values: list[float]) -> str:
    return ",".join(_double(v) for v in values) or "0"


def _double(value: float) -> str:
    if value == np.inf:
        return "INFINITY"
    if value == -np.inf:
        return "-INFINITY"
    return float(value).hex()


def _ints(values: list[int]) -> str:
    return ",".join(str(v) for v in values) or "0"


def _masks(values: list[int], bits: int) -> str:
    return ",".join(f"0x{v & (2**bits - 1):x}ULL" for v in values) or "0"


def quickscorer_c(tables: Tables) -> str:
    """C for the library: the tables as static arrays, the evaluator and foretell's entry point."""
    scalar_leaves = all(width == 1 for width in tables.tree_width)
    bits = next(b for b in (8, 16, 32, 64) if tables.max_leaves <= b)
    tree_bits = 16 if tables.n_trees < 2**16 else 32
    return f"""
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))
typedef {tables.leaf_type} leaf_t;
typedef uint{bits}_t mask_t;    /* one bit per leaf: the widest tree's leaves fit */
typedef uint{tree_bits}_t tree_t;
enum {{ N_FEATURES = {tables.n_features}, N_TREES = {tables.n_trees}, N_TARGET = {tables.n_target},
       MAX_N_CLASS = {tables.max_n_class}, N_OUTPUTS = {tables.n_outputs} }};
#define ROUND_INPUTS {int(tables.round_inputs)}
#define SCALAR_LEAVES {int(scalar_leaves)}
#define AVERAGE {int(bool(tables.average_counts))}
#define BLOCK 8

static const int32_t num_class[] = {{{_ints(tables.num_class)}}};
static const double thresholds[] = {{{_doubles(tables.thresholds)}}};
static const int32_t numeric_offsets[] = {{{_ints(tables.numeric.offsets)}}};
static const tree_t numeric_tree[] = {{{_ints(tables.numeric.trees)}}};
static const mask_t numeric_mask[] = {{{_masks(tables.numeric.masks, bits)}}};
static const int32_t missing_offsets[] = {{{_ints(tables.missing.offsets)}}};
static const tree_t missing_tree[] = {{{_ints(tables.missing.trees)}}};
static const mask_t missing_mask[] = {{{_masks(tables.missing.masks, bits)}}};
static const int32_t category_base[] = {{{_ints(tables.category_base)}}};
static const int32_t category_max[] = {{{_ints(tables.category_max)}}};
static const int32_t category_offsets[] = {{{_ints(tables.categorical.offsets)}}};
static const tree_t category_tree[] = {{{_ints(tables.categorical.trees)}}};
static const mask_t category_mask[] = {{{_masks(tables.categorical.masks, bits)}}};
static const int32_t leaf_base[] = {{{_ints(tables.leaf_base)}}};
static const int32_t tree_width[] = {{{_ints(tables.tree_width)}}};
static const int32_t output_base[] = {{{_ints(tables.output_base)}}};
static const int32_t output_index[] = {{{_ints(tables.output_index)}}};
static const leaf_t leaf_values[] = {{{_doubles(tables.leaf_values)}}};
static const double base_scores[] = {{{_doubles(tables.base_scores)}}};
static const double average_counts[] = {{{_ints(tables.average_counts)}}};
static const double sigmoid_alpha = {_double(tables.sigmoid_alpha)};
static const double ratio_c = {_double(tables.ratio_c)};

{_POSTPROCESS_C[tables.postprocessor]}

static void apply(mask_t* v, const tree_t* trees, const mask_t* masks, int32_t begin, int32_t end) {{
  for (int32_t i = begin; i < end; ++i) v[trees[i]] &= masks[i];
}}

/* Scores up to BLOCK rows. Their bit vectors are kept side by side, so that each feature's
   thresholds are read once per block and the rows' sums run as independent chains. */
static void score_block(const double* rows, int64_t row_stride, int64_t col_stride, int32_t n_rows, int32_t single,
                        mask_t (*v)[N_TREES], leaf_t* result) {{
  memset(v, 0xff, sizeof(mask_t) * N_TREES * (size_t)n_rows);
  for (int32_t f = 0; f < N_FEATURES; ++f) {{
    const int32_t begin = numeric_offsets[f], end = numeric_offsets[f + 1];
    for (int32_t r = 0; r < n_rows; ++r) {{
      mask_t* bits = v[r];
      double x = rows[r * row_stride + f * col_stride];
      if (ROUND_INPUTS || single) x = (double)(float)x;
      if (isnan(x)) {{
        apply(bits, missing_tree, missing_mask, missing_offsets[f], missing_offsets[f + 1]);
        continue;
      }}
      for (int32_t i = begin; i < end && thresholds[i] < x; ++i) bits[numeric_tree[i]] &= numeric_mask[i];
      if (category_base[f] >= 0) {{
        int64_t list = (int64_t)category_max[f] + 1;
        if (x >= 0.0 && x <= {_double(_LARGEST_CATEGORY)}) {{
          const int64_t code = (int64_t)(uint32_t)x;
          if (code <= category_max[f]) list = code;
        }}
        const int32_t* at = category_offsets + category_base[f] + list;
        apply(bits, category_tree, category_mask, at[0], at[1]);
      }}
    }}
  }}
  for (int32_t k = 0; k < N_OUTPUTS * n_rows; ++k) result[k] = 0;
  for (int32_t t = 0; t < N_TREES; ++t) {{  /* trees in order, as tl2cgen sums them */
    const leaf_t* values = leaf_values + leaf_base[t];
#if SCALAR_LEAVES
    const int32_t slot = output_index[output_base[t]];
    for (int32_t r = 0; r < n_rows; ++r) result[r * N_OUTPUTS + slot] += values[__builtin_ctzll((uint64_t)v[r][t])];
#else
    const int32_t* slots = output_index + output_base[t];
    for (int32_t r = 0; r < n_rows; ++r) {{
      const leaf_t* leaf = values + __builtin_ctzll((uint64_t)v[r][t]) * tree_width[t];
      for (int32_t j = 0; j < tree_width[t]; ++j) result[r * N_OUTPUTS + slots[j]] += leaf[j];
    }}
#endif
  }}
  for (int32_t r = 0; r < n_rows; ++r) {{
    leaf_t* sums = result + r * N_OUTPUTS;
#if AVERAGE
    for (int32_t k = 0; k < N_OUTPUTS; ++k) sums[k] /= (leaf_t)average_counts[k];
#endif
    for (int32_t k = 0; k < N_OUTPUTS; ++k) sums[k] += (leaf_t)base_scores[k];
    postprocess(sums);
  }}
}}

EXPORT int32_t foretell_entry_version(void) {{ return {ENTRY_VERSION}; }}
EXPORT int32_t foretell_num_feature(void) {{ return N_FEATURES; }}
EXPORT int32_t foretell_num_output(void) {{ return N_OUTPUTS; }}
EXPORT int32_t foretell_value_bytes(void) {{ return (int32_t)sizeof(double); }}

/* Row r's feature f is rows[r * row_stride + f * col_stride] (C or Fortran order, no copy).
   nudge is for tl2cgen's input union; these tables read plain doubles, so it is ignored.
   single: round each value to float32 first, as the framework did before comparing it. */
EXPORT int32_t foretell_predict(const double* rows, int64_t n_rows, int64_t n_cols, int64_t row_stride,
                                int64_t col_stride, int32_t nudge, int32_t single, double* out) {{
  (void)nudge;
  (void)n_cols;
  /* On the heap: a block's bit vectors for thousands of trees would not fit a thread's stack. */
  mask_t (*v)[N_TREES] = malloc(sizeof(mask_t) * N_TREES * BLOCK);
  leaf_t* result = malloc(sizeof(leaf_t) * N_OUTPUTS * BLOCK);
  if (v == NULL || result == NULL) {{
    free(v);
    free(result);
    return 1;  /* out of memory */
  }}
  for (int64_t r = 0; r < n_rows; r += BLOCK) {{
    const int32_t n = n_rows - r < BLOCK ? (int32_t)(n_rows - r) : BLOCK;
    score_block(rows + r * row_stride, row_stride, col_stride, n, single, v, result);
    for (int32_t k = 0; k < N_OUTPUTS * n; ++k) out[r * N_OUTPUTS + k] = (double)result[k];
  }}
  free(v);
  free(result);
  return 0;
}}
"""


# treelite's link functions, in the margin's own type; per target over its classes where they are vectors.
_ELEMENTWISE = """
static void postprocess(leaf_t* result) {{
  for (int32_t k = 0; k < N_OUTPUTS; ++k) {{ const leaf_t x = result[k]; result[k] = {expression}; }}
}}
"""

_POSTPROCESS_C = {
    "identity": _ELEMENTWISE.format(expression="x"),
    "identity_multiclass": _ELEMENTWISE.format(expression="x"),
    "signed_square": _ELEMENTWISE.format(expression="copysign(x * x, x)"),
    "hinge": _ELEMENTWISE.format(expression="x > 0 ? (leaf_t)1 : (leaf_t)0"),
    "sigmoid": _ELEMENTWISE.format(expression="(leaf_t)1 / ((leaf_t)1 + exp(-(leaf_t)sigmoid_alpha * x))"),
    "multiclass_ova": _ELEMENTWISE.format(expression="(leaf_t)1 / ((leaf_t)1 + exp(-(leaf_t)sigmoid_alpha * x))"),
    "exponential": _ELEMENTWISE.format(expression="exp(x)"),
    "exponential_standard_ratio": _ELEMENTWISE.format(expression="exp2(-x / (leaf_t)ratio_c)"),
    "logarithm_one_plus_exp": _ELEMENTWISE.format(expression="log1p(exp(x))"),
    "softmax": """
static void postprocess(leaf_t* result) {
  for (int32_t t = 0; t < N_TARGET; ++t) {
    leaf_t* row = result + t * MAX_N_CLASS;
    leaf_t largest = row[0], total = 0;
    for (int32_t k = 1; k < num_class[t]; ++k) largest = row[k] > largest ? row[k] : largest;
    for (int32_t k = 0; k < num_class[t]; ++k) { row[k] = exp(row[k] - largest); total += row[k]; }
    for (int32_t k = 0; k < num_class[t]; ++k) row[k] /= total;
  }
}
""",
}
