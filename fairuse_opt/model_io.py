"""The portable model file: a fitted model as JSON that any language can score.

:func:`dumps` writes a fitted :class:`~fairuse_opt.FairUseClassifier` or
:class:`~fairuse_opt.FairUseRegressor` (format ``fairuse_opt.model/1``), or a fitted
:class:`~fairuse_opt.FairUseSystem` (format ``fairuse_opt.model/2``); :func:`loads` reads
it back into an estimator (or a system) whose predictions and fitted attributes are identical (floats are written with the
shortest representation that round-trips, as Python's :mod:`json` does).  Loading parses
JSON only: no pickle, no import of a name found in the file, no code is executed.  A bad
file raises :class:`~fairuse_opt.exceptions.InputError` saying what is wrong.

The format is specified in ``docs/model-file.md`` (every field,
the scoring rule, the categorical encoding) and, machine-readably, by the JSON Schema
shipped in the package (:func:`schema`).  In short: for every intersectional group,
``models`` holds the effective linear model on the raw feature scale, and a row with
features ``x`` reporting group ``r`` scores ``s = intercept_r + coef_r . x``; for a
classifier the probability of ``classes.values[1]`` is ``1 / (1 + exp(-s))``.  How a raw
table row becomes ``x`` is recorded in ``input.columns``
(:class:`~fairuse_opt.tabular.TabularEncoding`).  A system file instead lists, for every
reporting option, the index of the linear model it is served (:mod:`fairuse_opt.system._io`).

Versions: version 2 added the system file; the estimator file did not change and is still
version 1 (so every reader of version 1 reads it).  Both versions load.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .exceptions import (  # noqa: F401 - the encoding's messages, re-exported
    MSG_MISSING_INPUT_COLUMNS,
    MSG_NO_GENERIC_LOADED,
    MSG_NOT_NUMBER,
    MSG_UNKNOWN_LEVEL,
    FairUseWarning,
    InputError,
)
from .tabular import TabularEncoding

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "FORMAT",
    "SYSTEM_FORMAT",
    "ModelFile",
    "TabularEncoding",
    "dumps",
    "loads",
    "read",
    "schema",
]

#: Name of the format (without version).
FORMAT_NAME = "fairuse_opt.model"
#: Newest major version this library reads and writes.
FORMAT_VERSION = 2
#: The value of the ``format`` key of an estimator file (unchanged since version 1).
FORMAT = f"{FORMAT_NAME}/1"
#: The value of the ``format`` key of a system file (new in version 2).
SYSTEM_FORMAT = f"{FORMAT_NAME}/2"

#: Estimator classes a model file may name (looked up in this table, never imported by name).
ESTIMATORS = ("FairUseClassifier", "FairUseRegressor")
TASK_OF = {"FairUseClassifier": "classification", "FairUseRegressor": "regression"}

#: Parameters that hold objects or code and are never written.
NOT_SERIALISED_PARAMS = ("generic", "constraint_hook")

#: Fields every certificate in a file has (the schema's ``required``).
CERTIFICATE_REQUIRED = ("table", "fair_use", "route", "solver", "status", "verified")
#: Scalar fields of a certificate that hold NaN when unknown (written as null).
CERTIFICATE_FLOAT_FIELDS = ("objective", "objective_unconstrained", "objective_generic", "gain_kept",
                            "seconds", "tolerance")

REQUIRED_KEYS = ("format", "library", "estimator", "task", "classes", "features", "groups",
                 "models", "generic", "certificate", "settings")
CLASS_DTYPE_KINDS = "biufUO"

# --------------------------------------------------------------------------- messages
MSG_NOT_FITTED = "only a fitted model can be written to a model file; call fit() first"
MSG_NOT_ESTIMATOR = "dumps() needs a fitted FairUseClassifier, FairUseRegressor or FairUseSystem; got {type}"
MSG_CUSTOM_LOSS = ("{type} fits the {loss!r} loss, which a model file cannot represent: it would be read back "
                   "as a {base} ({base_loss!r} loss) and predict differently")
MSG_BAD_GROUP_VALUE = (
    "group value {value!r} of attribute {name!r} has type {type}, which a model file cannot "
    "hold; use strings, integers, floats or booleans as group values"
)
MSG_BAD_CLASS_VALUE = "classes_ value {value!r} has type {type}, which a model file cannot hold"
MSG_BAD_METADATA = "metadata cannot be written as JSON: {reason}"
MSG_NON_FINITE = "{what} has a non-finite value ({value}); a model file holds finite numbers only"
MSG_FILE_MISSING = "model file {path} does not exist"
MSG_FILE_UNREADABLE = "cannot read model file {path}: {reason}"
MSG_NOT_JSON = "model file {source} is not valid JSON: {reason}"
MSG_NOT_OBJECT = "model file {source} does not hold a JSON object"
MSG_NO_FORMAT = "model file {source} is not a fairuse_opt model file (no 'format' key)"
MSG_BAD_FORMAT = "model file {source} has format {got!r}; expected {expected!r}"
MSG_NEWER_FORMAT = (
    "model file {source} has format version {got}, newer than this library reads ({expected}); "
    "upgrade fairuse_opt"
)
MSG_MISSING_KEYS = "model file {source} lacks required key(s) {keys}"
MSG_BAD_FIELD = "model file {source}: {field} {problem}"
MSG_TOO_DEEP = "model file {source} is nested too deeply to be a model file"
MSG_DUPLICATE_KEY = "model file {source}: key {key!r} is given twice in one object"
MSG_METADATA_TOO_DEEP = "metadata is nested too deeply to be written to a model file"
MSG_SYSTEM_NEEDS_V2 = (
    "model file {source} holds a FairUseSystem but has format {got!r}; a system file has format "
    "{expected!r}"
)
MSG_ESTIMATOR_NOT_V1 = (
    "model file {source} has format {got!r} but does not hold a FairUseSystem; a model file of "
    "an estimator has format {expected!r}"
)
MSG_UNKNOWN_PARAMS = (
    "model file {source} has setting(s) {names} that this version of fairuse_opt does not "
    "know; they are ignored"
)


# --------------------------------------------------------------------------- writing
def dumps(est: Any, *, encoding: TabularEncoding | None = None, target: str | None = None,
          group_columns: Sequence[str] | None = None, metadata: Mapping[str, Any] | None = None,
          indent: int | None = 1) -> str:
    """Serialise a fitted estimator to the model file (JSON text).

    Parameters
    ----------
    est : FairUseClassifier or FairUseRegressor
        A fitted estimator.
    encoding : TabularEncoding, optional
        How raw table columns map to ``est``'s features (written as ``input``).
    target, group_columns : optional
        Names of the target and group columns in the raw table (written in ``input``).
    metadata : mapping, optional
        JSON-ready information to keep with the model.
    indent : int or None, default=1
        Indentation of the JSON text (``None``: one line).

    Returns
    -------
    str
        The JSON text.

    Raises
    ------
    InputError
        ``est`` is not a fitted estimator of this library, or holds values a model file
        cannot represent (non-finite coefficients, exotic group values).
    """
    from .estimators import _BaseFairUse
    from .system import FairUseSystem
    from . import __version__

    if isinstance(est, FairUseSystem):
        return _dumps_system(est, encoding=encoding, target=target, group_columns=group_columns,
                             metadata=metadata, indent=indent)
    if not isinstance(est, _BaseFairUse):
        raise InputError(MSG_NOT_ESTIMATOR.format(type=type(est).__name__))
    if not hasattr(est, "coef_") or not hasattr(est, "certificate_"):
        raise InputError(MSG_NOT_FITTED)
    name = "FairUseClassifier" if est._task == "classification" else "FairUseRegressor"
    from .estimators import FILE_ESTIMATORS

    loss = est._get_loss()
    shipped = FILE_ESTIMATORS.get((name, loss.name))
    if shipped is None or shipped()._get_loss() != loss:  # a loss of the user's: not a model a file holds
        raise InputError(MSG_CUSTOM_LOSS.format(type=type(est).__name__, loss=loss.name,
                                                base=name, base_loss=_file_class(name, None)()._get_loss().name))
    index = est.group_index_
    if index is not None:
        for attr in index.names:
            for v in index.levels[attr]:
                _check_group_value(v, attr)
        groups = {"attributes": list(index.names), "levels": {a: list(index.levels[a]) for a in index.names}}
        models = [{"group": list(key), "intercept": _num(est.intercept_[k], f"intercept_[{k}]"),
                   "coef": _nums(est.coef_[k], f"coef_[{k}]")} for k, key in enumerate(index.keys)]
    else:
        groups = None
        models = [{"group": None, "intercept": _num(est.intercept_[0], "intercept_[0]"),
                   "coef": _nums(est.coef_[0], "coef_[0]")}]
    generic = _generic_dict(est, _BaseFairUse)
    names_in = getattr(est, "feature_names_in_", None)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "library": {"name": "fairuse_opt", "version": __version__},
        "estimator": name,
        "task": est._task,
        "loss": loss.name,
        "classes": _classes_dict(est) if est._task == "classification" else None,
        "features": {"names": list(est.feature_names_),
                     "names_in": None if names_in is None else [str(v) for v in names_in]},
        "input": None,
        "groups": groups,
        "models": models,
        "generic": generic,
        "certificate": est.certificate_.to_dict(),
        "settings": _settings(est),
        "metadata": dict(metadata) if metadata else {},
    }
    doc["input"] = _input_dict(encoding, target, group_columns)
    return _finish(doc, indent)


def _input_dict(encoding: TabularEncoding | None, target: str | None,
                group_columns: Sequence[str] | None) -> dict | None:
    if encoding is None and target is None and group_columns is None:
        return None
    return {"target": target, "group_columns": list(group_columns) if group_columns is not None else None,
            "columns": encoding.to_dict() if encoding is not None else None}


def _dumps_system(system: Any, *, encoding: TabularEncoding | None, target: str | None,
                  group_columns: Sequence[str] | None, metadata: Mapping[str, Any] | None,
                  indent: int | None) -> str:
    """The system file (format 2): see :mod:`fairuse_opt.system._io`."""
    from . import __version__
    from .system._io import system_document

    body = system_document(system)
    doc: dict[str, Any] = {"format": SYSTEM_FORMAT, "library": {"name": "fairuse_opt", "version": __version__}}
    doc.update(body)
    doc["input"] = _input_dict(encoding, target, group_columns)
    doc["metadata"] = dict(metadata) if metadata else {}
    if encoding is not None and encoding.feature_names != doc["features"]["names"]:
        raise InputError(f"the encoding produces features {encoding.feature_names}, not the system's "
                         f"{doc['features']['names']}")
    return _finish(doc, indent)


def _finish(doc: dict, indent: int | None) -> str:
    """JSON text of a document, checked by :data:`DOCUMENT_CHECKS`."""
    try:
        text = json.dumps(doc, indent=indent, allow_nan=False, ensure_ascii=False)
    except ValueError as exc:  # a NaN/inf slipped through (certificate, metadata)
        raise InputError(MSG_NON_FINITE.format(what="the model", value=exc)) from exc
    except RecursionError:
        raise InputError(MSG_METADATA_TOO_DEEP) from None
    except TypeError as exc:  # metadata that JSON cannot hold
        raise InputError(MSG_BAD_METADATA.format(reason=exc)) from None
    for check in DOCUMENT_CHECKS:
        check(json.loads(text))
    return text


#: Where the JSON Schema of the format lives inside the package.
SCHEMA_RESOURCE = "schemas/model-file.schema.json"


def schema() -> dict:
    """The JSON Schema (draft 2020-12) of the model file, shipped with the package.

    Validate a document with any JSON Schema library, for example
    ``jsonschema.validate(doc, fairuse_opt.model_io.schema())`` (``jsonschema`` is not
    needed by this library; the ``test`` extra installs it).
    """
    return json.loads((Path(__file__).parent / SCHEMA_RESOURCE).read_text(encoding="utf-8"))


#: Functions called with every document :func:`dumps` writes (the test suite adds a
#: JSON Schema validator here, so that every model file its fits write is checked).
DOCUMENT_CHECKS: list = []


def _generic_dict(est: Any, base: type) -> dict:
    """The ``generic`` entry: the generic linear model, or a note that it is external."""
    gen = getattr(est, "generic_", None)
    if isinstance(gen, base) and hasattr(gen, "coef_") and getattr(gen, "group_index_", None) is None:
        return {"intercept": _num(gen.intercept_[0], "generic_.intercept_[0]"),
                "coef": _nums(gen.coef_[0], "generic_.coef_[0]"),
                "n_iter": int(getattr(gen, "n_iter_", 0) or 0),
                "certificate": gen.certificate_.to_dict()}
    description = getattr(est, "generic_external_", None) or _describe(gen)
    return {"external": description, "intercept": None, "coef": None, "n_iter": 0, "certificate": None}


def _num(v: Any, what: str) -> float:
    f = float(v)
    if not math.isfinite(f):
        raise InputError(MSG_NON_FINITE.format(what=what, value=f))
    return f


def _nums(arr: Any, what: str) -> list[float]:
    return [_num(v, what) for v in np.asarray(arr, dtype=np.float64).tolist()]


def _check_group_value(v: Any, attr: str) -> None:
    if isinstance(v, float) and not math.isfinite(v):
        raise InputError(MSG_BAD_GROUP_VALUE.format(value=v, name=attr, type="non-finite float"))
    if not isinstance(v, (str, bool, int, float)):
        raise InputError(MSG_BAD_GROUP_VALUE.format(value=v, name=attr, type=type(v).__name__))


def _classes_dict(est: Any) -> dict:
    classes = np.asarray(est.classes_)
    if classes.dtype.kind not in CLASS_DTYPE_KINDS:
        raise InputError(MSG_BAD_CLASS_VALUE.format(value=classes[0], type=classes.dtype))
    values = [v.item() if isinstance(v, np.generic) else v for v in classes.tolist()]
    for v in values:
        if not isinstance(v, (str, bool, int, float)) or (isinstance(v, float) and not math.isfinite(v)):
            raise InputError(MSG_BAD_CLASS_VALUE.format(value=v, type=type(v).__name__))
    return {"values": values, "dtype": classes.dtype.str}


def _settings(est: Any) -> dict:
    from .estimators import alpha_given

    params = est.get_params(deep=False)
    if "alpha" in params:  # the L2 penalty's deprecated alias: written under its name, l2
        alpha = params.pop("alpha")
        if alpha_given(alpha):
            params["l2"] = alpha
    out: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for key, value in params.items():
        if key in NOT_SERIALISED_PARAMS:
            if value is not None:
                skipped[key] = _describe(value)
            out[key] = None
            continue
        try:
            out[key] = _encode(value)
        except TypeError:
            skipped[key] = _describe(value)
            out[key] = None
    spec = getattr(est, "set_spec_", None)
    set_spec = None
    if spec is not None:
        set_spec = {"intercept_center": float(spec.intercept_center),
                    "intercept_bound": float(spec.intercept_bound),
                    "coef_center": [float(v) for v in np.asarray(spec.coef_center, dtype=np.float64)],
                    "coef_bound": float(spec.coef_bound)}
    if params.get("generic") is None and getattr(est, "generic_external_", None):
        skipped["generic"] = est.generic_external_  # loaded from a file: keep what was recorded
    return {"params": out, "not_serialised": skipped, "set_spec": set_spec,
            "n_iter": int(getattr(est, "n_iter_", 0) or 0)}


def _describe(value: Any) -> str:
    name = getattr(value, "__qualname__", None) or type(value).__name__
    return f"{type(value).__name__} {name}" if callable(value) and not hasattr(value, "get_params") else name


def _encode(value: Any) -> Any:
    """JSON form of a parameter value; raise TypeError if it has none that is exact."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError("non-finite")
        return value
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value) and not ({"__tuple__", "__items__"} & set(value)):
            return {k: _encode(v) for k, v in value.items()}
        return {"__items__": [[_encode(k), _encode(v)] for k, v in value.items()]}
    raise TypeError(type(value).__name__)


class _BadValue(Exception):
    """A setting that :func:`_decode` cannot read: where, and what is wrong."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(where, problem)
        self.where, self.problem = where, problem


def _decode(value: Any, where: str = "value") -> Any:
    """The parameter value of its JSON form (:func:`_encode`); a malformed ``__tuple__`` or
    ``__items__`` tag raises :class:`_BadValue`."""
    if isinstance(value, list):
        return [_decode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if "__tuple__" in value and set(value) == {"__tuple__"}:
            items = value["__tuple__"]
            if not isinstance(items, list):
                raise _BadValue(where, f"__tuple__ must be a list; got {_short(items)}")
            return tuple(_decode(v, f"{where}.__tuple__[{i}]") for i, v in enumerate(items))
        if "__items__" in value and set(value) == {"__items__"}:
            pairs = value["__items__"]
            if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
                raise _BadValue(where, f"__items__ must be a list of [key, value] pairs; got {_short(pairs)}")
            out: dict = {}
            for i, (k, v) in enumerate(pairs):
                key = _hashable(_decode(k, f"{where}.__items__[{i}][0]"))
                try:
                    hash(key)
                except TypeError:
                    raise _BadValue(f"{where}.__items__[{i}][0]",
                                    f"is {_short(k)}, which cannot be a mapping key (a string, number, "
                                    "boolean, null or a list of them)") from None
                if key in out:
                    raise _BadValue(f"{where}.__items__", f"lists key {_short(key)} twice")
                out[key] = _decode(v, f"{where}.__items__[{i}][1]")
            return out
        return {k: _decode(v, f"{where}.{k}") for k, v in value.items()}
    return value


def _hashable(v: Any) -> Any:
    return tuple(_hashable(x) for x in v) if isinstance(v, (list, tuple)) else v


# --------------------------------------------------------------------------- reading
@dataclass
class ModelFile:
    """A model file read by :func:`read`.

    Attributes
    ----------
    estimator : FairUseClassifier or FairUseRegressor
        The fitted model.
    encoding : TabularEncoding or None
        How raw table columns become features (files written by the command line).
    target : str or None
        Name of the target column of the raw table.
    group_columns : list of str or None
        Names of the group columns of the raw table.
    metadata : dict
        The writer's free-form information.
    document : dict
        The whole parsed JSON document.
    kind : {"estimator", "system"}
        ``"system"``: ``estimator`` is a :class:`~fairuse_opt.FairUseSystem` (format 2).
    """

    estimator: Any
    encoding: TabularEncoding | None
    target: str | None
    group_columns: list[str] | None
    metadata: dict
    document: dict
    kind: str = "estimator"


def loads(text_or_path: Any) -> Any:
    """Load a model from model-file JSON text or a file path; never runs code.

    Parameters
    ----------
    text_or_path : str, bytes or path-like
        JSON text (a string starting with ``{``) or the path of a model file.

    Returns
    -------
    FairUseClassifier, FairUseRegressor or FairUseSystem
        A fitted estimator; predictions and fitted attributes equal those of the model
        that was written.  A system file gives a :class:`~fairuse_opt.FairUseSystem`
        whose candidates are the linear models it served
        (:class:`~fairuse_opt.system._io.FileLinearModel`): ``predict``,
        ``predict_proba``, ``decision_function`` and ``serving`` agree with the system
        that was written.

    Raises
    ------
    InputError
        The file is missing or unreadable, is not JSON, is not a model file of a
        version this library reads, or lacks or garbles a required field.
    """
    return read(text_or_path).estimator


def read(text_or_path: Any) -> ModelFile:
    """Like :func:`loads`, but also return the input encoding and metadata.

    Returns
    -------
    ModelFile
    """
    text, source = _text(text_or_path)
    doc = _parse(text, source)
    try:
        return _read_document(doc, source)
    except RecursionError:  # settings or certificate fields nested too deeply to walk
        raise InputError(MSG_TOO_DEEP.format(source=source)) from None


def _parse(text: str, source: str) -> dict:
    """The JSON document of a model file: an object, every number finite, no key given
    twice in one object."""
    overflowed: list[str] = []

    def number(token: str) -> float:
        value = float(token)
        if not math.isfinite(value):  # 1e400: too large for a float
            overflowed.append(token)
        return value

    try:
        doc = json.loads(text, parse_constant=_reject_constant, parse_float=number,
                         object_pairs_hook=_unique_keys)
    except RecursionError:
        raise InputError(MSG_TOO_DEEP.format(source=source)) from None
    except _DuplicateKey as exc:
        raise InputError(MSG_DUPLICATE_KEY.format(source=source, key=_ShortText(exc.args[0]))) from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise InputError(MSG_NOT_JSON.format(source=source, reason=_ShortText(exc, quote=False))) from None
    if not isinstance(doc, dict):
        raise InputError(MSG_NOT_OBJECT.format(source=source))
    if overflowed:
        where = _first_non_finite(doc)
        raise _bad(source, where, f"must be a finite number; got {_ShortText(overflowed[0], quote=False)}")
    return doc


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return out


def _first_non_finite(doc: Any) -> str:
    """The path (``certificate.table[0].own_loss``) of the first non-finite float of a
    parsed document, in document order (a walk without recursion)."""
    stack: list = [(doc, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return where or "the document"
        if isinstance(value, dict):
            stack.extend(reversed([(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()]))
        elif isinstance(value, list):
            stack.extend(reversed([(v, f"{where}[{i}]") for i, v in enumerate(value)]))
    return "the document"


def _read_document(doc: dict, source: str) -> ModelFile:
    version = _check_format(doc, source)
    library = doc.get("library")
    if library is not None or "library" in doc:
        _require(library, ("name", "version"), source, "library")
        if library["name"] != "fairuse_opt" or not isinstance(library["version"], str):
            raise _bad(source, "library", f"must be {{'name': 'fairuse_opt', 'version': str}}; got {_short(library)}")
    if doc.get("estimator") == "FairUseSystem":
        if version < 2:
            raise InputError(MSG_SYSTEM_NEEDS_V2.format(source=source, got=doc["format"], expected=SYSTEM_FORMAT))
        from .system._io import system_from_document

        est, feature_names = system_from_document(doc, source)
        kind = "system"
    else:
        if version != 1:  # format 2 added the system file; an estimator file is format 1
            raise InputError(MSG_ESTIMATOR_NOT_V1.format(source=source, got=doc["format"], expected=FORMAT))
        missing = [k for k in REQUIRED_KEYS if k not in doc]
        if missing:
            raise InputError(MSG_MISSING_KEYS.format(source=source, keys=missing))
        est = _build(doc, source)
        feature_names = list(est.feature_names_)
        kind = "estimator"
    encoding, target, group_columns = None, None, None
    inp = doc.get("input")
    if inp is not None:
        if not isinstance(inp, dict):
            raise _bad(source, "input", "must be an object or null")
        _require(inp, ("target", "group_columns", "columns"), source, "input")
        if inp.get("columns") is not None:
            encoding = TabularEncoding.from_dict(inp["columns"], source)
            if encoding.feature_names != feature_names:
                raise _bad(source, "input.columns", f"produce features {_short(encoding.feature_names, 500)}, "
                                                    f"not the model's {_short(feature_names, 500)}")
        target = inp.get("target")
        if target is not None and not isinstance(target, str):
            raise _bad(source, "input.target", "must be a string")
        group_columns = inp.get("group_columns")
        if group_columns is not None and (not isinstance(group_columns, list)
                                          or not all(isinstance(g, str) for g in group_columns)):
            raise _bad(source, "input.group_columns", "must be a list of strings")
    metadata = doc.get("metadata", {})
    if not isinstance(metadata, dict):
        raise _bad(source, "metadata", "must be an object")
    return ModelFile(estimator=est, encoding=encoding, target=target, group_columns=group_columns,
                     metadata=metadata, document=doc, kind=kind)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a valid number in a model file")


#: A UTF-8 byte-order mark, which some editors write at the start of a text file.
_BOM = "\ufeff"


def _text(text_or_path: Any) -> tuple[str, str]:
    """The JSON text and a name of its source; a leading byte-order mark is dropped."""
    if isinstance(text_or_path, bytes):
        try:
            return text_or_path.decode("utf-8-sig"), "<bytes>"
        except UnicodeDecodeError as exc:
            raise InputError(MSG_NOT_JSON.format(source="<bytes>", reason=exc)) from None
    if isinstance(text_or_path, str) and text_or_path.lstrip(_BOM + " \t\r\n").startswith("{"):
        return text_or_path.removeprefix(_BOM), "<text>"
    if not isinstance(text_or_path, (str, os.PathLike)):
        raise InputError(MSG_BAD_FIELD.format(source=_short(text_or_path), field="argument",
                                              problem="must be JSON text or a file path"))
    path = Path(text_or_path)
    shown = _ShortText(str(path), quote=False, limit=1000)
    try:
        if not path.exists():
            raise InputError(MSG_FILE_MISSING.format(path=shown))
        return path.read_text(encoding="utf-8-sig"), str(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: a NUL in the name
        if isinstance(exc, InputError):
            raise
        raise InputError(MSG_FILE_UNREADABLE.format(path=shown, reason=_ShortText(exc, quote=False))) from None


def _check_format(doc: dict, source: str) -> int:
    fmt = doc.get("format")
    if fmt is None:
        raise InputError(MSG_NO_FORMAT.format(source=source))
    shown = _ShortText(fmt)
    if not isinstance(fmt, str) or "/" not in fmt or fmt.rsplit("/", 1)[0] != FORMAT_NAME:
        raise InputError(MSG_BAD_FORMAT.format(source=source, got=shown, expected=FORMAT))
    version = fmt.rsplit("/", 1)[1]
    # a version is written in ASCII digits without a leading zero: "01", a superscript or an
    # Arabic-Indic digit (which str.isdigit accepts) is not a version
    if not _VERSION.fullmatch(version):
        raise InputError(MSG_BAD_FORMAT.format(source=source, got=shown, expected=FORMAT))
    if len(version) > len(str(FORMAT_VERSION)) or int(version) > FORMAT_VERSION:
        raise InputError(MSG_NEWER_FORMAT.format(source=source, got=_ShortText(version, quote=False),
                                                 expected=FORMAT_VERSION))
    return int(version)


#: A format version: ASCII digits, no leading zero.
_VERSION = re.compile(r"[1-9][0-9]*")


class _ShortText:
    """A value shown in a message, cut to ``limit`` characters (``{x!r}`` and ``{x}`` alike):
    an error line quotes what it found, never a whole file."""

    def __init__(self, value: Any, quote: bool = True, limit: int = 60) -> None:
        self.text = _short(value, limit) if quote else _cut(str(value), limit)

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


#: Longest field name and problem quoted in a refusal: an error line names what is wrong,
#: it does not list a whole file (every level, every feature).
MAX_FIELD_CHARS, MAX_PROBLEM_CHARS = 300, 1500


def _bad(source: str, field_: str, problem: str) -> InputError:
    return InputError(MSG_BAD_FIELD.format(source=source, field=_cut(field_, MAX_FIELD_CHARS),
                                           problem=_cut(problem, MAX_PROBLEM_CHARS)))


def _require(obj: Any, keys: Sequence[str], source: str, where: str) -> None:
    """``obj`` is an object with every key of ``keys`` (the schema's required fields)."""
    if not isinstance(obj, dict):
        raise _bad(source, where, f"must be an object with {list(keys)}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise _bad(source, where, f"lacks required key(s) {missing}")


def _float(v: Any, source: str, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _bad(source, where, f"must be a finite number; got {_short(v)}")
    try:
        f = float(v)
    except OverflowError:
        raise _bad(source, where, "must be a finite number; got an integer too large for a float") from None
    if not math.isfinite(f):
        raise _bad(source, where, f"must be a finite number; got {_short(v)}")
    return f


def _short(v: Any, limit: int = 60) -> str:
    return _cut(repr(v), limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _vector(v: Any, d: int, source: str, where: str) -> np.ndarray:
    if not isinstance(v, list) or len(v) != d:
        raise _bad(source, where, f"must be a list of {d} number(s)")
    return np.array([_float(x, source, f"{where}[{j}]") for j, x in enumerate(v)], dtype=np.float64)


def _scalar_value(v: Any) -> bool:
    return isinstance(v, (str, bool, int, float)) and not (isinstance(v, float) and not math.isfinite(v))


def _file_class(name: str, loss: str | None) -> Any:
    """The estimator class of a file naming class ``name`` and loss ``loss`` (``None``: a
    file written before losses were recorded, the class's first loss), else ``None``."""
    from .estimators import FILE_ESTIMATORS

    if loss is None:
        return next((cls for (n, _), cls in FILE_ESTIMATORS.items() if n == name), None)
    return FILE_ESTIMATORS.get((name, loss))


def _build(doc: dict, source: str) -> Any:
    from .certificate import Certificate
    from .estimators import FILE_ESTIMATORS, FairUseClassifier, FairUseRegressor
    from ._formulation import SetSpec
    from ._groups import GroupIndex

    classes_of = {"FairUseClassifier": FairUseClassifier, "FairUseRegressor": FairUseRegressor}
    name = doc["estimator"]
    if not isinstance(name, str) or name not in classes_of:
        raise _bad(source, "estimator", f"must be one of {list(ESTIMATORS)}; got {_short(name)}")
    loss = doc.get("loss")  # (absent from files written before losses were recorded)
    cls = _file_class(name, loss) if loss is None or isinstance(loss, str) else None
    if cls is None:
        losses = sorted(n_loss for n, n_loss in FILE_ESTIMATORS if n == name)
        raise _bad(source, "loss", f"must be one of {losses} for {name}; got {_short(loss)}")
    if doc["task"] != TASK_OF[name]:
        raise _bad(source, "task", f"must be {TASK_OF[name]!r} for {name}; got {_short(doc['task'])}")

    # features
    feats = doc["features"]
    _require(feats, ("names", "names_in"), source, "features")
    if not isinstance(feats, dict) or not isinstance(feats.get("names"), list) \
            or not all(isinstance(f, str) for f in feats["names"]):
        raise _bad(source, "features.names", "must be a list of strings")
    names = list(feats["names"])
    d = len(names)
    names_in = feats.get("names_in")
    if names_in is not None and (not isinstance(names_in, list) or names_in != names):
        raise _bad(source, "features.names_in", "must be null or equal to features.names")

    # classes
    classes = _build_classes(doc["classes"], source) if name == "FairUseClassifier" else None

    # groups and models
    groups, models = doc["groups"], doc["models"]
    if not isinstance(models, list) or not models:
        raise _bad(source, "models", "must be a non-empty list")
    for k, m in enumerate(models):
        if not isinstance(m, dict) or not {"group", "intercept", "coef"} <= set(m):
            raise _bad(source, f"models[{k}]", "must be an object with 'group', 'intercept' and 'coef'")
    index = None
    if groups is None:
        if len(models) != 1 or models[0]["group"] is not None:
            raise _bad(source, "models", "must hold one model with group null when groups is null")
    else:
        if not isinstance(groups, dict) or not isinstance(groups.get("attributes"), list) \
                or not groups["attributes"] or not all(isinstance(a, str) for a in groups["attributes"]) \
                or not isinstance(groups.get("levels"), dict):
            raise _bad(source, "groups", "must be {'attributes': [names], 'levels': {name: [values]}}")
        attrs = list(groups["attributes"])
        if len(set(attrs)) != len(attrs) or set(groups["levels"]) != set(attrs):
            raise _bad(source, "groups", "must list distinct attributes and one entry of levels per attribute")
        levels = {}
        for a in attrs:
            lv = groups["levels"].get(a)
            if not isinstance(lv, list) or not lv or not all(_scalar_value(v) for v in lv):
                raise _bad(source, f"groups.levels[{_short(a)}]", "must be a non-empty list of strings or numbers")
            levels[a] = list(lv)
        level_sets = {a: set(levels[a]) for a in attrs}
        keys = []
        for k, m in enumerate(models):
            g = m["group"]
            if not isinstance(g, list) or len(g) != len(attrs) or not all(_scalar_value(v) for v in g):
                raise _bad(source, f"models[{k}].group", f"must list one value for each of {_short(attrs, 200)}")
            for a, v in zip(attrs, g):
                if v not in level_sets[a]:
                    raise _bad(source, f"models[{k}].group", f"has {_cut(a, 60)}={_short(v)}, not among groups.levels")
            keys.append(tuple(g))
        if len(set(keys)) != len(keys):
            raise _bad(source, "models", "lists a group more than once")
        index = GroupIndex(names=attrs, keys=keys, levels=levels)
    coef = np.vstack([_vector(m["coef"], d, source, f"models[{k}].coef") for k, m in enumerate(models)]) \
        if d else np.zeros((len(models), 0))
    intercept = np.array([_float(m["intercept"], source, f"models[{k}].intercept")
                          for k, m in enumerate(models)], dtype=np.float64)

    # settings
    settings = doc["settings"]
    if not isinstance(settings, dict) or not isinstance(settings.get("params"), dict):
        raise _bad(source, "settings", "must be an object with 'params'")
    _require(settings, ("params", "not_serialised", "set_spec", "n_iter"), source, "settings")
    skipped = settings["not_serialised"]
    if not isinstance(skipped, dict) or not all(isinstance(v, str) for v in skipped.values()):
        raise _bad(source, "settings.not_serialised", "must be an object {name: description}")
    for key in NOT_SERIALISED_PARAMS:  # an object or a function is never written: null
        if settings["params"].get(key) is not None:
            raise _bad(source, f"settings.params.{key}", f"must be null (a {key} is never written); "
                                                         f"got {_short(settings['params'][key])}")
    known = cls().get_params(deep=False)
    raw = dict(settings["params"])
    if "alpha" in raw:  # files written before the L2 penalty was named l2
        if "l2" in raw:
            raise _bad(source, "settings.params.alpha", "is the earlier name of l2, which the file also "
                                                        "gives: keep l2 only")
        raw["l2"] = raw.pop("alpha")
    try:
        params = {k: _decode(v, f"settings.params.{k}") for k, v in raw.items() if k in known}
    except _BadValue as exc:
        raise _bad(source, exc.where, exc.problem) from None
    unknown = sorted(set(raw) - set(known))
    if unknown:
        warnings.warn(MSG_UNKNOWN_PARAMS.format(source=source, names=_short(unknown, 300)), FairUseWarning,
                      stacklevel=3)
    for key in NOT_SERIALISED_PARAMS:
        params[key] = None
    try:
        est = cls(**params)
        est._check_params()  # the checks fit() makes: a file cannot carry a setting fit() refuses
    except (TypeError, ValueError) as exc:  # (InputError is a ValueError)
        raise _bad(source, "settings.params", str(exc)) from None
    _check_group_cols(est.group_cols, names, index, source)
    n_iter = settings["n_iter"]
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
        raise _bad(source, "settings.n_iter", "must be a non-negative integer")
    set_spec = None
    spec = settings.get("set_spec")
    if spec is not None:
        if not isinstance(spec, dict) or not {"intercept_center", "intercept_bound", "coef_center",
                                               "coef_bound"} <= set(spec):
            raise _bad(source, "settings.set_spec", "must be null or hold the four set parameters")
        cc = spec["coef_center"]
        set_spec = SetSpec(
            intercept_center=_float(spec["intercept_center"], source, "settings.set_spec.intercept_center"),
            intercept_bound=_float(spec["intercept_bound"], source, "settings.set_spec.intercept_bound"),
            coef_center=_vector(cc, len(cc) if isinstance(cc, list) else -1, source, "settings.set_spec.coef_center"),
            coef_bound=_float(spec["coef_bound"], source, "settings.set_spec.coef_bound"))

    # generic model
    gdoc = doc["generic"]
    if not isinstance(gdoc, dict) or not {"intercept", "coef", "certificate"} <= set(gdoc):
        raise _bad(source, "generic", "must be an object with 'intercept', 'coef' and 'certificate'")
    _require(gdoc, ("intercept", "coef", "n_iter", "certificate"), source, "generic")
    external = gdoc.get("external")
    if external is not None and not isinstance(external, str):
        raise _bad(source, "generic.external", "must be null or a string")
    if external is not None and any(gdoc[k] is not None for k in ("intercept", "coef", "certificate")):
        raise _bad(source, "generic", "must have intercept, coef and certificate null when the generic model "
                                      "is external (the file does not hold it)")
    gparams = dict(est.get_params(deep=False))
    gparams.update(encoding="none", fair_use=None, generic=None, constraint_hook=None)
    gen = cls(**gparams)
    gen_n_iter = gdoc["n_iter"]
    if isinstance(gen_n_iter, bool) or not isinstance(gen_n_iter, int) or gen_n_iter < 0:
        raise _bad(source, "generic.n_iter", "must be a non-negative integer")

    certificate = _certificate(doc["certificate"], source, "certificate", Certificate)
    gcert = None if external is not None else _certificate(gdoc["certificate"], source,
                                                           "generic.certificate", Certificate)
    _check_certificate_table(doc["certificate"], certificate, index, source)
    asked = set(est._fair_use_set()) if est.encoding != "none" else set()
    if set(certificate.fair_use) != asked:
        raise _bad(source, "certificate.fair_use", f"is {list(certificate.fair_use)}, but the settings ask for "
                                                   f"{sorted(asked)}")
    if certificate.verified and certificate.tolerance != est.tol:  # a verified check is at tol
        raise _bad(source, "certificate.tolerance", f"is {certificate.tolerance!r}, but the model was "
                                                    f"verified at settings.params.tol = {est.tol!r}")

    for obj in (est, gen):
        if classes is not None:
            obj.classes_ = classes.copy()
        obj.n_features_in_ = d
        obj.feature_names_ = list(names)
        if names_in is not None:
            obj.feature_names_in_ = np.array(names_in, dtype=object)
    est._set_fitted(coef, intercept, index=index, certificate=certificate, set_spec=set_spec,
                    n_iter=n_iter)
    if external is not None:  # the generic model was an object the file does not hold
        est.generic_ = None
        est.generic_external_ = external
        return est
    gen._set_fitted(_vector(gdoc["coef"], d, source, "generic.coef").reshape(1, d),
                    np.array([_float(gdoc["intercept"], source, "generic.intercept")]),
                    index=None, certificate=gcert, set_spec=None, n_iter=gen_n_iter)
    est.generic_ = gen
    return est



def _check_group_cols(group_cols: Any, features: list[str], index: Any, source: str) -> None:
    """``group_cols`` (the columns of X that hold the groups) as a fit writes it: a column name
    or a list of distinct ones, none of them a feature, naming the group attributes."""
    if group_cols is None:
        return
    cols = [group_cols] if isinstance(group_cols, str) else group_cols
    where = "settings.params.group_cols"
    if not isinstance(cols, list) or not cols or not all(isinstance(c, str) for c in cols) \
            or len(set(cols)) != len(cols):
        raise _bad(source, where, f"must be null, a column name or a list of distinct column names; "
                                  f"got {_short(group_cols)}")
    clash = [c for c in cols if c in set(features)]
    if clash:
        raise _bad(source, where, f"names feature column(s) {_short(clash, 200)}")
    if index is not None and list(index.names) != cols:
        raise _bad(source, where, f"must name the group attributes {_short(list(index.names), 200)}")


def _build_classes(c: Any, source: str) -> np.ndarray:
    """``classes_`` from the ``classes`` field (two labels of a numpy dtype, type-checked)."""
    if not isinstance(c, dict) or not isinstance(c.get("values"), list) or len(c["values"]) != 2 \
            or not all(_scalar_value(v) for v in c["values"]) or not isinstance(c.get("dtype"), str):
        raise _bad(source, "classes", "must be {'values': [two labels], 'dtype': '...'}")
    try:
        dtype = np.dtype(c["dtype"])
    except (TypeError, ValueError, OverflowError):  # ("<U99999999999999999999": too large)
        raise _bad(source, "classes.dtype", f"is not a numpy dtype: {_short(c['dtype'])}") from None
    if dtype.kind not in CLASS_DTYPE_KINDS:
        raise _bad(source, "classes.dtype", f"has kind {dtype.kind!r}; expected one of {CLASS_DTYPE_KINDS!r}")
    if not all(_fits_kind(v, dtype.kind) for v in c["values"]):
        raise _bad(source, "classes.values", f"do not match dtype {_short(c['dtype'])}: {_short(c['values'])}")
    try:
        classes = np.array(c["values"], dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise _bad(source, "classes.values", f"cannot be read as dtype {_short(c['dtype'])}") from None
    if [v.item() if isinstance(v, np.generic) else v for v in classes.tolist()] != list(c["values"]):
        raise _bad(source, "classes.values", f"do not fit dtype {_short(c['dtype'])}: {_short(c['values'])}")
    if classes[0] == classes[1]:
        raise _bad(source, "classes.values", "must be two distinct labels")
    return classes


def _fits_kind(v: Any, kind: str) -> bool:
    """A class label from JSON suits a numpy dtype kind (no silent conversion)."""
    if kind == "b":
        return isinstance(v, bool)
    if kind in "iu":
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == "f":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == "U":
        return isinstance(v, str)
    return True


def _is_num(v: Any) -> bool:
    """A finite number (an integer too large for a float is not)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


#: What each kind of certificate field may hold in the file (by its annotation in
#: :class:`~fairuse_opt.certificate.Certificate`): ``float`` fields hold null for NaN.
_FIELD_CHECKS = {
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "str | None": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a non-negative integer"),
    "float": (lambda v: v is None or _is_num(v), "a finite number or null"),
    "float | None": (lambda v: v is None or _is_num(v), "a finite number or null"),
    "tuple": (lambda v: isinstance(v, list), "a list"),
    "list": (lambda v: isinstance(v, list), "a list"),
}
_STRING_LISTS = ("fair_use", "failures", "notes")
#: Types of the certificate table's columns (other columns: any JSON scalar, list or null).
_ROW_CHECKS = {
    "n": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a non-negative integer"),
    "rationality_active": (lambda v: v is None or isinstance(v, bool), "true, false or null"),
    "at_set_boundary": (lambda v: v is None or isinstance(v, bool), "true, false or null"),
    "generic_fallback": (lambda v: v is None or isinstance(v, bool), "true, false or null"),
    "group": (lambda v: _scalar_value(v) or (isinstance(v, list) and all(_scalar_value(x) for x in v)),
              "a list of group values"),
    "best_alternative": (lambda v: v is None or _scalar_value(v)
                         or (isinstance(v, list) and all(_scalar_value(x) for x in v)),
                         "a list of group values or null"),
}
_ROW_NUMBERS = ("weight", "generic_loss", "own_loss", "gain", "margin", "rationality_slack",
                "best_alternative_loss", "envy_slack", "dual")


def _check_certificate_types(d: dict, source: str, where: str, Certificate: Any) -> None:
    """Type-check a certificate read from a file (``"verified": "yes"`` is not ``True``)."""
    import dataclasses

    annotations = {f.name: str(f.type) for f in dataclasses.fields(Certificate)}
    for name, value in d.items():
        if name == "table":
            continue
        if name not in annotations:
            raise _bad(source, f"{where}.{name}", "is not a certificate field")
        check = _FIELD_CHECKS.get(annotations[name])
        if check is not None and not check[0](value):
            raise _bad(source, f"{where}.{name}", f"must be {check[1]}; got {_short(value)}")
        if name in _STRING_LISTS and not all(isinstance(x, str) for x in value):
            raise _bad(source, f"{where}.{name}", "must be a list of strings")
        if name == "attempts" and not all(isinstance(a, list) and all(isinstance(x, str) for x in a)
                                          for a in value):
            raise _bad(source, f"{where}.attempts", "must be a list of [solver, status] string pairs")
        if name == "trace" and not all(x is None or _is_num(x) for x in value):
            raise _bad(source, f"{where}.trace", "must be a list of finite numbers")
    for i, row in enumerate(d["table"]):
        for col, value in row.items():
            check = _ROW_CHECKS.get(col)
            if col in _ROW_NUMBERS:
                check = (lambda v: v is None or _is_num(v), "a finite number or null")
            if check is not None and not check[0](value):
                raise _bad(source, f"{where}.table[{i}].{col}", f"must be {check[1]}; got {_short(value)}")


def _check_certificate_table(d: dict, cert: Any, index: Any, source: str) -> None:
    """The certificate of the served models lists every group of ``models`` once, with every
    column, and claims ``verified`` only when its own table and failures agree."""
    from .certificate import CERTIFICATE_COLUMNS

    rows = d["table"]
    keys = [()] if index is None else list(index.keys)
    groups = [tuple(r.get("group") or ()) if isinstance(r.get("group"), list) else (r.get("group"),)
              for r in rows]
    if len(rows) != len(keys) or sorted(map(repr, groups)) != sorted(map(repr, keys)):
        raise _bad(source, "certificate.table", "does not list the same groups as models")
    for i, row in enumerate(rows):
        missing = [c for c in CERTIFICATE_COLUMNS if c not in row]
        if missing:
            raise _bad(source, f"certificate.table[{i}]", f"lacks column(s) {missing}")
    if not cert.verified:
        return
    if cert.failures:
        raise _bad(source, "certificate.verified", "is true, but it lists failures")
    for i, row in enumerate(rows):
        if "rationality" in cert.fair_use and row["rationality_slack"] is None:
            raise _bad(source, "certificate.verified",
                       f"is true, but certificate.table[{i}].rationality_slack is null")
        if "envy_freeness" in cert.fair_use and row["best_alternative"] is not None and row["envy_slack"] is None:
            raise _bad(source, "certificate.verified", f"is true, but certificate.table[{i}].envy_slack is null")
    bad = cert.n_violations
    if bad:
        raise _bad(source, "certificate.verified", f"is true, but its table shows {bad} violated constraint(s) "
                                                   f"(slack below -{cert.tolerance:g})")


def _certificate(d: Any, source: str, where: str, Certificate: Any) -> Any:
    if not isinstance(d, dict) or not isinstance(d.get("table"), list) \
            or not all(isinstance(r, dict) for r in d["table"]):
        raise _bad(source, where, "must be an object with a 'table' list of rows")
    _require(d, CERTIFICATE_REQUIRED, source, where)
    _check_certificate_types(d, source, where, Certificate)
    try:
        cert = Certificate.from_dict(d)
    except (TypeError, ValueError, KeyError) as exc:
        raise _bad(source, where, f"cannot be read: {exc}") from None
    # to_dict() writes NaN as null; give the scalar fields their NaN back
    for name in CERTIFICATE_FLOAT_FIELDS:
        if getattr(cert, name, 0.0) is None:
            setattr(cert, name, float("nan"))
    return cert
