"""Reading a module's shape, namespacing it for OPA, and refusing what repo policies may not do."""

from __future__ import annotations

from pathlib import Path

import pytest

from lintas.engine.errors import RepoAccessError
from lintas.workers.policy.errors import PolicySyntaxError
from lintas.workers.policy.library import check_repo_modules, repo_modules
from lintas.workers.policy.rego_source import inspect, mask, namespace
from lintas.workers.policy.regorus_backend import RegorusEngine

SOURCE = """# data.not_a_ref in a comment
package lintas.local.net   # trailing comment

import data.lintas.builtin.bgp_auth

msg_text := "data.also_not_a_ref #not a comment"

deny contains msg if {
\tsome h in input.inventory.hosts
\th.data.password != null
\tdata.lintas.config.x == `raw data.string`
\tmsg := msg_text
}

test_one if { true }
test_two := true
"""


def test_mask_keeps_lines_and_blanks_strings_and_comments() -> None:
    masked = mask(SOURCE)
    assert len(masked) == len(SOURCE) and masked.count("\n") == SOURCE.count("\n")
    assert "not_a_ref" not in masked and "raw data" not in masked and "#not a comment" not in masked


def test_inspect() -> None:
    info = inspect("policies/net.rego", SOURCE)
    assert info.package == "lintas.local.net" and info.package_line == 2
    assert info.tests == (("test_one", 15), ("test_two", 16))
    assert "lintas.builtin.bgp_auth" in info.imports and "lintas.config.x" in info.imports


def test_namespace_rewrites_package_and_data_roots_only() -> None:
    out = namespace(SOURCE, "ns1")
    assert "package ns1.lintas.local.net" in out
    assert "import data.ns1.lintas.builtin.bgp_auth" in out
    assert "data.ns1.lintas.config.x" in out
    assert "h.data.password" in out  # a field called data is not the data root
    assert '"data.also_not_a_ref #not a comment"' in out and "# data.not_a_ref" in out
    assert out.count("\n") == SOURCE.count("\n")


def test_namespaced_module_still_evaluates() -> None:
    engine = RegorusEngine(isolated=False)
    src = 'package lintas.local\n\ndeny contains "x" if data.lintas.config.on\n'
    plain = engine.evaluate({"p.rego": src}, {}, {"lintas": {"config": {"on": True}}})
    moved = engine.evaluate({"p.rego": namespace(src, "ns")}, {}, {"ns": {"lintas": {"config": {"on": True}}}})
    assert [(v.policy, v.message) for v in plain.deny] == [("lintas.local", "x")]
    assert [(v.policy, v.message) for v in moved.deny] == [("ns.lintas.local", "x")]


@pytest.mark.parametrize(
    "source, line, fragment",
    [
        ('package lintas.builtin.bgp_auth\n\ndeny contains "x" if true\n', 1, "reserved"),
        ("# header\npackage lintas\n", 2, "reserved"),
        ("package lintas.config.mine\n", 1, "reserved"),
        ("package lintas.decision\n", 1, "reserved"),
        ('package acme\n\nx := http.send({"method": "get", "url": "https://evil.invalid"})\n', 3, "network"),
        ("package acme\n\nx := opa.runtime().env\n", 3, "environment"),
        ("package acme\n\nx := time.now_ns()\n", 3, "evaluated_at"),
        ('deny contains "x" if true\n', 1, "no package"),
    ],
)
def test_repo_modules_that_are_refused(source: str, line: int, fragment: str) -> None:
    with pytest.raises(PolicySyntaxError) as err:
        check_repo_modules({"policies/bad.rego": source})
    d = err.value.diagnostics[0]
    assert (d.file, d.line) == ("policies/bad.rego", line) and fragment in d.message, d


def test_forbidden_names_in_strings_and_comments_are_fine() -> None:
    check_repo_modules({"policies/ok.rego": 'package acme\n\n# never call http.send here\nx := "opa.runtime"\n'})


def test_repo_modules_are_read_inside_the_repo_only(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "policies" / "sub").mkdir(parents=True)
    (root / "policies" / "a.rego").write_text("package lintas.local\n")
    (root / "policies" / "sub" / "b.rego").write_text("package lintas.local.sub\n")
    (root / "policies" / "README.md").write_text("not a policy\n")
    assert sorted(repo_modules(root)) == ["policies/a.rego", "policies/sub/b.rego"]
    outside = tmp_path / "outside.rego"
    outside.write_text("package stolen\n")
    (root / "policies" / "link.rego").symlink_to(outside)
    with pytest.raises(RepoAccessError) as err:  # fails the stage, naming the link
        repo_modules(root)
    assert err.value.diagnostics[0].file == "policies/link.rego"
