"""The candidate bundle: formats accepted, strict parsing, secrets resolved in memory and masked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lintas.workers.drivers.frr.candidate import load_candidate, mask_secrets, read_bundle
from lintas.workers.drivers.frr.errors import FrrCandidateError, FrrMergeError
from lintas.workers.drivers.frr.secret_tokens import SECRET_TOKEN_RE

SECRET = "S3cr3t-value-xyz"


def lookup(ref: str) -> str:
    assert ref == "env:FABRIC_BGP_PASSWORD"
    return SECRET


def test_dict_json_text_file_and_directory_give_the_same_candidate(
    rendered: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    bundle = rendered["leaf-01"]
    (tmp_path / "leaf-01").mkdir()
    for name, text in bundle.items():
        (tmp_path / "leaf-01" / name).write_text(text)
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    loaded = [
        load_candidate(read_bundle(None, bundle), lookup, merge=False),
        load_candidate(read_bundle(None, json.dumps(bundle)), lookup, merge=False),
        load_candidate(read_bundle(str(tmp_path / "bundle.json"), None), lookup, merge=False),
        load_candidate(read_bundle(str(tmp_path / "leaf-01"), None), lookup, merge=False),
        load_candidate(
            read_bundle(None, {**bundle, "linux.json": json.loads(bundle["linux.json"])}), lookup, merge=False
        ),
    ]
    assert len({c.digest for c in loaded}) == 1
    cand = loaded[0]
    assert cand.frr_conf is not None and SECRET in cand.frr_conf and not SECRET_TOKEN_RE.search(cand.frr_conf)
    assert cand.spec is not None and cand.spec.hostname == "leaf-01"
    assert cand.secrets == {SECRET}
    assert SECRET not in repr(cand) and SECRET not in cand.masked_text()
    assert "neighbor UNDERLAY password ****" in cand.masked_text()


def test_bad_bundles_are_refused(rendered: dict[str, dict[str, str]]) -> None:
    bundle = rendered["leaf-01"]
    with pytest.raises(FrrCandidateError, match="both"):
        load_candidate({"frr.conf": bundle["frr.conf"]}, lookup, merge=False)
    with pytest.raises(FrrCandidateError, match="unknown candidate parts"):
        load_candidate({**bundle, "running-config": "x"}, lookup, merge=False)
    with pytest.raises(FrrCandidateError, match="not a valid Linux spec"):
        load_candidate(
            {**bundle, "linux.json": bundle["linux.json"].replace('"mtu": 9216', '"mtu": 9')}, lookup, merge=False
        )
    with pytest.raises(FrrCandidateError, match="JSON bundle"):
        read_bundle(None, "frr defaults datacenter\n")
    with pytest.raises(FrrMergeError, match="at least one"):
        load_candidate({}, lookup, merge=True)
    merge = load_candidate({"frr.conf": "ip prefix-list X seq 5 permit 198.51.100.0/24\n"}, lookup, merge=True)
    assert merge.spec is None and merge.merge


def test_secret_errors_name_the_reference_never_the_value(
    rendered: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lintas.workers.drivers.frr.candidate import env_lookup

    monkeypatch.delenv("FABRIC_BGP_PASSWORD", raising=False)
    with pytest.raises(FrrCandidateError, match="FABRIC_BGP_PASSWORD is not set"):
        load_candidate(rendered["leaf-01"], env_lookup, merge=False)
    monkeypatch.setenv("FABRIC_BGP_PASSWORD", "two words")
    with pytest.raises(FrrCandidateError) as err:
        load_candidate(rendered["leaf-01"], env_lookup, merge=False)
    assert "two words" not in str(err.value) and "env:FABRIC_BGP_PASSWORD" in str(err.value)

    def broken(ref: str) -> str:
        raise RuntimeError(f"vault said {SECRET}")

    with pytest.raises(FrrCandidateError) as err:
        load_candidate(rendered["leaf-01"], broken, merge=False)
    assert SECRET not in str(err.value)


def test_masking_covers_resolved_values_and_frr_secret_arguments() -> None:
    text = f"neighbor X password {SECRET}\nno neighbor Y password old-one\nip ospf message-digest-key 1 md5 k3y\n"
    masked = mask_secrets(text, {SECRET})
    assert SECRET not in masked and "old-one" not in masked and "k3y" not in masked
    assert masked.count("****") == 3
