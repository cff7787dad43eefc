"""The natural inputs an outside thief may own for a model: a demo model's public rows (rows of its data set that
neither trained it nor measure the copies), split exactly as its full version's provenance recorded; none for an
operator's model, whose owner registered no such data (its campaigns then start from uniform draws).

This is where the demo data sets live, not how the platform treats a model: the campaigns read only the rows.
"""

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from serving.ml import breast_cancer, digits


def _digits_public(provenance: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    # The split exactly as the provenance recorded it; what it does not record is the loader's default.
    recorded = {"seed": "split_seed", "test_fraction": "test_fraction", "public_fraction": "public_fraction"}
    split = digits.load_digits_split(**{arg: provenance[key] for arg, key in recorded.items() if key in provenance})
    return split.X_public, split.y_public


def _breast_cancer_public(provenance: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    split = breast_cancer.load_split(seed=int(provenance.get("split_seed", breast_cancer.SPLIT_SEED)))
    return split.X_public, split.y_public


DEMO_PUBLIC_ROWS: dict[str, Callable[[Mapping[str, Any]], tuple[np.ndarray, np.ndarray]]] = {
    digits.SLUG: _digits_public,
    breast_cancer.SLUG: _breast_cancer_public,
}


def public_rows(slug: str, provenance: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """The public rows (raw values (n, d)) and their true class indices a thief may own for model `slug`, whose full
    version has `provenance`; None when it has none: not a demo model, or a full version trained on every row
    outside the held-out set (`public_rows` absent or 0)."""
    loader = DEMO_PUBLIC_ROWS.get(slug)
    if loader is None or not provenance.get("public_rows"):
        return None
    return loader(provenance)
