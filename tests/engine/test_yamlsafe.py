from __future__ import annotations

import os
from pathlib import Path

import pydantic
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lintas.engine.errors import YamlError
from lintas.engine.yamlsafe import Mark, load_yaml, load_yaml_file, pydantic_diagnostics

DOC = """\
top:
  name: demo
  items:
    - first
    - key: value
      other: 2
  flow: {a: 1, b: [x, y]}
"""


def _only(exc: pytest.ExceptionInfo[YamlError]) -> tuple[int | None, str]:
    [diag] = exc.value.diagnostics
    assert diag.file == "f.yaml"
    return diag.line, diag.message


def test_marks_point_at_keys_and_list_items() -> None:
    doc = load_yaml(DOC, file="f.yaml")
    assert doc.mark(["top"]) == Mark(1, 1)
    assert doc.mark(["top", "name"]) == Mark(2, 3)
    assert doc.mark(["top", "items", 0]) == Mark(4, 7)
    assert doc.mark(["top", "items", 1]) == Mark(5, 7)
    assert doc.mark(["top", "items", 1, "other"]) == Mark(6, 7)
    assert doc.mark(["top", "flow", "b", 1]) == Mark(7, 23)


def test_mark_of_missing_path_is_nearest_ancestor() -> None:
    doc = load_yaml(DOC, file="f.yaml")
    assert doc.mark(["top", "items", 1, "nope", "deeper"]) == Mark(5, 7)
    assert doc.mark(["top", "items", 9]) == Mark(3, 3)
    assert doc.mark([]) == Mark(1, 1)


def test_diagnostic_carries_location_and_path() -> None:
    diag = load_yaml(DOC, file="f.yaml").diagnostic(["top", "items", 1, "other"], "bad")
    assert (diag.file, diag.line, diag.column, diag.path) == ("f.yaml", 6, 7, "top.items[1].other")


def test_empty_document_is_none() -> None:
    assert load_yaml("", file="f.yaml").data is None
    assert load_yaml("# only a comment\n", file="f.yaml").data is None


def test_plain_data_only() -> None:
    data = load_yaml("d: 2024-01-02\nn: ~\nb: yes\nf: 1.5\ni: 0x10\ns: '7'\n", file="f.yaml").data
    assert data == {"d": "2024-01-02", "n": None, "b": True, "f": 1.5, "i": 16, "s": "7"}


def test_duplicate_key_is_an_error_with_line() -> None:
    with pytest.raises(YamlError) as exc:
        load_yaml("a: 1\nb:\n  c: 1\n  c: 2\n", file="f.yaml")
    line, message = _only(exc)
    assert line == 4
    assert "duplicate key 'c'" in message and "line 3" in message


def test_billion_laughs_fails_fast() -> None:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    with pytest.raises(YamlError) as exc:
        load_yaml("\n".join(lines), file="f.yaml")
    line, message = _only(exc)
    assert "alias expansion limit exceeded" in message
    assert line is not None


def test_wide_alias_fanout_hits_node_limit() -> None:
    big = "base: &b [" + ", ".join(["x"] * 1000) + "]\n"
    refs = "refs: [" + ", ".join(["*b"] * 50) + "]\n"
    with pytest.raises(YamlError, match="alias expansion limit exceeded"):
        load_yaml(big + refs, file="f.yaml", max_nodes=20_000)


def test_recursive_and_undefined_aliases_are_errors() -> None:
    with pytest.raises(YamlError, match="recursive alias"):
        load_yaml("a: &a [1, *a]\n", file="f.yaml")
    with pytest.raises(YamlError, match="undefined alias"):
        load_yaml("a: *nope\n", file="f.yaml")


def test_aliases_are_copies() -> None:
    data = load_yaml("a: &a {x: [1]}\nb: *a\n", file="f.yaml").data
    assert data["a"] == data["b"]
    assert data["a"] is not data["b"]


def test_merge_keys() -> None:
    doc = load_yaml("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n", file="f.yaml")
    assert doc.data["m"] == {"x": 1, "y": 3}
    assert doc.mark(["m", "y"]) == Mark(4, 3)
    assert doc.mark(["m", "x"]) == Mark(1, 11)
    with pytest.raises(YamlError, match="merge"):
        load_yaml("m:\n  <<: 5\n", file="f.yaml")


@pytest.mark.parametrize("depth, ok", [(64, True), (65, False), (200_000, False)])
def test_depth_limit(depth: int, ok: bool) -> None:
    text = "[" * depth + "]" * depth
    if ok:
        load_yaml(text, file="f.yaml")
        return
    with pytest.raises(YamlError) as exc:
        load_yaml(text, file="f.yaml")
    line, message = _only(exc)
    assert line == 1 and "nesting too deep" in message


def test_depth_limit_counts_aliased_subtrees() -> None:
    deep = "[" * 40 + "]" * 40
    with pytest.raises(YamlError, match="nesting too deep"):
        load_yaml(f"a: &a {deep}\nb: {'[' * 30}*a{']' * 30}\n", file="f.yaml")


def test_size_limit() -> None:
    with pytest.raises(YamlError, match=r"file too large \(101 bytes > 100\)"):
        load_yaml("a: " + "x" * 98, file="f.yaml", max_bytes=100)
    with pytest.raises(YamlError, match="file too large"):
        load_yaml("é" * 60, file="f.yaml", max_bytes=100)  # 120 bytes as UTF-8


def test_node_limit() -> None:
    with pytest.raises(YamlError, match="more than 10 nodes"):
        load_yaml("[" + ", ".join(["1"] * 20) + "]", file="f.yaml", max_nodes=10)


def test_syntax_error_has_line() -> None:
    with pytest.raises(YamlError) as exc:
        load_yaml("a: 1\nb: [1, 2\nc: 3\n", file="f.yaml")
    line, message = _only(exc)
    assert line == 3
    assert message.startswith("YAML syntax error")


def test_multi_document_rejected() -> None:
    with pytest.raises(YamlError) as exc:
        load_yaml("a: 1\n---\nb: 2\n", file="f.yaml")
    line, message = _only(exc)
    assert line == 2 and "multiple YAML documents" in message


@pytest.mark.parametrize(
    "text, message",
    [
        ("? [1, 2]\n: x\n", "mapping keys must be scalars"),
        ("? {a: 1}\n: x\n", "mapping keys must be scalars"),
        ("a: &k [1]\n*k : x\n", "mapping keys must be scalars"),
        ("a: !!binary aGVsbG8=\n", "unsupported tag"),
        ("a: !!python/object:os.system x\n", "unsupported tag"),
        ("a: !Ref x\n", "unsupported tag"),
        ("a: !!set {x: ~}\n", "unsupported tag"),
        ("a: " + "9" * 5000 + "\n", "invalid int"),
        ("a: \x07\n", "unreadable YAML"),
    ],
)
def test_hostile_constructs_rejected(text: str, message: str) -> None:
    with pytest.raises(YamlError, match=message):
        load_yaml(text, file="f.yaml")


def test_one_megabyte_loads_quickly() -> None:
    data = {
        f"leaf{i}": {"asn": 65000 + i, "up": True, "ifs": [{"name": f"Ethernet{j}", "mtu": 9000} for j in range(4)]}
        for i in range(6000)
    }
    text = yaml.safe_dump(data)
    assert len(text) > 1_000_000
    assert load_yaml(text, file="f.yaml").data == data


def test_load_yaml_file_checks_size_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(100 * 1024 * 1024)
    with pytest.raises(YamlError, match="file too large"):
        load_yaml_file(big, display_name="big.yaml")
    small = tmp_path / "ok.yaml"
    small.write_text("a: [1]\n")
    doc = load_yaml_file(small, display_name="repo/ok.yaml")
    assert doc.data == {"a": [1]} and doc.file == "repo/ok.yaml"


def test_load_yaml_file_refuses_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(YamlError, match="not a regular file"):
        load_yaml_file(fifo, display_name="pipe.yaml")


class Inner(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    count: int
    name: str


class Outer(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    inner: dict[str, Inner]
    tags: list[int] = []


def test_pydantic_diagnostics_map_to_lines() -> None:
    doc = load_yaml(
        "inner:\n  one:\n    count: x\n    name: a\n    extra: 1\n  two:\n    count: 1\ntags: [1, x]\n",
        file="f.yaml",
    )
    with pytest.raises(pydantic.ValidationError) as exc:
        Outer.model_validate(doc.data)
    diags = {d.path: d for d in pydantic_diagnostics(exc.value, doc)}
    assert set(diags) == {"inner.one.count", "inner.one.extra", "inner.two.name", "tags[1]"}
    assert (diags["inner.one.count"].line, diags["inner.one.count"].column) == (3, 5)
    assert diags["inner.one.count"].message.startswith("Input should be a valid integer")
    assert diags["inner.one.extra"].line == 5
    assert diags["inner.one.extra"].message == "unknown key 'extra'"
    assert diags["inner.two.name"].line == 6  # the parent mapping's key
    assert diags["inner.two.name"].message == "missing required key 'name'"
    assert (diags["tags[1]"].line, diags["tags[1]"].column) == (8, 11)
    assert all(d.file == "f.yaml" for d in diags.values())


def test_pydantic_diagnostics_skip_union_member_names() -> None:
    class M(pydantic.BaseModel):
        v: int | list[int]

    doc = load_yaml("v:\n  - 1\n  - x\n", file="f.yaml")
    with pytest.raises(pydantic.ValidationError) as exc:
        M.model_validate(doc.data)
    paths = {(d.path, d.line) for d in pydantic_diagnostics(exc.value, doc)}
    assert ("v[1]", 3) in paths


def test_pydantic_diagnostics_prefix() -> None:
    doc = load_yaml("outer:\n  inner:\n    count: 1\n", file="f.yaml")
    with pytest.raises(pydantic.ValidationError) as exc:
        Inner.model_validate(doc.data["outer"]["inner"])
    [diag] = pydantic_diagnostics(exc.value, doc, prefix=["outer", "inner"])
    assert (diag.path, diag.line, diag.message) == ("outer.inner.name", 2, "missing required key 'name'")


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False),
    st.text(max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=20), st.one_of(scalars, st.lists(scalars, max_size=5)), max_size=10))
def test_round_trips_safe_dump(original: dict[str, object]) -> None:
    assert load_yaml(yaml.safe_dump(original), file="f.yaml").data == original
