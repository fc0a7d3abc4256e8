"""Secret references from the repo, resolved under the operator's rules (workers.deploy.secrets)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lintas.engine.errors import LintasError
from lintas.engine.settings import DeploySettings, Settings
from lintas.workers.deploy.secrets import MAX_SECRET_BYTES, SecretRefError, SecretResolver


@pytest.fixture(autouse=True)
def _no_operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LINTAS_DEPLOY__"):
            monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(home=tmp_path / "home")
    s.secrets_dir.mkdir(parents=True)
    return s


def test_error_is_a_lintas_error() -> None:
    assert issubclass(SecretRefError, LintasError)


# -- env: ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["FABRIC_BGP_PASSWORD", "LINTAS_SECRET_X", "LINTAS_SSH_PASSWORD"])
def test_env_with_an_allowed_prefix(settings: Settings, name: str) -> None:
    resolver = SecretResolver(settings, environ={name: "s3cr3t-value"})
    assert resolver(f"env:{name}") == "s3cr3t-value"


@pytest.mark.parametrize(
    "name", ["HOME", "AWS_SECRET_ACCESS_KEY", "LINTAS_NATS_PASSWORD", "fabric_bgp_password", "XFABRIC_BGP"]
)
def test_env_without_an_allowed_prefix_is_refused(settings: Settings, name: str) -> None:
    resolver = SecretResolver(settings, environ={name: "worker-secret"})
    with pytest.raises(SecretRefError) as exc:
        resolver(f"env:{name}")
    assert "LINTAS_DEPLOY__SECRET_ENV_PREFIXES" in str(exc.value)
    assert "worker-secret" not in str(exc.value)


def test_env_prefixes_come_from_settings(tmp_path: Path) -> None:
    s = Settings(home=tmp_path / "home", deploy=DeploySettings(secret_env_prefixes=["DC1_"]))
    resolver = SecretResolver(s, environ={"DC1_BGP": "one", "FABRIC_BGP": "two"})
    assert resolver("env:DC1_BGP") == "one"
    with pytest.raises(SecretRefError, match="DC1_"):
        resolver("env:FABRIC_BGP")


def test_no_env_prefix_allowed_refuses_every_env_reference(tmp_path: Path) -> None:
    s = Settings(home=tmp_path / "home", deploy=DeploySettings(secret_env_prefixes=[]))
    resolver = SecretResolver(s, environ={"FABRIC_BGP": "two"})
    with pytest.raises(SecretRefError, match=r"\(none allowed\)"):
        resolver("env:FABRIC_BGP")


def test_missing_env_var(settings: Settings) -> None:
    resolver = SecretResolver(settings, environ={})
    with pytest.raises(SecretRefError, match="FABRIC_BGP_PASSWORD is not set"):
        resolver("env:FABRIC_BGP_PASSWORD")


def test_environ_argument_is_used_instead_of_the_process_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FABRIC_ONLY_IN_PROCESS", "process-value")
    with pytest.raises(SecretRefError, match="not set"):
        SecretResolver(settings, environ={})("env:FABRIC_ONLY_IN_PROCESS")
    assert SecretResolver(settings)("env:FABRIC_ONLY_IN_PROCESS") == "process-value"


@pytest.mark.parametrize("ref", ["env:", "env:FABRIC-BGP", "env:FABRIC BGP", "env:1FABRIC", "env:FABRIC_$(id)"])
def test_env_name_must_be_an_environment_variable_name(settings: Settings, ref: str) -> None:
    resolver = SecretResolver(settings, environ={"FABRIC-BGP": "x", "FABRIC BGP": "y"})
    with pytest.raises(SecretRefError, match="not an environment variable name"):
        resolver(ref)


@pytest.mark.parametrize("ref", ["vault:secret/bgp", "FABRIC_BGP_PASSWORD", "", "Env:FABRIC_BGP", "s3cr3t"])
def test_unknown_reference_kind(settings: Settings, ref: str) -> None:
    with pytest.raises(SecretRefError, match="expected env:NAME or file:/path"):
        SecretResolver(settings, environ={"FABRIC_BGP": "x"})(ref)


# -- file: ---------------------------------------------------------------------------------------


def test_file_inside_the_secrets_dir(settings: Settings) -> None:
    f = settings.secrets_dir / "bgp"
    f.write_text("file-secret\n")
    assert SecretResolver(settings, environ={})(f"file:{f}") == "file-secret"


def test_file_in_a_subdirectory_of_the_secrets_dir_keeps_inner_newlines(settings: Settings) -> None:
    (settings.secrets_dir / "ssh").mkdir()
    f = settings.secrets_dir / "ssh" / "key"
    f.write_text("line one\nline two\r\n\n")
    assert SecretResolver(settings, environ={})(f"file:{f}") == "line one\nline two"


def test_file_in_an_extra_secret_dir(tmp_path: Path) -> None:
    extra = tmp_path / "etc-lintas"
    extra.mkdir()
    (extra / "bgp").write_text("extra-secret")
    s = Settings(home=tmp_path / "home", deploy=DeploySettings(secret_dirs=[extra]))
    assert SecretResolver(s, environ={})(f"file:{extra / 'bgp'}") == "extra-secret"


def test_file_outside_is_refused(settings: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("not-for-the-repo")
    with pytest.raises(SecretRefError) as exc:
        SecretResolver(settings, environ={})(f"file:{outside}")
    assert "LINTAS_DEPLOY__SECRET_DIRS" in str(exc.value)
    assert str(settings.secrets_dir) in str(exc.value)
    assert "not-for-the-repo" not in str(exc.value)


def test_file_in_a_sibling_directory_sharing_the_prefix_is_refused(settings: Settings) -> None:
    sibling = settings.home / "secrets-evil"
    sibling.mkdir()
    (sibling / "x").write_text("evil")
    with pytest.raises(SecretRefError, match="files are read only under"):
        SecretResolver(settings, environ={})(f"file:{sibling / 'x'}")


def test_well_known_worker_files_are_refused(settings: Settings) -> None:
    with pytest.raises(SecretRefError, match="files are read only under"):
        SecretResolver(settings, environ={})("file:/etc/passwd")


def test_dotdot_traversal_out_of_the_secrets_dir_is_refused(settings: Settings) -> None:
    (settings.home / "nats.key").write_text("worker-only")
    ref = f"file:{settings.secrets_dir}/../nats.key"
    with pytest.raises(SecretRefError, match="files are read only under"):
        SecretResolver(settings, environ={})(ref)


def test_dotdot_staying_inside_is_fine(settings: Settings) -> None:
    (settings.secrets_dir / "sub").mkdir()
    (settings.secrets_dir / "bgp").write_text("inside")
    assert SecretResolver(settings, environ={})(f"file:{settings.secrets_dir}/sub/../bgp") == "inside"


def test_symlink_escaping_the_secrets_dir_is_refused(settings: Settings, tmp_path: Path) -> None:
    target = tmp_path / "id_rsa"
    target.write_text("PRIVATE KEY OF THE WORKER")
    link = settings.secrets_dir / "bgp"
    link.symlink_to(target)
    with pytest.raises(SecretRefError, match="files are read only under"):
        SecretResolver(settings, environ={})(f"file:{link}")


def test_symlinked_directory_escaping_the_secrets_dir_is_refused(settings: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "outside-dir"
    outside.mkdir()
    (outside / "key").write_text("outside")
    (settings.secrets_dir / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SecretRefError, match="files are read only under"):
        SecretResolver(settings, environ={})(f"file:{settings.secrets_dir / 'linked' / 'key'}")


def test_symlink_staying_inside_the_secrets_dir_is_fine(settings: Settings) -> None:
    (settings.secrets_dir / "real").write_text("inside")
    (settings.secrets_dir / "alias").symlink_to(settings.secrets_dir / "real")
    assert SecretResolver(settings, environ={})(f"file:{settings.secrets_dir / 'alias'}") == "inside"


@pytest.mark.parametrize("path", ["secrets/bgp", "bgp", "./bgp", "~/secrets/bgp"])
def test_relative_path_is_refused(settings: Settings, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (settings.secrets_dir / "bgp").write_text("x")
    monkeypatch.chdir(settings.home)  # even where the relative path would land inside the secrets dir
    with pytest.raises(SecretRefError, match="must be absolute"):
        SecretResolver(settings, environ={})(f"file:{path}")


def test_file_of_exactly_the_limit_is_read(settings: Settings) -> None:
    f = settings.secrets_dir / "big"
    f.write_bytes(b"a" * MAX_SECRET_BYTES)
    assert len(SecretResolver(settings, environ={})(f"file:{f}")) == MAX_SECRET_BYTES


def test_oversize_file_is_refused(settings: Settings) -> None:
    assert MAX_SECRET_BYTES == 64 * 1024
    f = settings.secrets_dir / "huge"
    f.write_bytes(b"a" * (MAX_SECRET_BYTES + 1))
    with pytest.raises(SecretRefError, match=f"larger than {MAX_SECRET_BYTES} bytes"):
        SecretResolver(settings, environ={})(f"file:{f}")


def test_missing_file(settings: Settings) -> None:
    with pytest.raises(SecretRefError, match="cannot read the file"):
        SecretResolver(settings, environ={})(f"file:{settings.secrets_dir / 'nope'}")


def test_directory_is_not_a_secret(settings: Settings) -> None:
    with pytest.raises(SecretRefError, match="cannot read the file"):
        SecretResolver(settings, environ={})(f"file:{settings.secrets_dir}")


def test_non_utf8_file_is_a_secret_ref_error(settings: Settings) -> None:
    # a reference that does not resolve must raise the subsystem's error (it carries the disposition),
    # not a bare UnicodeDecodeError whose message quotes a byte of the file
    f = settings.secrets_dir / "binary"
    f.write_bytes(b"\xff\xfe\x00secret")
    with pytest.raises(SecretRefError):
        SecretResolver(settings, environ={})(f"file:{f}")


# -- mask ----------------------------------------------------------------------------------------


def test_mask_removes_every_resolved_value(settings: Settings) -> None:
    (settings.secrets_dir / "key").write_text("file-secret-0042\n")
    resolver = SecretResolver(settings, environ={"FABRIC_BGP": "Bgp-Pa55", "LINTAS_SSH_PASSWORD": "ssh-pw-9876"})
    resolver("env:FABRIC_BGP")
    resolver("env:LINTAS_SSH_PASSWORD")
    resolver(f"file:{settings.secrets_dir / 'key'}")
    text = "neighbor UNDERLAY Bgp-Pa55 / login ssh-pw-9876 / key file-secret-0042 / again Bgp-Pa55 end"
    masked = resolver.mask(text)
    for value in ("Bgp-Pa55", "ssh-pw-9876", "file-secret-0042"):
        assert value not in masked
    assert masked.startswith("neighbor UNDERLAY ") and masked.endswith(" end")
    assert masked.count("****") == 4


def test_mask_leaves_text_alone_before_anything_is_resolved(settings: Settings) -> None:
    resolver = SecretResolver(settings, environ={"FABRIC_BGP": "Bgp-Pa55"})
    assert resolver.mask("neighbor UNDERLAY Bgp-Pa55") == "neighbor UNDERLAY Bgp-Pa55"


def test_mask_is_per_resolver(settings: Settings) -> None:
    env = {"FABRIC_BGP": "Bgp-Pa55"}
    a, b = SecretResolver(settings, environ=env), SecretResolver(settings, environ=env)
    a("env:FABRIC_BGP")
    assert "Bgp-Pa55" not in a.mask("x Bgp-Pa55")
    assert b.mask("x Bgp-Pa55") == "x Bgp-Pa55"


def test_refused_references_are_not_remembered(settings: Settings) -> None:
    resolver = SecretResolver(settings, environ={"HOME_SECRET": "zz-top-secret"})
    with pytest.raises(SecretRefError):
        resolver("env:HOME_SECRET")
    assert resolver.mask("zz-top-secret") == "zz-top-secret"


def test_mask_of_a_multiline_file_secret(settings: Settings) -> None:
    key = "-----FAKE KEY-----\nAAAABBBBCCCC\n-----END FAKE-----"
    (settings.secrets_dir / "key").write_text(key + "\n")
    resolver = SecretResolver(settings, environ={})
    resolver(f"file:{settings.secrets_dir / 'key'}")
    assert resolver.mask(f"loaded {key} ok") == "loaded **** ok"


def test_only_trailing_newlines_are_stripped_from_a_file_secret(settings: Settings) -> None:
    f = settings.secrets_dir / "spaced"
    f.write_text("  pass phrase with spaces \t\r\n")
    assert SecretResolver(settings, environ={})(f"file:{f}") == "  pass phrase with spaces \t"
