"""Where each model object came from, and schema parsing that keeps going.

Every object of the model remembers its :class:`Origin` (the YAML document and
the path inside it), so a semantic error found long after parsing still points
at the right file, line and column. Lists are validated item by item: one bad
device yields its own diagnostics and the other 999 are still checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from lintas.engine.diagnostics import MAX_DIAGNOSTICS, Collector, Diagnostic
from lintas.engine.yamlsafe import Located, pydantic_diagnostics

PathPart = str | int


@dataclass(frozen=True, slots=True, eq=False)
class Origin:
    """A position in a loaded document: ``(doc, ("devices", 3))``."""

    doc: Located
    path: tuple[PathPart, ...]

    @property
    def file(self) -> str:
        return self.doc.file

    def diagnostic(self, message: str, *sub: PathPart) -> Diagnostic:
        return self.doc.diagnostic([*self.path, *sub], message)

    def where(self, *sub: PathPart) -> str:
        """``file:line`` of this object (or of ``sub`` inside it), for messages."""
        mark = self.doc.mark([*self.path, *sub])
        return f"{self.file}:{mark.line}" if mark else self.file


class Report:
    """Collects diagnostics; nothing stops at the first problem. Bounded: the first
    ``limit`` are kept, the rest only counted (``total``), and once full nothing more is built."""

    def __init__(self, limit: int = MAX_DIAGNOSTICS) -> None:
        self._sink = Collector(limit)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return self._sink.kept

    @property
    def total(self) -> int:
        return self._sink.total

    @property
    def full(self) -> bool:
        return self._sink.full

    def add(self, origin: Origin, message: str, *sub: PathPart) -> None:
        if self._sink.full:
            self._sink.count(1)
        else:
            self._sink.add(origin.diagnostic(message, *sub))

    def extend(self, diagnostics: list[Diagnostic], total: int | None = None) -> None:
        self._sink.extend(diagnostics, total)

    def count(self, n: int) -> None:
        self._sink.count(n)

    def __bool__(self) -> bool:
        return bool(self._sink)

    def sorted(self) -> list[Diagnostic]:
        unique = dict.fromkeys(self._sink.kept)
        return sorted(unique, key=lambda d: (d.file, d.line or 0, d.column or 0))


@dataclass(slots=True)
class Parsed:
    """The valid parts of one file."""

    values: dict[str, Any] = field(default_factory=dict)
    items: dict[str, list[tuple[Any, Origin]]] = field(default_factory=dict)
    broken: dict[str, set[str]] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)


@lru_cache(maxsize=64)
def _adapter(model: type[BaseModel], field_name: str) -> TypeAdapter[Any]:
    return TypeAdapter(model.model_fields[field_name].annotation or Any)


def _item_name(raw: Any) -> str | None:
    name = raw.get("name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) else None


def parse_document(doc: Located, model: type[BaseModel], report: Report) -> Parsed:
    """Validate the top-level keys of ``doc`` against the fields of ``model``.

    List fields are validated per item; invalid items are reported and left
    out, and their names recorded in ``broken`` so references to them do not
    cascade into "unknown ..." errors.
    """
    out = Parsed()
    data = {} if doc.data is None else doc.data
    fields = model.model_fields
    if not isinstance(data, dict):
        keys = ", ".join(fields)
        report.extend([doc.diagnostic([], f"expected a mapping with the keys: {keys}")])
        out.failed.update(fields)
        return out
    for key in data:
        if key not in fields:
            report.extend([doc.diagnostic([key], f"unknown key '{key}'")])
    for name, info in fields.items():
        if name not in data:
            if info.is_required():
                report.extend([doc.diagnostic([], f"missing required key '{name}'")])
                out.failed.add(name)
            else:
                out.values[name] = info.get_default(call_default_factory=True)
                if get_origin(info.annotation) is list:
                    out.items[name] = []
            continue
        raw = data[name]
        if get_origin(info.annotation) is list:
            _parse_items(doc, name, get_args(info.annotation)[0], raw, report, out)
            continue
        try:
            out.values[name] = _adapter(model, name).validate_python(raw)
        except ValidationError as err:
            report.extend(pydantic_diagnostics(err, doc, prefix=[name]))
            out.failed.add(name)
    return out


def _parse_items(doc: Located, name: str, item_type: Any, raw: Any, report: Report, out: Parsed) -> None:
    items: list[tuple[Any, Origin]] = []
    broken: set[str] = set()
    out.items[name], out.broken[name] = items, broken
    if raw is None:
        return
    if not isinstance(raw, list):
        report.extend([doc.diagnostic([name], f"'{name}' must be a list")])
        out.failed.add(name)
        return
    validate = item_type.model_validate
    for index, item in enumerate(raw):
        try:
            obj = validate(item)
        except ValidationError as err:
            if report.full:  # bounded: count, do not build (a list of a million bad items)
                report.count(err.error_count())
            else:
                report.extend(pydantic_diagnostics(err, doc, prefix=[name, index]))
            if (item_name := _item_name(item)) is not None:
                broken.add(item_name)
            continue
        items.append((obj, Origin(doc, (name, index))))


def parse_mapping(doc: Located, item_type: type[BaseModel], report: Report) -> list[tuple[str, Any, Origin]]:
    """A file whose top level is ``name: {...}`` (nornir inventory files)."""
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        report.extend([doc.diagnostic([], "expected a mapping of names to entries")])
        return []
    out: list[tuple[str, Any, Origin]] = []
    for key, raw in data.items():
        try:
            obj = item_type.model_validate({} if raw is None else raw)
        except ValidationError as err:
            if report.full:
                report.count(err.error_count())
            else:
                report.extend(pydantic_diagnostics(err, doc, prefix=[key]))
            continue
        out.append((str(key), obj, Origin(doc, (key,))))
    return out


def parse_single(doc: Located, item_type: type[BaseModel], report: Report) -> tuple[Any, Origin] | None:
    """A file that is one object (nornir ``defaults.yaml``)."""
    try:
        obj = item_type.model_validate({} if doc.data is None else doc.data)
    except ValidationError as err:
        report.extend(pydantic_diagnostics(err, doc))
        return None
    return obj, Origin(doc, ())
