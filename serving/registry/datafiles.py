"""The data files an operator registers with a model: reference inputs (natural inputs, unlabelled) and an optional
labelled held-out set, read and checked against the model's input schema.

Formats (no pickle anywhere: `numpy.load(..., allow_pickle=False)`):

- reference inputs: `.npy` of shape (n, features), or (n, height, width[, channels]) for an image model; or `.csv`
  with one input per line (a header line naming the features is optional; with one, columns may come in any order).
- held-out set: `.npz` holding `inputs` (as above) and `labels` (class names, or class indices 0..k-1); or `.csv`
  with the input columns and a `label` column of class names.

Every value must lie within its feature's bounds; an error names the file's row and the feature.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np

from serving.input_schema import InputSchema

MIN_REFERENCE_ROWS = 50
MAX_ROWS = 1_000_000


class DataFileError(ValueError):
    """A data file that cannot be used; the message says what is wrong and where."""


def _load_npy(data: bytes, what: str) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFileError(f"The {what} is not a .npy array of numbers: {exc}") from exc
    if not isinstance(array, np.ndarray):
        raise DataFileError(f"The {what} holds several arrays; give one .npy array (rows x features).")
    return array


def _as_rows(array: np.ndarray, schema: InputSchema, what: str) -> np.ndarray:
    if array.dtype.kind not in "iuf":
        raise DataFileError(f"The {what} must hold numbers, got values of type {array.dtype}.")
    shapes = [(schema.n_features,)]
    if schema.is_image:
        shapes.append(schema.image_shape)
        if schema.channels == 1:
            shapes.append((schema.height, schema.width, 1))
    if array.ndim < 2 or tuple(array.shape[1:]) not in shapes:
        wanted = " or ".join("(n, " + ", ".join(str(s) for s in shape) + ")" for shape in shapes)
        raise DataFileError(f"The {what} has shape {array.shape}; the model's inputs need {wanted}.")
    rows = array.reshape(array.shape[0], schema.n_features).astype(np.float64)
    return rows


def _check_values(rows: np.ndarray, schema: InputSchema, what: str, *, first_line: int = 0) -> np.ndarray:
    if rows.shape[0] == 0:
        raise DataFileError(f"The {what} holds no rows.")
    if rows.shape[0] > MAX_ROWS:
        raise DataFileError(f"The {what} holds {rows.shape[0]:,} rows; at most {MAX_ROWS:,} are read.")
    finite = np.isfinite(rows)
    if not finite.all():
        row, column = (int(i) for i in np.argwhere(~finite)[0])
        raise DataFileError(f"The {what}, row {row + first_line}: {schema.value_label(column)} is not a finite number.")
    outside = schema.out_of_bounds(rows)
    if outside.any():
        row, column = (int(i) for i in np.argwhere(outside)[0])
        raise DataFileError(
            f"The {what}, row {row + first_line}: {schema.value_label(column)} is {rows[row, column]:g}, outside "
            f"{schema.value_range_text(column)} (the schema's bounds)."
        )
    return rows


def _read_csv(data: bytes, what: str) -> list[list[str]]:
    try:
        text = data.decode("utf-8-sig")
        return [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataFileError(f"The {what} is not a UTF-8 CSV file: {exc}") from exc


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_columns(
    header: list[str] | None, schema: InputSchema, what: str, *, label: bool
) -> tuple[list[int], int | None]:
    """Which column holds each feature (in schema order) and which the label, from a CSV's header line (None: no
    header, features in order then the label last)."""
    n = schema.n_features
    if header is None:
        return list(range(n)), (n if label else None)
    names = [cell.strip() for cell in header]
    lowered = [name.lower() for name in names]
    label_column = lowered.index("label") if label and "label" in lowered else None
    if label and label_column is None:
        raise DataFileError(f"The {what}'s header has no 'label' column.")
    by_name = {name: i for i, name in enumerate(names) if i != label_column}
    wanted = schema.feature_names
    if all(name in by_name for name in wanted):
        return [by_name[name] for name in wanted], label_column
    others = [i for i in range(len(names)) if i != label_column]
    if len(others) != n:
        missing = [name for name in wanted if name not in by_name][:3]
        raise DataFileError(
            f"The {what}'s header names {len(others)} input columns; the model has {n} features "
            f"(missing e.g. {', '.join(repr(m) for m in missing)})."
        )
    return others, label_column


def csv_rows(data: bytes, schema: InputSchema, what: str, *, label: bool) -> tuple[np.ndarray, list[str] | None, int]:
    lines = _read_csv(data, what)
    if not lines:
        raise DataFileError(f"The {what} holds no rows.")
    header = None if all(_is_number(cell) for cell in lines[0] if cell.strip()) else lines[0]
    columns, label_column = csv_columns(header, schema, what, label=label)
    body = lines[1:] if header is not None else lines
    if not body:
        raise DataFileError(f"The {what} holds a header but no rows.")
    first_line = 2 if header is not None else 1
    width = len(columns) + (1 if label_column is not None else 0)
    values = np.empty((len(body), schema.n_features))
    labels: list[str] = []
    for number, row in enumerate(body, start=first_line):
        if len(row) != width:
            raise DataFileError(f"The {what}, line {number}: expected {width} columns, got {len(row)}.")
        try:
            values[number - first_line] = [float(row[i]) for i in columns]
        except ValueError as exc:
            raise DataFileError(f"The {what}, line {number}: a value is not a number.") from exc
        if label_column is not None:
            labels.append(row[label_column].strip())
    return values, (labels if label else None), first_line


def read_inputs(data: bytes, *, name: str, schema: InputSchema, what: str = "reference data") -> np.ndarray:
    """Inputs (n, features) float64 from a `.npy` or `.csv` file's bytes (`name` gives the format), every value
    within the schema's bounds. Raises DataFileError."""
    suffix = Path(name).suffix.lower()
    if suffix == ".npy":
        return _check_values(_as_rows(_load_npy(data, what), schema, what), schema, what)
    if suffix == ".csv":
        values, _, first_line = csv_rows(data, schema, what, label=False)
        return _check_values(values, schema, what, first_line=first_line)
    raise DataFileError(f"The {what} must be a .npy or .csv file, got '{name}'.")


def _label_indices(labels: np.ndarray | list[str], class_labels: list[str], what: str) -> np.ndarray:
    array = np.asarray(labels)
    if array.dtype.kind in "iu":
        if array.size and (array.min() < 0 or array.max() >= len(class_labels)):
            raise DataFileError(f"The {what}'s labels must be class indices 0..{len(class_labels) - 1}.")
        return array.astype(np.int64)
    position = {label: index for index, label in enumerate(class_labels)}
    indices = []
    for row, label in enumerate(array.astype(str).tolist()):
        if label not in position:
            raise DataFileError(
                f"The {what}, row {row}: label '{label[:64]}' is not one of the classes {', '.join(class_labels[:10])}."
            )
        indices.append(position[label])
    return np.asarray(indices, dtype=np.int64)


def read_labelled(
    data: bytes, *, name: str, schema: InputSchema, class_labels: list[str], what: str = "held-out set"
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, features) and class indices (n,) from a `.npz` (`inputs`, `labels`) or `.csv` (with a `label`
    column) file's bytes. Raises DataFileError."""
    suffix = Path(name).suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                if not {"inputs", "labels"} <= set(archive.files):
                    raise DataFileError(f"The {what} (.npz) must hold arrays named 'inputs' and 'labels'.")
                inputs, labels = archive["inputs"], archive["labels"]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataFileError(f"The {what} is not an .npz archive of plain arrays: {exc}") from exc
        rows = _check_values(_as_rows(inputs, schema, what), schema, what)
        if labels.ndim != 1 or labels.shape[0] != rows.shape[0]:
            raise DataFileError(f"The {what} has {rows.shape[0]} inputs but labels of shape {labels.shape}.")
        if labels.dtype.kind not in "iuU":
            raise DataFileError(f"The {what}'s labels must be class names or class indices.")
        return rows, _label_indices(labels, class_labels, what)
    if suffix == ".csv":
        values, labels, first_line = csv_rows(data, schema, what, label=True)
        rows = _check_values(values, schema, what, first_line=first_line)
        return rows, _label_indices(labels or [], class_labels, what)
    raise DataFileError(f"The {what} must be a .npz or .csv file, got '{name}'.")
