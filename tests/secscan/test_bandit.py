"""bandit over the repo's Python: thresholds, nosec, unparsable files, and no code ever runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from lintas.workers.secscan.findings import SecscanOptions
from lintas.workers.secscan.scan import scan_repo

SHELL = 'import subprocess\n\n\ndef run(host):\n    subprocess.call("ping -c1 " + host, shell=True)\n'
IMPORT_ONLY = "import subprocess\n\nsubprocess.run(['true'], check=True)\n"


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def blocking(root: Path, **opts: object) -> list[tuple[str, str, int]]:
    scan = scan_repo(root, SecscanOptions.model_validate(opts))
    return sorted((f.rule, f.file, f.line) for f in scan.blocking)


def test_shell_true_blocks_and_low_findings_do_not(tmp_path: Path) -> None:
    root = write(tmp_path, {"scripts/ping.py": SHELL, "scripts/ok.py": IMPORT_ONLY})
    scan = scan_repo(root)
    assert scan.python_files == 2
    assert sorted((f.rule, f.file, f.line) for f in scan.blocking) == [("B602", "scripts/ping.py", 5)]
    low = {f.rule for f in scan.findings if not f.blocking}
    assert {"B404", "B603"} <= low  # reported, below the default medium/medium threshold


def test_thresholds_are_configurable(tmp_path: Path) -> None:
    root = write(tmp_path, {"scripts/ping.py": SHELL, "scripts/ok.py": IMPORT_ONLY})
    assert [r for r, _, _ in blocking(root, severity="high", confidence="high")] == ["B602"]
    assert {"B404", "B602", "B603"} <= {r for r, _, _ in blocking(root, severity="low", confidence="low")}


def test_nosec_is_ignored_unless_allowed(tmp_path: Path) -> None:
    root = write(tmp_path, {"scripts/ping.py": SHELL.replace("shell=True)", "shell=True)  # nosec")})
    assert [r for r, _, _ in blocking(root)] == ["B602"]
    assert blocking(root, honor_nosec=True) == []


def test_scripts_without_extension_are_python_too(tmp_path: Path) -> None:
    root = write(tmp_path, {"bin/ping-all": "#!/usr/bin/env python3\n" + SHELL, "bin/notes": "#!/bin/sh\necho hi\n"})
    assert blocking(root) == [("B602", "bin/ping-all", 6)]


def test_unparsable_python_warns_or_fails(tmp_path: Path) -> None:
    root = write(tmp_path, {"legacy/old.py": "print 'python 2'\n"})
    scan = scan_repo(root)
    assert [(f.rule, f.blocking) for f in scan.findings] == [("unparsable", False)]
    assert blocking(root, unparsable="fail") == [("unparsable", "legacy/old.py", 1)]


def test_repo_code_is_never_imported_or_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "ran"
    monkeypatch.setenv("LINTAS_TEST_MARKER", str(marker))
    payload = "import os\nopen(os.environ['LINTAS_TEST_MARKER'], 'w').write('pwned')\n"
    root = write(
        tmp_path / "repo",
        {
            "setup.py": payload,
            "conftest.py": payload,
            "pkg/__init__.py": payload,
            "sitecustomize.py": payload,
            ".bandit": "[bandit]\nskips: B602\n",
            "scripts/ping.py": SHELL,
        },
    )
    assert blocking(root) == [("B602", "scripts/ping.py", 5)]  # the repo's .bandit cannot switch tests off
    assert not marker.exists()


def test_bandit_messages_do_not_repeat_the_password(tmp_path: Path) -> None:
    root = write(tmp_path, {"scripts/db.py": 'def connect():\n    return login(password="hunter22")\n'})
    scan = scan_repo(root, SecscanOptions(severity="low", confidence="low"))
    b106 = [f for f in scan.findings if f.rule == "B106"]
    assert b106 and all("hunter22" not in f.message for f in scan.findings)
