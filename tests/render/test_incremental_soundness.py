"""Incremental rendering is sound: after any sequence of model edits, what the render stage's
path stores (fingerprint selection + reuse of the previous render) is byte-identical to a
full render of the same commit (issue 12).

Edits cover every kind of field of the schema: explicit device overrides (ASN, loopback,
VTEP, router-id), pools, links, tenants and VRFs, the leaves a network is carried on,
hosts (uplinks, tunnels, OVN, new hosts joining the mesh), flavors, instances and their
NICs and states, fabric-wide settings, and repo-local template overrides. Invalid models
are dropped (the commit would fail validation and never render).

CI runs a fixed-seed budget; a longer run on demand:

    LINTAS_SOUNDNESS_EXAMPLES=500 .venv/bin/python -m pytest tests/render/test_incremental_soundness.py
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lintas.engine.artifacts import content_id
from lintas.engine.errors import InputError
from lintas.workers.model import InfraModel, load_model
from lintas.workers.render.env import Renderer
from lintas.workers.render.plan import RenderIndex
from lintas.workers.render.targets import kind_of, render_inputs, render_targets, select_targets

TEMPLATE = Path(__file__).resolve().parents[2] / "gitops-repo-template"
FILES = [
    "fabric/fabric.yaml",
    "fabric/devices.yaml",
    "fabric/links.yaml",
    "fabric/tenants.yaml",
    "hosts/hosts.yaml",
    "hosts/flavors.yaml",
    "hosts/instances.yaml",
]
EXAMPLES = int(os.environ.get("LINTAS_SOUNDNESS_EXAMPLES", "25"))
FRR_TEMPLATE = (TEMPLATE.parent / "workers" / "render" / "templates" / "frr" / "frr.conf.j2").read_text()

Data = dict[str, Any]
Edit = Callable[[Data], None]


def _load() -> Data:
    data: Data = {rel: yaml.safe_load((TEMPLATE / rel).read_text()) for rel in FILES}
    data["templates"] = {}
    return data


BASE = _load()


def _write(root: Path, data: Data) -> None:
    for rel in FILES:
        (root / rel).write_text(yaml.safe_dump(data[rel], sort_keys=False))
    tdir = root / "templates"
    if tdir.exists():
        shutil.rmtree(tdir)
    tdir.mkdir()
    for rel, text in data["templates"].items():
        (tdir / rel).parent.mkdir(parents=True, exist_ok=True)
        (tdir / rel).write_text(text)


def _devices(d: Data) -> list[dict[str, Any]]:
    return d["fabric/devices.yaml"]["devices"]  # type: ignore[no-any-return]


def _leaves(d: Data) -> list[dict[str, Any]]:
    return [x for x in _devices(d) if x["role"] == "leaf"]


def _networks(d: Data) -> list[dict[str, Any]]:
    return d["fabric/tenants.yaml"]["networks"]  # type: ignore[no-any-return]


def _hosts(d: Data) -> list[dict[str, Any]]:
    return d["hosts/hosts.yaml"]["hosts"]  # type: ignore[no-any-return]


def _instances(d: Data) -> list[dict[str, Any]]:
    return d["hosts/instances.yaml"]["instances"]  # type: ignore[no-any-return]


# -- edits: each strategy draws its parameters and returns a function applying them ---------

k = st.integers(min_value=1, max_value=6)


def _device_override(i: Any, field: Any, n: Any) -> Edit:
    def edit(d: Data) -> None:
        dev = _devices(d)[i]
        values = {
            "asn": 64600 + n,
            "loopback": f"10.99.0.{n}" if n % 2 else f"10.250.0.{200 + n}",
            "vtep_ip": f"10.99.1.{n}" if n % 2 else f"10.250.1.{200 + n}",
            "router_id": f"10.98.0.{n}",
            "description": f"edited {n}",
        }
        if field == "drop":
            for f in ("asn", "loopback", "vtep_ip", "router_id"):
                dev.pop(f, None)
        elif field == "vtep_ip" and dev["role"] != "leaf":
            dev["description"] = f"spine {n}"
        else:
            dev[field] = values[field]

    return edit


def _pools(which: Any, alt: Any) -> Edit:
    def edit(d: Data) -> None:
        p = d["fabric/fabric.yaml"]["fabric"]["pools"]
        p[which] = {
            "loopbacks": ("10.251.0.0/24", "10.250.0.0/24"),
            "vteps": ("10.251.1.0/24", "10.250.1.0/24"),
            "leaf_asns": ("65200-65299", "65100-65199"),
            "p2p": ("10.251.16.0/22", "10.250.16.0/22"),
        }[which][alt]

    return edit


def _link(i: Any, field: Any, n: Any) -> Edit:
    def edit(d: Data) -> None:
        ln = d["fabric/links.yaml"]["links"][i]
        if field == "subnet":  # an explicit /31 outside the pool
            ln["subnet"] = f"10.97.0.{2 * n}/31"
        else:
            ln["description"] = f"link {n}"

    return edit


def _tenants(op: Any, n: Any, subset: Any) -> Edit:
    def edit(d: Data) -> None:
        nets, leaves = _networks(d), [x["name"] for x in _leaves(d)]
        vrfs = d["fabric/tenants.yaml"]["vrfs"]
        if op == "add_net":
            nets.append(
                {
                    "name": f"net-{n}",
                    "vrf": vrfs[-1]["name"],
                    "vlan": 300 + n,
                    "vni": 10300 + n,
                    "gateway": f"10.31.{n}.1/24",
                    "mtu": 9000,
                    "leaves": [leaves[j] for j in subset],
                }
            )
        elif op == "drop_net" and len(nets) > 1:
            nets.pop()
        elif op == "leaves":  # a network hosts use stays on their leaves
            net = nets[n % len(nets)]
            needed = {h["uplink"]["leaf"] for h in _hosts(d) if net["name"] in h["uplink"].get("networks", [])}
            net["leaves"] = sorted(needed | {leaves[j] for j in subset})
        elif op == "net_mtu":
            nets[n % len(nets)]["mtu"] = 8900 + n
        elif op == "add_vrf":
            vrfs.append({"name": f"VRF-{n}", "l3_vni": 50100 + n, "l3_vlan": 3950 + n})
            nets.append(
                {
                    "name": f"vnet-{n}",
                    "vrf": f"VRF-{n}",
                    "vlan": 400 + n,
                    "vni": 10400 + n,
                    "gateway": f"10.32.{n}.1/24",
                    "leaves": [leaves[j] for j in subset],
                }
            )
        elif op == "vrf_desc":
            vrfs[n % len(vrfs)]["description"] = f"vrf {n}"
        else:
            nets[n % len(nets)]["vrf"] = vrfs[n % len(vrfs)]["name"]

    return edit


def _hosts_edit(op: Any, i: Any, n: Any) -> Edit:
    def edit(d: Data) -> None:
        hs = _hosts(d)
        h = hs[i % len(hs)]
        if op == "uplink_mtu":
            h["overlay_mtu"] = 8942 - 8 * n  # the uplink itself is pinned by the tunnel network's MTU
        elif op == "csum" and "tunnels" in h:
            h["tunnels"]["csum"] = not h["tunnels"]["csum"]
        elif op == "key" and "tunnels" in h:
            h["tunnels"]["key"] = n
        elif op == "ovn_remote" and "ovn" in h:
            h["ovn"]["remote"] = f"ssl:10.255.0.{n}:6642"
        elif op == "ovn_mapping" and "ovn" in h:
            h["ovn"]["bridge_mappings"] = {f"physnet{n}": h["ovs"]["bridges"][0]}
        elif op == "add_host" and not any(x["name"] == "kvm-new" for x in hs):
            new = copy.deepcopy(hs[0])
            new.update(
                name="kvm-new",
                mgmt_ip="10.255.0.102/24",
                libvirt_uri="qemu+ssh://lintas@10.255.0.102/system",
                description="joins the geneve mesh",
            )
            new["ovs"]["connection"] = "tcp:10.255.0.102:6640"
            new["uplink"].update(leaf="leaf-02", tunnel_ip=f"10.20.0.{40 + n}/24")
            hs.append(new)
        elif op == "tunnel_ip":
            h["uplink"]["tunnel_ip"] = f"10.20.0.{60 + n}/24"
            if "ovn" in h and "encap_ip" in h["ovn"]:
                h["ovn"]["encap_ip"] = f"10.20.0.{60 + n}"
        elif op == "networks":
            h["uplink"]["networks"] = [x["name"] for x in _networks(d)[1 : 1 + n % 3]]
        elif op == "datapath":
            h["ovs"]["datapath_type"] = "system" if h["ovs"].get("datapath_type") == "netdev" else "netdev"
        else:
            h["description"] = f"host {n}"

    return edit


def _flavors(i: Any, field: Any, n: Any) -> Edit:
    def edit(d: Data) -> None:
        f = d["hosts/flavors.yaml"]["flavors"][i]
        f[field] = {"ram_mib": 64 * n, "vcpus": n, "disk_gb": n, "description": f"flavor {n}"}[field]

    return edit


def _instances_edit(op: Any, i: Any, n: Any) -> Edit:
    def edit(d: Data) -> None:
        insts = _instances(d)
        if not insts:
            return
        inst = insts[i % len(insts)]
        if op == "mac":
            inst["nics"][0]["mac"] = f"fa:16:3e:ee:00:{n:02x}"
        elif op == "state":
            inst["state"] = ["running", "stopped", "absent"][n % 3]
        elif op == "flavor":
            inst["flavor"] = d["hosts/flavors.yaml"]["flavors"][n % 3]["name"]
        elif op == "add":
            new = copy.deepcopy(inst)
            new.update(name=f"new-vm-{n}", uuid=f"3f0c6a52-6c6e-4b8e-9a57-0e3f5d1b2b{n:02x}")
            new["nics"] = [{"network": inst["nics"][0]["network"], "mac": f"fa:16:3e:dd:00:{n:02x}"}]
            insts.append(new)
        elif op == "drop":
            insts.pop(i % len(insts))
        elif op == "nic_net":
            inst["nics"][0]["network"] = _networks(d)[1 + n % 2]["name"]
        elif op == "add_nic":
            inst["nics"].append({"network": _networks(d)[1]["name"], "mac": f"fa:16:3e:cc:00:{n:02x}"})
        else:
            inst["host"] = _hosts(d)[n % len(_hosts(d))]["name"]

    return edit


def _fabric_wide(field: Any, n: Any) -> Edit:
    def edit(d: Data) -> None:
        f = d["fabric/fabric.yaml"]["fabric"]
        if field == "mtu":
            f["mtu"] = 9216 - 16 * n
        elif field == "anycast":
            f["overlay"]["anycast_gateway_mac"] = f"00:1c:73:00:00:{n:02x}"
        elif field == "bfd":
            f["underlay"]["bfd"] = not f["underlay"].get("bfd", False)
        elif field == "maximum_paths":
            f["underlay"]["maximum_paths"] = n
        elif field == "name":
            f["name"] = f"dc{n}"
        elif field == "password":
            f["underlay"]["password"] = f"env:FABRIC_BGP_PASSWORD_{n}"
        else:
            f["underlay"]["spine_asn"] = 64900 + n

    return edit


def _template_override(op: Any, n: Any) -> Edit:
    def edit(d: Data) -> None:
        t = d["templates"]
        if op == "frr_cross":  # reads values the built-in does not print: any ctx field may matter
            t["frr/frr.conf.j2"] = (
                FRR_TEMPLATE + "! links {{ links|length }} peers {{ links|map(attribute='peer_asn')|list }}\n"
            )
        elif op == "frr_vtep_list":
            t["frr/frr.conf.j2"] = FRR_TEMPLATE + "! " + str(n) + " {{ prefixes|map(attribute='prefix')|join(',') }}\n"
        elif op == "domain":
            base = (TEMPLATE.parent / "workers/render/templates/libvirt/domain.xml.j2").read_text()
            t["libvirt/domain.xml.j2"] = base.replace("</domain>", f"<!-- {n} {{{{ host.uplink.mtu }}}} -->\n</domain>")
        else:
            t.clear()

    return edit


device_override = st.builds(
    _device_override,
    st.integers(0, 5),
    st.sampled_from(["asn", "loopback", "vtep_ip", "router_id", "description", "drop"]),
    k,
)
pools = st.builds(_pools, st.sampled_from(["loopbacks", "vteps", "leaf_asns", "p2p"]), st.booleans())
link = st.builds(_link, st.integers(0, 7), st.sampled_from(["subnet", "description"]), k)
tenants = st.builds(
    _tenants,
    st.sampled_from(["add_net", "drop_net", "leaves", "net_mtu", "add_vrf", "vrf_desc", "net_vrf"]),
    k,
    st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True),
)
flavors = st.builds(_flavors, st.integers(0, 2), st.sampled_from(["ram_mib", "vcpus", "disk_gb", "description"]), k)
instances = st.builds(
    _instances_edit,
    st.sampled_from(["mac", "state", "flavor", "add", "drop", "nic_net", "add_nic", "host"]),
    st.integers(0, 5),
    k,
)
fabric_wide = st.builds(
    _fabric_wide, st.sampled_from(["mtu", "anycast", "bfd", "maximum_paths", "name", "password", "spine_asn"]), k
)
hosts = st.builds(
    _hosts_edit,
    st.sampled_from(
        [
            "uplink_mtu",
            "csum",
            "key",
            "ovn_remote",
            "ovn_mapping",
            "desc",
            "add_host",
            "tunnel_ip",
            "networks",
            "datapath",
        ]
    ),
    st.integers(0, 1),
    k,
)
template_override = st.builds(_template_override, st.sampled_from(["frr_cross", "frr_vtep_list", "domain", "drop"]), k)

EDIT = st.one_of(device_override, pools, link, tenants, hosts, flavors, instances, fabric_wide, template_override)


# -- the property ------------------------------------------------------------------------------


def _ids(arts: dict[str, str]) -> dict[str, str]:
    return {n: content_id(x.encode()) for n, x in arts.items()}


def _incremental(root: Path, model: InfraModel, previous: RenderIndex | None) -> tuple[RenderIndex, set[str]]:
    """What the render stage stores (workers.render.stage.RenderStage._render and its index)."""
    with Renderer(root) as renderer:
        sel = select_targets(
            model,
            renderer,
            previous=previous.inputs if previous else None,
            reusable=previous.targets if previous else (),
        )
        out = render_inputs({t: sel.inputs[t] for t in sel.render}, renderer)
    targets = {t: _ids(out[t]) if t in out else previous.targets[t] for t in model.targets}  # type: ignore[union-attr]
    return RenderIndex(
        repo="p", sha="x", targets=targets, kinds={t: kind_of(model, t) for t in model.targets}, inputs=sel.fingerprints
    ), sel.render


def _full(root: Path, model: InfraModel) -> dict[str, dict[str, str]]:
    with Renderer(root) as renderer:
        return {t: _ids(a) for t, a in render_targets(model, model.targets, renderer).items()}


def check_sequence(root: Path, edits: list[Edit]) -> list[set[str]]:
    data = copy.deepcopy(BASE)
    _write(root, data)
    index, _ = _incremental(root, load_model(root), None)
    rendered: list[set[str]] = []
    for edit in edits:
        candidate = copy.deepcopy(data)
        edit(candidate)
        _write(root, candidate)
        try:
            model = load_model(root)
            index, again = _incremental(root, model, index)
        except InputError:  # an invalid model or template: that commit never renders
            _write(root, data)
            continue
        data = candidate
        full = _full(root, model)
        assert index.targets == full, {
            t: (index.targets.get(t), full.get(t)) for t in full if index.targets.get(t) != full[t]
        }
        rendered.append(again)
    return rendered


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(edits=st.lists(EDIT, min_size=1, max_size=5))
def test_incremental_render_equals_full_render(tmp_path_factory: pytest.TempPathFactory, edits: list[Edit]) -> None:
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(TEMPLATE, root, dirs_exist_ok=True)
    check_sequence(root, edits)


def test_every_edit_kind_is_valid_somewhere(tmp_path: Path) -> None:
    """The property must not pass by dropping every edit as invalid: a representative of each
    edit kind applies to the template and renders (and is checked against a full render)."""
    shutil.copytree(TEMPLATE, tmp_path, dirs_exist_ok=True)
    representatives: list[Edit] = [
        _device_override(5, "vtep_ip", 1),
        _device_override(0, "asn", 2),
        _device_override(2, "loopback", 3),
        _device_override(3, "router_id", 4),
        _pools("loopbacks", False),
        _pools("leaf_asns", False),
        _link(0, "subnet", 2),
        _tenants("add_net", 2, [0, 1]),
        _tenants("leaves", 1, [2, 3]),
        _tenants("add_vrf", 1, [0]),
        _hosts_edit("uplink_mtu", 0, 1),
        _hosts_edit("csum", 0, 1),
        _hosts_edit("ovn_remote", 1, 2),
        _hosts_edit("add_host", 0, 1),
        _flavors(2, "ram_mib", 2),
        _instances_edit("mac", 0, 1),
        _instances_edit("state", 0, 1),
        _instances_edit("add", 0, 3),
        _instances_edit("add_nic", 0, 2),
        _fabric_wide("anycast", 3),
        _fabric_wide("mtu", 1),
        _template_override("frr_cross", 1),
        _template_override("domain", 2),
    ]
    dropped = [i for i, edit in enumerate(representatives) if not check_sequence(tmp_path, [edit])]
    assert dropped == [], f"representatives {dropped} give an invalid model: the property would not test them"


# -- the case, named -------------------------------------------------------------------


def test_explicit_vtep_outside_the_pool_rerenders_every_switch(tmp_path: Path) -> None:
    """Issue 12's regression: leaf-04 gets an explicit VTEP outside the pool; every switch's
    PL-LOOPBACKS-EVPN-OVERLAY gains the /32, so every switch must render again."""
    shutil.copytree(TEMPLATE, tmp_path, dirs_exist_ok=True)

    def vtep(d: Data) -> None:
        next(x for x in _devices(d) if x["name"] == "leaf-04")["vtep_ip"] = "10.99.1.14"

    (again,) = check_sequence(tmp_path, [vtep])
    switches = {x["name"] for x in _devices(BASE)}
    assert again >= switches, again
    with Renderer(tmp_path) as renderer:
        spine = render_targets(load_model(tmp_path), ["spine-01"], renderer)["spine-01"]["frr.conf"]
    assert "permit 10.99.1.14/32" in spine


# -- what a template could do to make one render differ from another (review findings) ---------


def _override(root: Path, files: dict[str, str]) -> None:
    shutil.copytree(TEMPLATE, root, dirs_exist_ok=True)
    for rel, text in files.items():
        (root / "templates" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "templates" / rel).write_text(text)


def test_a_target_renders_the_same_alone_or_after_others(tmp_path: Path) -> None:
    """State left in an imported template's module (a namespace counter) must not reach the next target."""
    _override(
        tmp_path,
        {
            "state.j2": "{% set ns = namespace(n=0) %}",
            "frr/frr.conf.j2": FRR_TEMPLATE + '{% import "state.j2" as st %}{% set c = st.ns %}{% set c.n = c.n + 1 %}'
            "! call {{ c.n }}\n",
        },
    )
    model = load_model(tmp_path)
    with Renderer(tmp_path) as renderer:
        full = render_targets(model, model.targets, renderer)
    with Renderer(tmp_path) as renderer:
        alone = render_targets(model, ["leaf-03"], renderer)
    assert full["leaf-03"] == alone["leaf-03"] and "! call 1\n" in alone["leaf-03"]["frr.conf"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{{ [1, 2]|random }}", "No filter named 'random'"),
        ("{{ lipsum() }}", "'lipsum' is undefined"),
        ("{{ [1, 2]|map('string') }}", "no stable text"),  # a forgotten |list prints a memory address
        ("{{ '\\udc80' }}", "not valid UTF-8"),
        ("{{ '{0:{1}}'.format(1, 200000000) }}", "nested replacement fields"),
        ("{{ '%*d' % (200000000, 1) }}", "'*' widths"),
        ("{{ '%200000000d'|format(1) }}", "format width too large"),
    ],
)
def test_nondeterministic_or_unstorable_output_is_a_located_error(tmp_path: Path, body: str, message: str) -> None:
    _override(tmp_path, {"frr/frr.conf.j2": body + "\n"})
    with Renderer(tmp_path) as renderer, pytest.raises(InputError) as exc:
        render_targets(load_model(tmp_path), ["leaf-01"], renderer)
    (diag,) = exc.value.diagnostics
    assert diag.file == "templates/frr/frr.conf.j2" and diag.path == "leaf-01" and message in diag.message, diag


def test_template_digests_cannot_be_made_to_collide(tmp_path: Path) -> None:
    """Two template sets whose names and sources concatenate to the same bytes differ in digest."""
    a, b = tmp_path / "a", tmp_path / "b"
    _override(a, {"eos/running-config.j2": "A\0frr/frr.conf.j2\0hostname EVIL\n"})
    _override(b, {"eos/running-config.j2": "A", "frr/frr.conf.j2": "hostname EVIL\n"})
    assert Renderer(a).digest() != Renderer(b).digest()
