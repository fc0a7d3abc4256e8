"""Hostile-input-safe YAML loading that remembers where every value came from.

libyaml (``CSafeLoader``) only *parses*; composing and constructing happen here,
iteratively over the event stream, so that every limit is checked before the
work it guards is done:

* input size (``max_bytes``), nesting depth (``max_depth``), node count
  (``max_nodes``) and alias expansions (``max_aliases``, counted transitively, so
  a billion-laughs document fails after a few dozen events without allocating);
* duplicate mapping keys, non-scalar keys, recursive or undefined aliases,
  unsupported tags (``!!binary``, ``!!set``, ``!custom``) and multi-document
  streams are errors.

libyaml's own composer recurses in C and crashes the process on ~100k nested
brackets, which is why it is not used.

The result is plain data (dict/list/str/int/float/bool/None). YAML 1.1 scalar
resolution is kept (``yes``/``on`` are booleans, as with ``yaml.safe_load``),
except that timestamps stay strings. Merge keys (``<<: *base``) are supported:
explicit keys win, and among several merged mappings the earlier one wins.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import yaml  # type: ignore[import-untyped,unused-ignore]

from lintas.engine.diagnostics import Diagnostic, format_path
from lintas.engine.errors import InputError, YamlError

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_constructor = yaml.constructor.SafeConstructor()
_resolver = yaml.resolver.Resolver()
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_TAG}{t}" for t in ("str", "null", "bool", "int", "float", "timestamp", "merge")}
_STR, _MERGE, _TIMESTAMP = f"{_TAG}str", f"{_TAG}merge", f"{_TAG}timestamp"
_MAP, _SEQ = f"{_TAG}map", f"{_TAG}seq"
_MAX_BYTES = 5 * 1024 * 1024

PathLike = Sequence[str | int]


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based position in a source file."""

    line: int
    column: int


class _Loc:
    """Source positions of one node and, for collections, of its children."""

    __slots__ = ("items", "keys", "mark")

    def __init__(self, mark: Mark) -> None:
        self.mark = mark
        self.keys: dict[Any, tuple[Mark, _Loc]] | None = None
        self.items: list[_Loc] | None = None


class Located:
    """Loaded YAML data plus the position of every key and value in ``file``."""

    def __init__(self, data: Any, file: str, root: _Loc | None) -> None:
        self.data = data
        self.file = file
        self._root = root

    def _walk(self, path: PathLike) -> tuple[int, Mark | None]:
        """How many leading parts of ``path`` exist, and the mark of the last that does."""
        loc = self._root
        if loc is None:
            return 0, None
        mark = loc.mark
        for depth, part in enumerate(path):
            child: tuple[Mark, _Loc] | None = None
            if loc.keys is not None:
                child = loc.keys.get(part)
                if child is None and isinstance(part, str):
                    child = next((v for k, v in loc.keys.items() if str(k) == part), None)
            elif loc.items is not None and isinstance(part, int) and 0 <= part < len(loc.items):
                item = loc.items[part]
                child = (item.mark, item)
            if child is None:
                return depth, mark
            mark, loc = child
        return len(path), mark

    def mark(self, path: PathLike) -> Mark | None:
        """Mark of the node at ``path`` (a mapping key's own position), else of its
        nearest existing ancestor. None only for an empty document."""
        return self._walk(path)[1]

    def has(self, path: PathLike) -> bool:
        return self._walk(path)[0] == len(path)

    def diagnostic(self, path: PathLike, message: str) -> Diagnostic:
        mark = self.mark(path)
        return Diagnostic(
            file=self.file,
            line=mark.line if mark else None,
            column=mark.column if mark else None,
            path=format_path(path),
            message=message,
        )


@dataclass(slots=True)
class _Anchor:
    value: Any
    loc: _Loc
    nodes: int  # nodes in the expanded subtree
    aliases: int  # alias expansions inside it
    height: int  # nesting levels inside it


@dataclass(slots=True)
class _Frame:
    data: dict[Any, Any] | list[Any]
    loc: _Loc
    anchor: str | None
    nodes0: int
    aliases0: int
    height: int = 0
    key: tuple[Any, Mark] | None = None
    merge: bool = False
    merges: list[tuple[dict[Any, Any], _Loc]] | None = None


def _mark(m: Any) -> Mark:
    return Mark(m.line + 1, m.column + 1)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class _Builder:
    def __init__(self, file: str, max_aliases: int, max_nodes: int, max_depth: int) -> None:
        self.file = file
        self.max_aliases, self.max_nodes, self.max_depth = max_aliases, max_nodes, max_depth
        self.nodes = 0
        self.aliases = 0
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchor] = {}
        self.result: tuple[Any, _Loc] | None = None
        self._plain: dict[str, tuple[str, Any]] = {}

    def fail(self, mark: Mark | None, message: str) -> YamlError:
        line, col = (mark.line, mark.column) if mark else (None, None)
        return YamlError([Diagnostic(file=self.file, line=line, column=col, message=message)])

    def _count(self, mark: Mark, nodes: int = 1, aliases: int = 0, height: int = 0) -> None:
        self.nodes += nodes
        self.aliases += aliases
        if aliases and (self.aliases > self.max_aliases or self.nodes > self.max_nodes):
            limits = f"{self.max_aliases} aliases, {self.max_nodes} nodes"
            raise self.fail(mark, f"alias expansion limit exceeded ({limits})")
        if self.nodes > self.max_nodes:
            raise self.fail(mark, f"document too large: more than {self.max_nodes} nodes")
        if len(self.stack) + height > self.max_depth:
            raise self.fail(mark, f"nesting too deep (more than {self.max_depth} levels)")

    def _wants_key(self) -> bool:
        stack = self.stack
        return bool(stack) and stack[-1].key is None and isinstance(stack[-1].data, dict)

    def start(self, event: Any, is_map: bool) -> None:
        mark = _mark(event.start_mark)
        if self._wants_key():
            raise self.fail(mark, "mapping keys must be scalars")
        tag = event.tag
        if tag is not None and tag != "!" and tag != (_MAP if is_map else _SEQ):
            raise self.fail(mark, f"unsupported tag '{tag}'")
        if event.anchor is not None and any(f.anchor == event.anchor for f in self.stack):
            raise self.fail(mark, f"anchor '&{event.anchor}' redefined inside itself")
        self._count(mark, height=1)
        loc = _Loc(mark)
        data: dict[Any, Any] | list[Any]
        if is_map:
            data, loc.keys = {}, {}
        else:
            data, loc.items = [], []
        self.stack.append(_Frame(data, loc, event.anchor, self.nodes - 1, self.aliases))

    def end(self) -> None:
        frame = self.stack.pop()
        data = frame.data
        if frame.merges and isinstance(data, dict) and frame.loc.keys is not None:
            merged: dict[Any, Any] = {}
            keys: dict[Any, tuple[Mark, _Loc]] = {}
            for src, src_loc in frame.merges:
                for k, v in src.items():
                    if k not in merged:
                        merged[k] = v
                        if src_loc.keys and k in src_loc.keys:
                            keys[k] = src_loc.keys[k]
            merged.update(data)
            keys.update(frame.loc.keys)
            data, frame.loc.keys = merged, keys
        if frame.anchor is not None:
            nodes, aliases = self.nodes - frame.nodes0, self.aliases - frame.aliases0
            self.anchors[frame.anchor] = _Anchor(data, frame.loc, nodes, aliases, frame.height + 1)
        self._emit(data, frame.loc, frame.height + 1)

    def _construct(self, tag: str, raw: str, mark: Mark) -> Any:
        if tag in (_STR, _TIMESTAMP, _MERGE):
            return raw
        if tag not in _SCALAR_TAGS:
            raise self.fail(mark, f"unsupported tag '{tag}'")
        short = tag[len(_TAG) :]
        try:
            return getattr(_constructor, f"construct_yaml_{short}")(yaml.ScalarNode(tag, raw))
        except (ValueError, KeyError, yaml.YAMLError) as exc:
            raise self.fail(mark, f"invalid {short} {raw[:40]!r}: {exc}") from None

    def scalar(self, event: Any) -> None:
        sm = event.start_mark
        mark = Mark(sm.line + 1, sm.column + 1)
        tag, raw = event.tag, event.value
        value: Any
        if tag is not None and tag != "!":
            value = self._construct(tag, raw, mark)
        elif not event.implicit[0]:  # quoted or block scalar without a tag: a string
            tag, value = _STR, raw
        elif (hit := self._plain.get(raw)) is not None:
            tag, value = hit
        else:
            tag = _resolver.resolve(yaml.ScalarNode, raw, (True, False))
            value = self._construct(tag, raw, mark)
            if len(self._plain) < 4096 and len(raw) < 64:
                self._plain[raw] = (tag, value)
        if tag == _MERGE and self._wants_key():
            top = self.stack[-1]
            if top.merges is not None:
                raise self.fail(mark, "duplicate key '<<'")
            top.key, top.merge, top.merges = ("<<", mark), True, []
            return
        self.nodes += 1
        if self.nodes > self.max_nodes:
            self._count(mark, 0)
        loc = _Loc(mark)
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchor(value, loc, 1, 0, 0)
        self._emit(value, loc, 0)

    def alias(self, event: Any) -> None:
        mark = _mark(event.start_mark)
        name = event.anchor
        anchor = self.anchors.get(name)
        if anchor is None:
            if any(f.anchor == name for f in self.stack):
                raise self.fail(mark, f"recursive alias '*{name}'")
            raise self.fail(mark, f"undefined alias '*{name}'")
        self._count(mark, anchor.nodes, 1 + anchor.aliases, anchor.height)
        if self._wants_key() and isinstance(anchor.value, (dict, list)):
            raise self.fail(mark, "mapping keys must be scalars")
        loc = _Loc(mark)
        loc.keys, loc.items = anchor.loc.keys, anchor.loc.items
        self._emit(_copy(anchor.value), loc, anchor.height)

    def _emit(self, value: Any, loc: _Loc, height: int) -> None:
        if not self.stack:
            self.result = (value, loc)
            return
        top = self.stack[-1]
        top.height = max(top.height, height)
        if isinstance(top.data, list):
            top.data.append(value)
            assert top.loc.items is not None
            top.loc.items.append(loc)
        elif top.key is None:
            top.key = (value, loc.mark)
        elif top.merge:
            top.merge, top.key = False, None
            sources = value if isinstance(value, list) else [value]
            locs = loc.items if isinstance(value, list) and loc.items is not None else [loc]
            if not all(isinstance(s, dict) for s in sources):
                raise self.fail(loc.mark, "'<<' (merge) needs a mapping or a list of mappings")
            assert top.merges is not None
            top.merges.extend(zip(sources, locs, strict=True))
        else:
            key, key_mark = top.key
            top.key = None
            assert top.loc.keys is not None
            try:
                duplicate = key in top.data
            except TypeError:
                raise self.fail(key_mark, "mapping keys must be scalars") from None
            if duplicate:
                first = top.loc.keys[key][0]
                raise self.fail(key_mark, f"duplicate key {key!r} (first defined at line {first.line})")
            top.data[key] = value
            top.loc.keys[key] = (key_mark, loc)


def _too_large(file: str, size: int, limit: int) -> YamlError:
    return YamlError([Diagnostic(file=file, message=f"file too large ({size} bytes > {limit})")])


def load_yaml(
    text: str | bytes,
    *,
    file: str,
    max_bytes: int = _MAX_BYTES,
    max_aliases: int = 100,
    max_nodes: int = 1_000_000,
    max_depth: int = 64,
) -> Located:
    """Parse exactly one YAML document (or none: data None) within the given limits."""
    size = len(text)
    if isinstance(text, str) and size <= max_bytes:
        size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise _too_large(file, size, max_bytes)
    builder = _Builder(file, max_aliases, max_nodes, max_depth)
    loader = _Loader(text)
    documents = 0
    try:
        handlers: dict[type, Callable[[Any], None]] = {
            yaml.ScalarEvent: builder.scalar,
            yaml.AliasEvent: builder.alias,
            yaml.MappingStartEvent: lambda e: builder.start(e, True),
            yaml.SequenceStartEvent: lambda e: builder.start(e, False),
            yaml.MappingEndEvent: lambda e: builder.end(),
            yaml.SequenceEndEvent: lambda e: builder.end(),
        }
        get_event = loader.get_event
        while (event := get_event()) is not None:
            handler = handlers.get(type(event))
            if handler is not None:
                handler(event)
            elif isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise builder.fail(_mark(event.start_mark), "multiple YAML documents in one file are not allowed")
    except yaml.MarkedYAMLError as exc:
        m = exc.problem_mark
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        raise builder.fail(_mark(m) if m else None, f"YAML syntax error: {problem}{context}") from None
    except (yaml.YAMLError, UnicodeError) as exc:
        raise builder.fail(None, f"unreadable YAML: {exc}") from None
    finally:
        loader.dispose()
    if builder.result is None:
        return Located(None, file, None)
    data, root = builder.result
    return Located(data, file, root)


def read_limited(
    path: Path, *, max_bytes: int, display_name: str, error: type[InputError] = YamlError, nofollow: bool = False
) -> bytes:
    """Read a regular file, refusing oversized or special files before reading them.

    Opens non-blocking (a fifo cannot hang us) and checks type and size on the
    open descriptor, then reads at most ``max_bytes + 1`` bytes.
    """

    def fail(message: str) -> InputError:
        return error([Diagnostic(file=display_name, message=message)])

    try:
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(path, flags | (os.O_NOFOLLOW if nofollow else 0))
    except OSError as exc:
        raise fail(f"cannot open: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise fail("not a regular file")
        if st.st_size > max_bytes:
            raise fail(f"file too large ({st.st_size} bytes > {max_bytes})")
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise fail(f"file too large (more than {max_bytes} bytes)")
    return data


def load_yaml_file(path: Path, *, display_name: str, **limits: int) -> Located:
    max_bytes = limits.get("max_bytes", _MAX_BYTES)
    data = read_limited(path, max_bytes=max_bytes, display_name=display_name)
    return load_yaml(data, file=display_name, **limits)


def pydantic_diagnostics(
    err: pydantic.ValidationError, doc: Located, *, prefix: PathLike = (), limit: int = 100
) -> list[Diagnostic]:
    """Map pydantic errors onto document positions.

    Loc parts that are not in the document (union member names, ``[key]``) are
    dropped when the next part does exist, so paths read like the YAML.
    """
    out: list[Diagnostic] = []
    errors = err.errors(include_url=False)
    for e in errors[:limit]:
        raw = [*prefix, *(p for p in e["loc"] if p != "[key]")]
        path: list[str | int] = []
        for i, part in enumerate(raw):
            here = [*path, part]
            if doc.has(here) or i == len(raw) - 1 or not doc.has([*path, raw[i + 1]]):
                path.append(part)
        key = path[-1] if path else ""
        if e["type"] == "extra_forbidden":
            message = f"unknown key '{key}'"
        elif e["type"] == "missing":
            message = f"missing required key '{key}'"
        else:
            message = e["msg"].removeprefix("Value error, ")
        diag = doc.diagnostic(path, message)
        if diag not in out:
            out.append(diag)
    if len(errors) > limit:
        out.append(doc.diagnostic(prefix, f"... and {len(errors) - limit} more problem(s)"))
    return out
