"""Network rendering: goldens, structure on both BGP ends, secrets, overrides, hostile templates.

Regenerate the goldens after an intended change with::

    LINTAS_UPDATE_GOLDEN=1 python -m pytest tests/render/test_network.py -q -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from lintas.engine.errors import StageError
from lintas.workers.drivers.frr.linux_schema import load_linux_spec
from lintas.workers.drivers.frr.secret_tokens import SECRET_TOKEN_RE, resolve_secrets
from lintas.workers.model import InfraModel, load_model
from lintas.workers.model.generate import generate_fabric
from lintas.workers.render.env import Renderer, RenderError
from lintas.workers.render.network import render_device

from . import GOLDEN, TEMPLATE, as_eos, model_of, template_texts

KNOWN_SECRET = "Kn0wn-Fabric-Secret-Value"
TOKEN = "{{secret:env:FABRIC_BGP_PASSWORD}}"


def render_all(model: InfraModel, renderer: Renderer | None = None) -> dict[str, dict[str, str]]:
    renderer = renderer or Renderer(None)
    return {name: render_device(model, name, renderer) for name in sorted(model.devices)}


@pytest.fixture(scope="module")
def frr() -> dict[str, dict[str, str]]:
    return render_all(load_model(TEMPLATE), Renderer(TEMPLATE))


@pytest.fixture(scope="module")
def eos() -> dict[str, dict[str, str]]:
    return render_all(model_of(as_eos(template_texts())))


# -- goldens -------------------------------------------------------------------------------


def test_goldens(frr: dict[str, dict[str, str]], eos: dict[str, dict[str, str]]) -> None:
    rendered = {(dev, art): text for out in (frr, eos) for dev, arts in out.items() for art, text in arts.items()}
    if os.environ.get("LINTAS_UPDATE_GOLDEN") == "1":
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for (dev, art), text in rendered.items():
            (GOLDEN / dev).mkdir(parents=True, exist_ok=True)
            (GOLDEN / dev / art).write_text(text)
    on_disk = {(p.parent.name, p.name) for p in GOLDEN.glob("*/*")}
    assert on_disk == set(rendered), "golden files and rendered artifacts differ in names (LINTAS_UPDATE_GOLDEN=1)"
    for (dev, art), text in sorted(rendered.items()):
        assert (GOLDEN / dev / art).read_text() == text, f"{dev}/{art} differs from its golden file"


def test_deterministic_and_newline_terminated(frr: dict[str, dict[str, str]]) -> None:
    again = render_all(load_model(TEMPLATE), Renderer(TEMPLATE))
    assert again == frr
    for arts in frr.values():
        assert set(arts) == {"frr.conf", "linux.json"}
        for text in arts.values():
            assert text.endswith("\n") and not text.endswith("\n\n")


# -- structure, independent of the goldens -------------------------------------------------


def _leaf_asn(name: str) -> int:
    """fabric.yaml: leaf ASN = 65100 + id; devices.yaml: leaf-0N has id 10 + N."""
    return 65110 + int(name.split("-")[1])


def _vnis_of(leaf: str) -> dict[int, int]:
    """VNI -> VLAN carried by ``leaf``, read from tenants.yaml directly."""
    tenants = (TEMPLATE / "fabric" / "tenants.yaml").read_text()
    out = {}
    for block in tenants.split("\n  - name: ")[1:]:
        if "vni:" in block and "l3_vni" not in block:
            leaves = re.search(r"leaves: (.*)", block).group(1)  # type: ignore[union-attr]
            if leaves == "all" or leaf in leaves:
                out[int(re.search(r"vni: (\d+)", block).group(1))] = int(re.search(r"vlan: (\d+)", block).group(1))  # type: ignore[union-attr]
    return out


LEAVES = ["leaf-01", "leaf-02", "leaf-03", "leaf-04"]


@pytest.mark.parametrize("leaf", LEAVES)
def test_one_vxlan_mapping_per_vni(leaf: str, frr: dict[str, dict[str, str]], eos: dict[str, dict[str, str]]) -> None:
    expected = _vnis_of(leaf)
    assert expected, "the template repo changed: no VNI found for this leaf"
    spec = load_linux_spec(frr[leaf]["linux.json"])
    l2 = [(x.vni, x.vlan) for x in spec.vxlans if x.kind == "l2"]
    assert sorted(l2) == sorted(expected.items())
    assert all(x.local_ip == "10.250.1." + str(10 + int(leaf[-1])) and x.dstport == 4789 for x in spec.vxlans)
    assert not any(x.learning for x in spec.vxlans)
    conf = frr[leaf]["frr.conf"]
    assert sorted(int(v) for v in re.findall(r"^  vni (\d+)$", conf, re.M)) == sorted(expected)
    assert re.findall(r"^vrf UAT\n vni (\d+)$", conf, re.M) == ["50001"]
    maps = re.findall(r"^   vxlan vlan (\d+) vni (\d+)$", eos[leaf]["running-config"], re.M)
    assert sorted((int(n), int(v)) for v, n in maps) == sorted(expected.items())


def _neighbors(conf: str) -> dict[str, int]:
    return {ip: int(asn) for ip, asn in re.findall(r"^ +neighbor (\S+) remote-as (\d+)$", conf, re.M)}


def test_bgp_sessions_agree_on_both_ends(frr: dict[str, dict[str, str]]) -> None:
    asn_of = {name: int(re.search(r"^router bgp (\d+)$", a["frr.conf"], re.M).group(1)) for name, a in frr.items()}  # type: ignore[union-attr]
    assert asn_of == {"spine-01": 65000, "spine-02": 65000} | {leaf: _leaf_asn(leaf) for leaf in LEAVES}
    addr_of: dict[str, str] = {}
    for name, arts in frr.items():
        for port in load_linux_spec(arts["linux.json"]).ports:
            for a in port.addresses:
                addr_of[a.split("/")[0]] = name
    sessions = 0
    for name, arts in frr.items():
        for ip, asn in _neighbors(arts["frr.conf"]).items():
            peer = addr_of[ip]
            assert asn == asn_of[peer], f"{name} expects AS {asn} at {ip}, {peer} runs {asn_of[peer]}"
            back = _neighbors(frr[peer]["frr.conf"])
            assert asn_of[name] in back.values() and any(addr_of[i] == name for i in back), f"{peer} lacks {name}"
            sessions += 1
    assert sessions == 2 * 8  # 8 links, a session seen from each end


def test_eos_overlay_sessions_on_loopbacks(eos: dict[str, dict[str, str]]) -> None:
    leaf = eos["leaf-01"]["running-config"]
    assert "neighbor 10.250.0.1 peer group EVPN-OVERLAY-PEERS\n   neighbor 10.250.0.1 remote-as 65000" in leaf
    spine = eos["spine-01"]["running-config"]
    assert "neighbor 10.250.0.11 peer group EVPN-OVERLAY-PEERS\n   neighbor 10.250.0.11 remote-as 65111" in spine
    assert "neighbor EVPN-OVERLAY-PEERS next-hop-unchanged" in spine and "next-hop-unchanged" not in leaf
    assert "vxlan vrf UAT vni 50001" in leaf and "ip virtual-router mac-address 00:1c:73:00:00:99" in leaf


def test_mtu_9216_on_fabric_ports(frr: dict[str, dict[str, str]], eos: dict[str, dict[str, str]]) -> None:
    for arts in frr.values():
        fabric = [p for p in load_linux_spec(arts["linux.json"]).ports if p.kind == "fabric"]
        assert fabric and all(p.mtu == 9216 and p.addresses[0].endswith("/31") for p in fabric)
    for arts in eos.values():
        blocks = re.findall(r"^interface Ethernet\d+\n((?:   .*\n)+)", arts["running-config"], re.M)
        routed = [b for b in blocks if "no switchport" in b]
        assert routed and all("   mtu 9216\n" in b and "/31" in b for b in routed)


def test_underlay_filter_allows_only_loopbacks_and_vteps(frr: dict[str, dict[str, str]]) -> None:
    for arts in frr.values():
        conf = arts["frr.conf"]
        assert re.findall(r"^ip prefix-list PL-LOOPBACKS-EVPN-OVERLAY seq \d+ permit (\S+) ge 32$", conf, re.M) == [
            "10.250.0.0/24",
            "10.250.1.0/24",
        ]
        assert "neighbor UNDERLAY route-map RM-UNDERLAY-IN in" in conf
        assert "neighbor UNDERLAY route-map RM-UNDERLAY-OUT out" in conf
        assert "redistribute connected\n" not in conf.split("router bgp")[1].split("exit\n")[0]


def test_spines_carry_no_tenant_state(frr: dict[str, dict[str, str]]) -> None:
    for spine in ("spine-01", "spine-02"):
        conf, spec = frr[spine]["frr.conf"], load_linux_spec(frr[spine]["linux.json"])
        assert "vrf " not in conf and "advertise-all-vni" not in conf
        # FRR 8.4 rewrites the EVPN next hop on eBGP unless told not to (measured in a netns lab);
        # the route-map form shows in running-config, unlike "attribute-unchanged next-hop"
        assert "  neighbor UNDERLAY route-map RM-EVPN-NH-UNCHANGED out\n" in conf
        assert "route-map RM-EVPN-NH-UNCHANGED permit 10\n set ip next-hop unchanged\n" in conf
        assert spec.bridge is None and not spec.vxlans and not spec.svis and not spec.vrfs


def test_svis_use_anycast_gateway_and_l3_vni_keeps_router_mac(frr: dict[str, dict[str, str]]) -> None:
    spec = load_linux_spec(frr["leaf-01"]["linux.json"])
    l2 = {s.vlan: s for s in spec.svis if s.kind == "l2"}
    assert l2[10].addresses == ["10.30.10.1/24"] and l2[10].vrf == "UAT" and l2[10].mac == "00:1c:73:00:00:99"
    l3 = {s.vlan: s for s in spec.svis if s.kind == "l3"}
    assert set(l3) == {3900, 3901} and all(s.mac is None and not s.addresses for s in l3.values())
    assert {v.name: v.table for v in spec.vrfs} == {"INFRA": 51000, "UAT": 51001}
    host = [p for p in spec.ports if p.kind == "host"]
    assert [(p.name, p.bridge.pvid, p.bridge.vlans) for p in host if p.bridge] == [("swp1", 200, [10, 20])]
    assert "advertise-svi-ip" not in frr["leaf-01"]["frr.conf"]


def test_linux_spec_is_strict_and_canonical(frr: dict[str, dict[str, str]]) -> None:
    text = frr["leaf-01"]["linux.json"]
    data = json.loads(text)
    assert json.dumps(data, indent=2, sort_keys=True) + "\n" == text
    data["ports"][0]["speed"] = 100000
    with pytest.raises(ValueError, match="speed"):
        load_linux_spec(json.dumps(data))
    data = json.loads(text)
    data["svis"][0]["vrf"] = "NOPE"
    with pytest.raises(ValueError, match="NOPE"):
        load_linux_spec(json.dumps(data))


def test_mixed_fabric_overlay_matches_on_both_ends() -> None:
    model = model_of(as_eos(template_texts(), {"leaf-01"}))
    out = render_all(model)
    assert set(out["leaf-01"]) == {"running-config"}
    spine = out["spine-01"]["frr.conf"]
    assert "neighbor 10.250.0.11 remote-as 65111\n neighbor 10.250.0.11 peer-group OVERLAY" in spine
    assert "  neighbor OVERLAY activate\n  neighbor OVERLAY route-map RM-EVPN-NH-UNCHANGED out" in spine
    assert "  neighbor UNDERLAY activate\n  neighbor UNDERLAY route-map RM-EVPN-NH-UNCHANGED out" in spine
    assert "peer-group OVERLAY" not in out["leaf-02"]["frr.conf"]
    # route-targets are fabric-wide, so an FRR leaf and an EOS leaf import each other's routes
    assert "route-target both 65000:10010" in out["leaf-01"]["running-config"]
    assert "route-target import 65000:10010" in out["leaf-02"]["frr.conf"]


# -- secrets -------------------------------------------------------------------------------


def test_secret_never_rendered_and_resolved_at_push(
    monkeypatch: pytest.MonkeyPatch, frr: dict[str, dict[str, str]]
) -> None:
    monkeypatch.setenv("FABRIC_BGP_PASSWORD", KNOWN_SECRET)
    outputs = [render_all(load_model(TEMPLATE), Renderer(TEMPLATE)), render_all(model_of(as_eos(template_texts())))]
    texts = [t for out in outputs for arts in out.values() for t in arts.values()]
    assert all(KNOWN_SECRET not in t for t in texts)
    for out in outputs:
        for name, arts in out.items():
            conf = arts.get("frr.conf") or arts["running-config"]
            assert TOKEN in conf, name
            pushed = resolve_secrets(conf, lambda ref: os.environ[ref.removeprefix("env:")])
            assert KNOWN_SECRET in pushed and not SECRET_TOKEN_RE.search(pushed) and "{{secret:" not in pushed
            assert pushed.count(KNOWN_SECRET) == conf.count(TOKEN)


def test_resolve_secrets_refuses_unsafe_values_and_bad_tokens() -> None:
    text = f"neighbor UNDERLAY password {TOKEN}\n"
    with pytest.raises(StageError, match="FABRIC_BGP_PASSWORD") as exc:
        resolve_secrets(text, lambda ref: "x\nrouter bgp 1")
    assert "router bgp 1" not in str(exc.value)
    with pytest.raises(StageError):
        resolve_secrets(text, lambda ref: "")
    with pytest.raises(StageError, match="malformed"):
        resolve_secrets("password {{secret:env:BAD NAME}}\n", lambda ref: "v")
    calls: list[str] = []
    out = resolve_secrets(text + text, lambda ref: calls.append(ref) or "{{secret:env:OTHER}}")
    assert calls == ["env:FABRIC_BGP_PASSWORD"] and out.count("{{secret:env:OTHER}}") == 2  # one pass only


def test_free_text_cannot_inject_config_lines() -> None:
    texts = template_texts()
    texts["fabric/tenants.yaml"] = texts["fabric/tenants.yaml"].replace(
        "    leaves: [leaf-01, leaf-02]\n", '    leaves: [leaf-01, leaf-02]\n    description: "x\\nrouter bgp 666"\n'
    )
    out = render_all(model_of(as_eos(texts)))
    assert "x router bgp 666" in out["leaf-01"]["running-config"]
    assert not re.search(r"^router bgp 666", out["leaf-01"]["running-config"], re.M)


def test_unsafe_port_name_is_a_render_error() -> None:
    texts = template_texts()
    texts["fabric/devices.yaml"] = texts["fabric/devices.yaml"].replace(
        "ports: [swp1-48, swp51-52]\n    description: rack A01",
        "ports: [swp1-48, swp51-52, 'swp9 x']\n    description: rack A01",
    )
    texts["hosts/hosts.yaml"] = texts["hosts/hosts.yaml"].replace(
        "leaf: leaf-01\n      port: swp1\n", "leaf: leaf-01\n      port: 'swp9 x'\n"
    )
    with pytest.raises(RenderError, match="swp9 x") as exc:
        render_device(model_of(texts), "leaf-01", Renderer(None))
    assert exc.value.diagnostics[0].path == "leaf-01"


# -- repo templates: override, errors, sandbox ---------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "infra"
    shutil.copytree(TEMPLATE, root)
    return root


def _override(repo: Path, text: str, name: str = "frr/frr.conf.j2") -> Renderer:
    path = repo / "templates" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return Renderer(repo)


def test_repo_template_overrides_builtin(repo: Path, frr: dict[str, dict[str, str]]) -> None:
    renderer = _override(repo, "hostname {{ hostname }}\n! site override, AS {{ asn }}\n")
    out = render_device(load_model(repo), "leaf-02", renderer)
    assert out["frr.conf"] == "hostname leaf-02\n! site override, AS 65112\n"
    assert out["linux.json"] == frr["leaf-02"]["linux.json"]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("hostname {{ hostname }}\n!\n{{ no_such_variable }}\n", 3, "no_such_variable"),
        ("hostname {{ hostname }}\n{% for x in %}\n", 2, "syntax"),
        ("!\n{{ ''.__class__.__mro__[1].__subclasses__() }}\n", 2, "unsafe"),
        ("!\n!\n{{ cycler.__init__.__globals__ }}\n", 3, "unsafe"),
        ("{{ lipsum.__globals__['os'] }}\n", 1, "'lipsum' is undefined"),  # no randomness: lipsum is gone
        ("{% set x = namespace() %}{{ x.__class__.__init__ }}\n", 1, "unsafe"),
    ],
)
def test_template_errors_name_template_line_and_device(repo: Path, text: str, line: int, message: str) -> None:
    renderer = _override(repo, text)
    with pytest.raises(RenderError) as exc:
        render_device(load_model(repo), "spine-02", renderer)
    (diag,) = exc.value.diagnostics
    assert "frr/frr.conf.j2" in diag.file and diag.line == line and diag.path == "spine-02"
    assert message in diag.message


def test_sandbox_escape_renders_nothing(repo: Path) -> None:
    marker = repo / "pwned"
    renderer = _override(repo, "{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}\n")
    with pytest.raises(RenderError, match="unsafe"):
        render_device(load_model(repo), "leaf-01", renderer)
    assert not marker.exists()


# -- scale ---------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["frr", "eos"])
def test_renders_generated_1000_leaf_fabric(platform: str) -> None:
    files = generate_fabric(1000, vnis_per_leaf=20, n_hosts=200)
    if platform == "eos":
        files["fabric/devices.yaml"] = files["fabric/devices.yaml"].replace("platform: frr", "platform: eos")
    model = model_of(files)
    renderer = Renderer(None)
    start = time.perf_counter()
    out = render_all(model, renderer)
    elapsed = time.perf_counter() - start
    assert len(out) == 1002
    leaf = out["leaf-0500"]
    conf = leaf.get("frr.conf") or leaf["running-config"]
    assert conf.count("vni 1") >= 20
    print(f"\n{platform}: {len(out)} devices in {elapsed:.2f} s, {1000 * elapsed / len(out):.2f} ms per device")
