"""Secret detection: what is found, what is not, and that no finding carries the secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from lintas.workers.secscan.files import RepoFile
from lintas.workers.secscan.findings import EntropyOptions
from lintas.workers.secscan.scan import scan_repo
from lintas.workers.secscan.secrets import entropy, scan_file

TEMPLATE = Path(__file__).resolve().parents[2] / "gitops-repo-template"
OPTS = EntropyOptions()
# assembled at run time, so this test file is no secret-scanner bait itself
AWS_ID = "AKIA" + "Q7WXKP2M4RZT6YB3"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYzEXAMPLEKE"  # 40 characters
GITHUB = "ghp_" + "x7Yb2Q9mZk4Lp8Rt1Vw6Nc3Hs5Dj0Fa2Ge4B"
RANDOM_B64 = "Zx8Q2vN7pL4kR9tW1mB6yC3hF5jD0sGaE"


def findings(rel: str, text: str) -> list[tuple[str, int]]:
    out = list(scan_file(RepoFile(rel, text.encode()), OPTS))
    for f in out:
        for secret in (AWS_ID, AWS_SECRET, GITHUB, RANDOM_B64, "hunter22", "Sup3rS3cret", "s3cr3t-c0mm"):
            assert secret not in f.message and secret not in f.fingerprint, f
    return sorted((f.rule, f.line) for f in out)


@pytest.mark.parametrize(
    "rel, text, expected",
    [
        ("notes/README.md", f"the key is {AWS_ID} ok\n", [("aws-access-key-id", 1)]),
        (
            "scripts/x.sh",
            f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET}\n",
            [("aws-secret-access-key", 1), ("secret-assignment", 1)],
        ),
        ("keys/id_rsa", "x\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n", [("private-key", 2)]),
        ("ci.yml", f"token: {GITHUB}\n", [("github-token", 1), ("secret-assignment", 1)]),
        ("doc.txt", "clone https://deploy:hunter22@git.example.invalid/infra.git\n", [("url-credentials", 1)]),
    ],
)
def test_known_secret_formats(rel: str, text: str, expected: list[tuple[str, int]]) -> None:
    assert findings(rel, text) == expected


@pytest.mark.parametrize(
    "rel, text, expected",
    [
        (
            "inventory/extra.yaml",
            "snmp:\n  community: s3cr3t-c0mm\n  password: env:SNMP_PASSWORD\n",
            [("secret-assignment", 2)],
        ),
        ("group_vars/all.yml", "- db_password: 'hunter22'  # rotate me\n", [("secret-assignment", 1)]),
        (
            ".env",
            "DB_PASSWORD=hunter22\nDB_PASSWORD_FILE=/run/secrets/db\nAPI_TOKEN=${API_TOKEN}\n",
            [("secret-assignment", 1)],
        ),
        ("app.ini", "[db]\npassword = hunter22\nsecret = <set me>\ntoken =\n", [("secret-assignment", 2)]),
        (
            "scripts/tool.py",
            'password = "hunter22"\nlogin(user="x", password=os.environ["P"])\n',
            [("secret-assignment", 1)],
        ),
        ("scripts/tool.py", 'ref = "{{secret:" + name + "}}"\nTOKEN_URL = "https://idp.example.invalid/token"\n', []),
        (
            "templates/frr/frr.conf.j2",
            "{% if password %}\n neighbor X password {{ password }}\n neighbor Y password Sup3rS3cret\n"
            "! password commented\n",
            [("config-secret", 3)],
        ),
        ("fabric/fabric.yaml", "  password: env:FABRIC_BGP_PASSWORD   # never the secret itself\n", []),
        (
            "inventory/defaults.yaml",
            "private_key: file:/etc/lintas/ssh/id_ed25519\nstrict_host_key_checking: true\n",
            [],
        ),
    ],
)
def test_assignments_in_configuration_and_code(rel: str, text: str, expected: list[tuple[str, int]]) -> None:
    assert findings(rel, text) == expected


def test_high_entropy_values() -> None:
    assert findings("cfg.yaml", f"signing: {RANDOM_B64}\n") == [("high-entropy-string", 1)]
    assert findings("cfg.yaml", 'uuid: "3f0c6a52-6c6e-4b8e-9a57-0e3f5d1b2a01"\nmac: "fa:16:3e:1a:00:01"\n') == []
    assert findings("cfg.yaml", "description: AVeryLongIdentifierWithoutDigitsAtAll\n") == []
    assert findings("README.md", f"random {RANDOM_B64} in prose\n") == []  # prose is not configuration
    assert entropy("aaaa") == 0 and entropy(RANDOM_B64) > 4.5


def test_the_template_repo_is_clean() -> None:
    scan = scan_repo(TEMPLATE)
    assert scan.findings == [] and scan.files >= 10


def test_hostile_files_are_skipped_not_read(tmp_path: Path) -> None:
    (tmp_path / "passwd.yaml").symlink_to("/etc/passwd")
    with open(tmp_path / "huge.yaml", "wb") as fh:
        fh.truncate(20 * 1024 * 1024)
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01" + AWS_ID.encode())
    scan = scan_repo(tmp_path)
    assert {rel for rel, _ in scan.skipped} == {"passwd.yaml", "huge.yaml", "blob.bin"}
    assert scan.findings == [] and scan.files == 0
