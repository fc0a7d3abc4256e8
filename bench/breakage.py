"""Changes that are valid for the model but break the fabric: for the rollback benchmark and the
end-to-end tests (a change set that is sound makes model-level tricks such as a VTEP outside the
pool deploy cleanly, so the breakage has to live where a repo may really put it: a template)."""

from __future__ import annotations

from pathlib import Path

BUILTIN_FRR = Path(__file__).resolve().parent.parent / "workers" / "render" / "templates" / "frr" / "frr.conf.j2"
_EVPN = " address-family l2vpn evpn\n{% if evpn_on_underlay %}\n  neighbor UNDERLAY activate\n"
_BGP = "router bgp {{ asn }}\n"


def evpn_filter_override(leaf: str) -> str:
    """The built-in FRR template, changed so that ``leaf`` denies every EVPN route it sends: the other
    leaves never learn its VTEP, and verify fails on every VNI it carries. Only ``leaf`` renders
    differently."""
    builtin = BUILTIN_FRR.read_text()
    assert builtin.count(_EVPN) == 1 and builtin.count(_BGP) == 1, "the built-in FRR template changed shape"
    text = builtin.replace(
        _EVPN,
        _EVPN + f"{{% if hostname == '{leaf}' %}}\n  neighbor UNDERLAY route-map RM-EVPN-DENY-OUT out\n{{% endif %}}\n",
    )
    return text.replace(
        _BGP, f"{{% if hostname == '{leaf}' %}}\nroute-map RM-EVPN-DENY-OUT deny 10\nexit\n!\n{{% endif %}}\n" + _BGP
    )


def write_evpn_filter(repo: Path, leaf: str) -> None:
    """Put :func:`evpn_filter_override` into the repo as its ``templates/frr/frr.conf.j2``."""
    out = repo / "templates" / "frr" / "frr.conf.j2"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(evpn_filter_override(leaf))


_PASSWORD = " neighbor UNDERLAY password {{ password }}\n"


def password_override(leaf: str) -> str:
    """The built-in FRR template, changed so that ``leaf``'s underlay sessions use another password
    than their peers' (the fabric's secret with one more character: no secret in the repo). Only
    ``leaf`` renders differently; its sessions can never come up."""
    builtin = BUILTIN_FRR.read_text()
    assert builtin.count(_PASSWORD) == 1, "the built-in FRR template changed shape"
    return builtin.replace(
        _PASSWORD,
        f"{{% if hostname == '{leaf}' %}}\n neighbor UNDERLAY password {{{{ password }}}}x\n{{% else %}}\n"
        + _PASSWORD
        + "{% endif %}\n",
    )


def write_password_override(repo: Path, leaf: str) -> None:
    """Put :func:`password_override` into the repo as its ``templates/frr/frr.conf.j2``."""
    out = repo / "templates" / "frr" / "frr.conf.j2"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(password_override(leaf))


def port_stanza_override(leaf: str, port: str, body: str) -> str:
    """The built-in FRR template, changed so that ``leaf`` renders an ``interface <port>`` stanza of
    ``body`` (indented lines). Only ``leaf`` renders differently (a host cabled there keeps its configs)."""
    builtin = BUILTIN_FRR.read_text()
    assert builtin.count(_BGP) == 1, "the built-in FRR template changed shape"
    return builtin.replace(
        _BGP, f"{{% if hostname == '{leaf}' %}}\ninterface {port}\n{body}exit\n!\n{{% endif %}}\n" + _BGP
    )


def shut_port_override(leaf: str, port: str) -> str:
    """:func:`port_stanza_override` shutting ``port`` (zebra sets the link down): valid FRR that cuts
    whatever is cabled there."""
    return port_stanza_override(leaf, port, " shutdown\n")


def write_shut_port(repo: Path, leaf: str, port: str) -> None:
    """Put :func:`shut_port_override` into the repo as its ``templates/frr/frr.conf.j2``."""
    out = repo / "templates" / "frr" / "frr.conf.j2"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(shut_port_override(leaf, port))
