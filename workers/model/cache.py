"""Reuse the work of the previous load for files that did not change.

``lintas plan`` and the render stage validate one commit after another; most
commits touch one or two files. A :class:`ModelCache` keeps the parsed YAML of
each file by content hash and the schema-validated objects of each parsed
document, so a second load re-parses only changed files. Semantic checks always
run on the whole model: they are cheap and their result depends on every file.

Cached objects are immutable (frozen pydantic models and located documents), so
sharing them between models is safe. A cache is not thread-safe: use one per
thread (a worker validates one repository state at a time anyway).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from lintas.engine.diagnostics import Diagnostic
from lintas.engine.yamlsafe import Located
from lintas.workers.model.source import Report

T = TypeVar("T")


class ModelCache:
    def __init__(self, max_documents: int = 128) -> None:
        self.max_documents = max_documents
        self._docs: OrderedDict[tuple[str, str], Located] = OrderedDict()
        self._parsed: WeakKeyDictionary[Located, tuple[Any, tuple[Diagnostic, ...], int]] = WeakKeyDictionary()
        self.hits = 0
        self.misses = 0

    def document(self, rel: str, data: bytes, load: Callable[[bytes], Located]) -> Located:
        """The parsed document for ``data``, loading it only if this content is new."""
        key = (rel, hashlib.blake2b(data, digest_size=16).hexdigest())
        doc = self._docs.get(key)
        if doc is not None:
            self.hits += 1
            self._docs.move_to_end(key)
            return doc
        self.misses += 1
        doc = load(data)
        self._docs[key] = doc
        while len(self._docs) > self.max_documents:
            self._docs.popitem(last=False)
        return doc

    def parsed(self, doc: Located, parse: Callable[[Report], T], report: Report) -> T:
        """``parse(report)`` for ``doc``, computed once per document; its diagnostics are replayed."""
        hit = self._parsed.get(doc)
        if hit is None:
            own = Report()
            result = parse(own)
            self._parsed[doc] = (result, tuple(own.diagnostics), own.total)
            report.extend(own.diagnostics, own.total)
            return result
        result, diagnostics, total = hit
        report.extend(list(diagnostics), total)
        return result
