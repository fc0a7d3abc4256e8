from __future__ import annotations

import os
from pathlib import Path

import pytest

from lintas.engine.errors import RepoAccessError
from lintas.engine.repofs import RepoFS, glob_match


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "fabric" / "leaves").mkdir(parents=True)
    (root / "fabric" / "spine1.yaml").write_text("asn: 65001\n")
    (root / "fabric" / "leaves" / "leaf1.yaml").write_text("asn: 65101\n")
    (root / "hosts").mkdir()
    (root / "hosts" / "kvm1.yml").write_text("mtu: 9000\n")
    (root / ".git").mkdir()
    (root / ".git" / "config.yaml").write_text("x: 1\n")
    (root / "README.md").write_text("hi\n")
    return root


def _message(exc: pytest.ExceptionInfo[RepoAccessError], rel: str) -> str:
    [diag] = exc.value.diagnostics
    assert diag.file == rel
    return diag.message


def test_reads_files_inside(repo: Path) -> None:
    fs = RepoFS(repo)
    assert fs.read_text("fabric/spine1.yaml") == "asn: 65001\n"
    assert fs.read_bytes("./fabric/leaves/../spine1.yaml") == b"asn: 65001\n"
    assert fs.load_yaml("hosts/kvm1.yml").data == {"mtu": 9000}
    assert fs.load_yaml("hosts/kvm1.yml").file == "hosts/kvm1.yml"
    assert fs.exists("README.md")
    assert not fs.exists("missing.yaml")


@pytest.mark.parametrize("rel", ["../outside.txt", "fabric/../../outside.txt", "fabric/../.."])
def test_dotdot_escape_rejected(repo: Path, rel: str) -> None:
    (repo.parent / "outside.txt").write_text("secret")
    with pytest.raises(RepoAccessError) as exc:
        RepoFS(repo).read_text(rel)
    assert "escapes the repository" in _message(exc, rel)


@pytest.mark.parametrize("rel", ["/etc/passwd", "//etc/passwd"])
def test_absolute_path_rejected(repo: Path, rel: str) -> None:
    with pytest.raises(RepoAccessError) as exc:
        RepoFS(repo).read_text(rel)
    assert "absolute paths are not allowed" in _message(exc, rel)


def test_symlink_outside_rejected(repo: Path) -> None:
    secret = repo.parent / "passwd"
    secret.write_text("root:x:0:0\n")
    (repo / "hosts" / "passwd.yaml").symlink_to(secret)
    (repo / "etc").symlink_to(repo.parent)  # a directory link at an inner component
    fs = RepoFS(repo)
    for rel in ("hosts/passwd.yaml", "etc/passwd", "etc/repo/README.md"):
        with pytest.raises(RepoAccessError) as exc:
            fs.read_text(rel)
        assert "points outside the repository" in _message(exc, rel)
    with pytest.raises(RepoAccessError):
        fs.exists("etc/passwd")


def test_symlink_to_etc_passwd_rejected(repo: Path) -> None:
    (repo / "inventory.yaml").symlink_to("/etc/passwd")
    with pytest.raises(RepoAccessError, match="points outside the repository"):
        RepoFS(repo).read_bytes("inventory.yaml")


def test_symlink_inside_allowed(repo: Path) -> None:
    (repo / "current.yaml").symlink_to("fabric/spine1.yaml")
    (repo / "all-leaves").symlink_to(repo / "fabric" / "leaves")
    (repo / "fabric" / "up").symlink_to("..")
    fs = RepoFS(repo)
    assert fs.read_text("current.yaml") == "asn: 65001\n"
    assert fs.read_text("all-leaves/leaf1.yaml") == "asn: 65101\n"
    assert fs.read_text("fabric/up/hosts/kvm1.yml") == "mtu: 9000\n"
    assert fs.resolve("all-leaves/leaf1.yaml") == (repo / "fabric" / "leaves" / "leaf1.yaml").resolve()


def test_huge_file_rejected_without_reading(repo: Path) -> None:
    with (repo / "huge.yaml").open("wb") as f:
        f.truncate(100 * 1024 * 1024)
    fs = RepoFS(repo)
    for call in (fs.read_bytes, fs.read_text, fs.load_yaml):
        with pytest.raises(RepoAccessError) as exc:
            call("huge.yaml")
        assert _message(exc, "huge.yaml") == f"file too large ({100 * 1024 * 1024} bytes > {5 * 1024 * 1024})"


def test_custom_size_limit(repo: Path) -> None:
    (repo / "ten.txt").write_bytes(b"0123456789")
    assert RepoFS(repo, max_file_bytes=10).read_bytes("ten.txt") == b"0123456789"
    with pytest.raises(RepoAccessError, match=r"file too large \(10 bytes > 9\)"):
        RepoFS(repo, max_file_bytes=9).read_bytes("ten.txt")


def test_fifo_and_directory_rejected(repo: Path) -> None:
    os.mkfifo(repo / "pipe.yaml")
    fs = RepoFS(repo)
    with pytest.raises(RepoAccessError, match="not a regular file"):
        fs.read_bytes("pipe.yaml")
    with pytest.raises(RepoAccessError, match="not a regular file"):
        fs.read_text("fabric")


def test_missing_file_is_an_access_error(repo: Path) -> None:
    with pytest.raises(RepoAccessError, match="cannot open: No such file"):
        RepoFS(repo).read_text("nope.yaml")


def test_glob(repo: Path) -> None:
    (repo / "outside-link").symlink_to(repo.parent)
    (repo / "passwd.yaml").symlink_to("/etc/passwd")
    (repo / "leaves-link").symlink_to("fabric/leaves")
    (repo / "fabric" / "loop").symlink_to("..")
    fs = RepoFS(repo)
    assert fs.glob("**/*.yaml") == [
        "fabric/leaves/leaf1.yaml",
        "fabric/spine1.yaml",
        "leaves-link/leaf1.yaml",
        "passwd.yaml",  # listed so the hostile link is reported, never followed:
    ]
    with pytest.raises(RepoAccessError, match="outside"):
        fs.read_text("passwd.yaml")
    assert fs.glob("fabric/*.yaml") == ["fabric/spine1.yaml"]
    assert fs.glob("hosts/*.y*ml") == ["hosts/kvm1.yml"]
    assert fs.glob("*") == ["README.md", "outside-link", "passwd.yaml"]  # out-of-root links listed, not entered


def test_glob_budget(repo: Path) -> None:
    with pytest.raises(RepoAccessError, match="more than 3 entries"):
        RepoFS(repo).glob("**", max_entries=3)


@pytest.mark.parametrize(
    "pattern, path, expected",
    [
        ("fabric/**", "fabric/a/b.yaml", True),
        ("fabric/**", "fabricx/a.yaml", False),
        ("**/*.yaml", "a.yaml", True),
        ("**/*.yaml", "a/b/c.yaml", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("*.yaml", "dir/a.yaml", False),
        ("release/*", "release/1.0", True),
        ("release/*", "release/1.0/hotfix", False),
        ("v?.[0-9]", "v1.5", True),
        ("v?.[!0-9]", "v1.5", False),
        ("a+b(c)", "a+b(c)", True),
    ],
)
def test_glob_match(pattern: str, path: str, expected: bool) -> None:
    assert glob_match(pattern, path) is expected
