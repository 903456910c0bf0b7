"""The C source of a bit-vector (QuickScorer) library: the tables as static arrays, one fixed evaluator.

quickscorer.py lays a treelite ensemble out as `Tables`; this writes them out with the
evaluator that walks them and foretell's entry point (`foretell_predict`, the one
trees.py calls through ctypes). Every value is written exactly (floats in hex), so the
library's arithmetic is the tables' own.
"""

from __future__ import annotations

import numpy as np

from foretell.compile.compilers.base import ENTRY_VERSION
from foretell.compile.compilers.quickscorer import Tables

__all__ = ["quickscorer_c"]

#: tl2cgen reads a category from a value in [0, 2**24] (a float's exact integers), as does this evaluator.
_LARGEST_CATEGORY = float(2**24)


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
