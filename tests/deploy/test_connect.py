"""Login details from the model and the operator's settings (workers.deploy.connect.device_conns)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lintas.engine.errors import LintasError
from lintas.engine.settings import DeploySettings, Settings
from lintas.workers.deploy.connect import ConnectError, DeviceConn, check_address, device_conns
from lintas.workers.model import load_model
from lintas.workers.model.model import InfraModel

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "gitops-repo-template"
SWITCHES = ["leaf-01", "leaf-02", "leaf-03", "leaf-04", "spine-01", "spine-02"]
INV_KEY = Path("/etc/lintas/ssh/id_ed25519")  # the template inventory's references (file:/etc/lintas/...)
INV_KNOWN = Path("/etc/lintas/ssh/known_hosts")


@pytest.fixture(autouse=True)
def _no_operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LINTAS_DEPLOY__"):
            monkeypatch.delenv(name)


class Repo:
    def __init__(self, root: Path) -> None:
        self.root = root

    def edit(self, rel: str, old: str, new: str) -> None:
        path = self.root / rel
        text = path.read_text()
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new, 1))

    def append(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.write_text(path.read_text() + text)

    def load(self) -> InfraModel:
        return load_model(self.root)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    root = tmp_path / "repo"
    shutil.copytree(TEMPLATE, root)
    return Repo(root)


def settings_for(tmp_path: Path, **deploy: object) -> Settings:
    """``use_lab=False``: no lab is consulted, whatever LINTAS_HOME holds."""
    return Settings(home=tmp_path / "home", deploy=DeploySettings(use_lab=False, **deploy))  # type: ignore[arg-type]


def test_error_is_a_lintas_error() -> None:
    assert issubclass(ConnectError, LintasError)


# -- the template's inventory --------------------------------------------------------------------


def test_template_inventory_gives_key_login_for_every_switch(repo: Repo, tmp_path: Path) -> None:
    conns = device_conns(repo.load(), settings_for(tmp_path), SWITCHES)
    assert sorted(conns) == sorted(SWITCHES)
    assert conns["leaf-01"] == DeviceConn(
        name="leaf-01",
        role="leaf",
        platform="frr",
        hostname="10.255.0.21",
        port=22,
        username="lintas",
        key_file=INV_KEY.resolve(),
        known_hosts=INV_KNOWN.resolve(),
        password_ref=None,
        source="inventory",
    )
    assert conns["spine-02"].role == "spine"
    assert conns["spine-02"].hostname == "10.255.0.12"


def test_only_the_named_devices(repo: Repo, tmp_path: Path) -> None:
    conns = device_conns(repo.load(), settings_for(tmp_path), ["spine-01", "leaf-03"])
    assert sorted(conns) == ["leaf-03", "spine-01"]
    assert device_conns(repo.load(), settings_for(tmp_path), []) == {}


def test_use_lab_false_ignores_a_lab_under_lintas_home(repo: Repo, tmp_path: Path) -> None:
    from lintas.workers.lab.paths import LabPaths

    s = settings_for(tmp_path)
    state = LabPaths(s.home).state_file
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text("{not json: a lab that must not be read")
    conns = device_conns(repo.load(), s, ["leaf-01"])
    assert conns["leaf-01"].source == "inventory"


# -- settings override the inventory ---------------------------------------------------------------


def test_settings_key_known_hosts_and_username_are_used(repo: Repo, tmp_path: Path) -> None:
    key, known = tmp_path / "op" / "id_ed25519", tmp_path / "op" / "known_hosts"
    s = settings_for(tmp_path, key_file=key, known_hosts=known, username="operator")
    conns = device_conns(repo.load(), s, ["leaf-01", "spine-01"])
    for name in ("leaf-01", "spine-01"):
        c = conns[name]
        assert (c.key_file, c.known_hosts, c.username, c.password_ref, c.source) == (
            key,
            known,
            "operator",
            None,
            "settings",
        )


def test_settings_username_alone_keeps_the_inventory_key(repo: Repo, tmp_path: Path) -> None:
    c = device_conns(repo.load(), settings_for(tmp_path, username="operator"), ["leaf-02"])["leaf-02"]
    assert (c.username, c.key_file, c.known_hosts, c.source) == (
        "operator",
        INV_KEY.resolve(),
        INV_KNOWN.resolve(),
        "inventory",
    )


def test_settings_known_hosts_overrides_the_inventory(repo: Repo, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    c = device_conns(repo.load(), settings_for(tmp_path, known_hosts=known), ["leaf-02"])["leaf-02"]
    assert c.known_hosts == known
    assert c.key_file == INV_KEY.resolve()


# -- known_hosts, keys, passwords -------------------------------------------------------------------


def test_no_known_hosts_anywhere_is_an_error(repo: Repo, tmp_path: Path) -> None:
    repo.edit("inventory/defaults.yaml", "      known_hosts: file:/etc/lintas/ssh/known_hosts\n", "")
    with pytest.raises(ConnectError) as exc:
        device_conns(repo.load(), settings_for(tmp_path), ["leaf-01", "spine-01"])
    msg = str(exc.value)
    assert "leaf-01: no known_hosts file" in msg and "spine-01: no known_hosts file" in msg
    assert "LINTAS_DEPLOY__KNOWN_HOSTS" in msg


def test_no_known_hosts_in_inventory_but_in_settings_is_fine(repo: Repo, tmp_path: Path) -> None:
    repo.edit("inventory/defaults.yaml", "      known_hosts: file:/etc/lintas/ssh/known_hosts\n", "")
    known = tmp_path / "known_hosts"
    c = device_conns(repo.load(), settings_for(tmp_path, known_hosts=known), ["leaf-01"])["leaf-01"]
    assert c.known_hosts == known


def test_inventory_key_outside_the_secret_dirs_is_refused(repo: Repo, tmp_path: Path) -> None:
    repo.edit("inventory/defaults.yaml", "file:/etc/lintas/ssh/id_ed25519", "file:/root/.ssh/id_rsa")
    with pytest.raises(ConnectError) as exc:
        device_conns(repo.load(), settings_for(tmp_path), ["leaf-01"])
    assert "private_key file:/root/.ssh/id_rsa is outside" in str(exc.value)
    assert "LINTAS_DEPLOY__SECRET_DIRS" in str(exc.value)


def test_inventory_known_hosts_escaping_with_dotdot_is_refused(repo: Repo, tmp_path: Path) -> None:
    repo.edit("inventory/defaults.yaml", "file:/etc/lintas/ssh/known_hosts", "file:/etc/lintas/../ssh/known_hosts")
    with pytest.raises(ConnectError, match="known_hosts .* is outside"):
        device_conns(repo.load(), settings_for(tmp_path), ["leaf-01"])


def test_inventory_key_under_lintas_home_secrets_is_allowed(repo: Repo, tmp_path: Path) -> None:
    s = settings_for(tmp_path, secret_dirs=[])
    key = s.secrets_dir / "ssh" / "id_ed25519"
    known = s.secrets_dir / "ssh" / "known_hosts"
    repo.edit("inventory/defaults.yaml", "file:/etc/lintas/ssh/id_ed25519", f"file:{key}")
    repo.edit("inventory/defaults.yaml", "file:/etc/lintas/ssh/known_hosts", f"file:{known}")
    c = device_conns(repo.load(), s, ["leaf-01"])["leaf-01"]
    assert (c.key_file, c.known_hosts) == (key.resolve(), known.resolve())


def test_etc_lintas_is_refused_once_not_in_secret_dirs(repo: Repo, tmp_path: Path) -> None:
    with pytest.raises(ConnectError, match="outside"):
        device_conns(repo.load(), settings_for(tmp_path, secret_dirs=[]), ["leaf-01"])


def test_password_reference_is_used_when_there_is_no_key(repo: Repo, tmp_path: Path) -> None:
    repo.edit("inventory/defaults.yaml", "      private_key: file:/etc/lintas/ssh/id_ed25519\n", "")
    c = device_conns(repo.load(), settings_for(tmp_path), ["leaf-01"])["leaf-01"]
    assert (c.key_file, c.password_ref) == (None, "env:LINTAS_SSH_PASSWORD")


def test_neither_key_nor_password_is_an_error(repo: Repo, tmp_path: Path) -> None:
    repo.edit("inventory/defaults.yaml", "      private_key: file:/etc/lintas/ssh/id_ed25519\n", "")
    repo.edit("inventory/defaults.yaml", "password: env:LINTAS_SSH_PASSWORD\n", "")
    with pytest.raises(ConnectError, match="leaf-01: neither an SSH key nor a password reference"):
        device_conns(repo.load(), settings_for(tmp_path), ["leaf-01"])


def test_no_username_anywhere_is_an_error(repo: Repo, tmp_path: Path) -> None:
    repo.edit("inventory/defaults.yaml", "username: lintas\n", "")
    with pytest.raises(ConnectError, match="leaf-01: no username"):
        device_conns(repo.load(), settings_for(tmp_path), ["leaf-01"])
    c = device_conns(repo.load(), settings_for(tmp_path, username="operator"), ["leaf-01"])["leaf-01"]
    assert c.username == "operator"


# -- the inventory chain: host -> groups (depth-first) -> defaults ----------------------------------


def test_host_entry_beats_groups_and_defaults(repo: Repo, tmp_path: Path) -> None:
    repo.edit(
        "inventory/hosts.yaml",
        "leaf-02:\n  hostname: 10.255.0.22\n",
        "leaf-02:\n  hostname: 10.255.0.22\n  username: ops\n  port: 2022\n",
    )
    repo.edit("inventory/groups.yaml", "leaf:\n", "leaf:\n  username: leaf-admin\n  port: 2200\n")
    conns = device_conns(repo.load(), settings_for(tmp_path), ["leaf-01", "leaf-02", "spine-01"])
    assert (conns["leaf-02"].username, conns["leaf-02"].port) == ("ops", 2022)  # host
    assert (conns["leaf-01"].username, conns["leaf-01"].port) == ("leaf-admin", 2200)  # group leaf
    assert (conns["spine-01"].username, conns["spine-01"].port) == ("lintas", 22)  # defaults


def test_earlier_group_beats_later_group(repo: Repo, tmp_path: Path) -> None:
    # spine-01 has groups [spine, frr]
    repo.edit("inventory/groups.yaml", "spine:\n", "spine:\n  port: 2300\n")
    repo.edit(
        "inventory/groups.yaml",
        "frr:\n  platform: frr\n",
        "frr:\n  platform: frr\n  port: 2400\n  username: frr-admin\n",
    )
    conns = device_conns(repo.load(), settings_for(tmp_path), ["spine-01", "leaf-01"])
    assert (conns["spine-01"].port, conns["spine-01"].username) == (2300, "frr-admin")
    assert (conns["leaf-01"].port, conns["leaf-01"].username) == (2400, "frr-admin")


def test_nested_groups_are_depth_first(repo: Repo, tmp_path: Path) -> None:
    # leaf-01 has groups [leaf, frr]; leaf -> rack-a: rack-a comes before frr (nornir's order)
    repo.edit("inventory/groups.yaml", "leaf:\n", "leaf:\n  groups: [rack-a]\n")
    repo.edit(
        "inventory/groups.yaml",
        "frr:\n  platform: frr\n",
        "frr:\n  platform: frr\n  username: frr-admin\n  port: 2400\n",
    )
    repo.append("inventory/groups.yaml", "rack-a:\n  username: rack-admin\n")
    conns = device_conns(repo.load(), settings_for(tmp_path), ["leaf-01", "spine-01"])
    assert (conns["leaf-01"].username, conns["leaf-01"].port) == ("rack-admin", 2400)
    assert (conns["spine-01"].username, conns["spine-01"].port) == ("frr-admin", 2400)


def test_settings_username_beats_the_host_entry(repo: Repo, tmp_path: Path) -> None:
    repo.edit(
        "inventory/hosts.yaml",
        "leaf-02:\n  hostname: 10.255.0.22\n",
        "leaf-02:\n  hostname: 10.255.0.22\n  username: ops\n  port: 2022\n",
    )
    c = device_conns(repo.load(), settings_for(tmp_path, username="operator"), ["leaf-02"])["leaf-02"]
    assert (c.username, c.port) == ("operator", 2022)


def test_ssh_extras_of_a_group_beat_the_defaults(repo: Repo, tmp_path: Path) -> None:
    s = settings_for(tmp_path)
    spine_key = s.secrets_dir / "spine_key"
    repo.edit(
        "inventory/groups.yaml",
        "spine:\n",
        f"spine:\n  connection_options:\n    ssh:\n      extras:\n        private_key: file:{spine_key}\n",
    )
    conns = device_conns(repo.load(), s, ["spine-01", "leaf-01"])
    assert conns["spine-01"].key_file == spine_key.resolve()
    assert conns["spine-01"].known_hosts == INV_KNOWN.resolve()  # still from the defaults
    assert conns["leaf-01"].key_file == INV_KEY.resolve()


# -- network safety: allowed_networks ---------------------------------------------------------------


def widen_management_and_move(repo: Repo, old: str, new: str) -> None:
    """The repo widens its management subnet and moves a device outside the operator's /24."""
    repo.edit("fabric/fabric.yaml", "subnet: 10.255.0.0/24", "subnet: 10.255.0.0/16")
    repo.edit("fabric/devices.yaml", f"mgmt_ip: {old}/24", f"mgmt_ip: {new}/24")
    repo.edit("inventory/hosts.yaml", f"hostname: {old}\n", f"hostname: {new}\n")


def test_device_outside_allowed_networks_is_refused(repo: Repo, tmp_path: Path) -> None:
    widen_management_and_move(repo, "10.255.0.21", "10.255.9.21")
    model = repo.load()
    assert str(model.devices["leaf-01"].mgmt_ip.ip) == "10.255.9.21"
    with pytest.raises(ConnectError) as exc:
        device_conns(model, settings_for(tmp_path), ["leaf-01", "leaf-02"])
    msg = str(exc.value)
    assert "leaf-01: management address 10.255.9.21 is outside the allowed networks 10.255.0.0/24" in msg
    assert "LINTAS_DEPLOY__ALLOWED_NETWORKS" in msg
    assert "leaf-02" not in msg
    # the other devices are fine
    assert sorted(device_conns(model, settings_for(tmp_path), ["leaf-02", "spine-01"])) == ["leaf-02", "spine-01"]


def test_address_check_comes_before_settings_logins(repo: Repo, tmp_path: Path) -> None:
    widen_management_and_move(repo, "10.255.0.21", "10.255.9.21")
    s = settings_for(tmp_path, key_file=tmp_path / "k", known_hosts=tmp_path / "kh", username="operator")
    with pytest.raises(ConnectError, match="10.255.9.21"):
        device_conns(repo.load(), s, ["leaf-01"])


def test_allowed_networks_come_from_settings(repo: Repo, tmp_path: Path) -> None:
    widen_management_and_move(repo, "10.255.0.21", "10.255.9.21")
    s = settings_for(tmp_path, allowed_networks=["10.255.0.0/24", "10.255.9.0/24"])
    assert device_conns(repo.load(), s, ["leaf-01"])["leaf-01"].hostname == "10.255.9.21"


def test_every_problem_is_named_at_once(repo: Repo, tmp_path: Path) -> None:
    s = settings_for(tmp_path, allowed_networks=["10.255.0.16/28"])  # .21-.24 (leaves) in, .11/.12 (spines) out
    with pytest.raises(ConnectError) as exc:
        device_conns(repo.load(), s, SWITCHES)
    msg = str(exc.value)
    assert "spine-01: management address 10.255.0.11" in msg
    assert "spine-02: management address 10.255.0.12" in msg
    assert "leaf-" not in msg
    assert sorted(device_conns(repo.load(), s, ["leaf-01", "leaf-04"])) == ["leaf-01", "leaf-04"]


@pytest.mark.parametrize(
    ("address", "ok"),
    [("10.255.0.1", True), ("10.255.0.254", True), ("10.255.1.1", False), ("192.168.0.21", False), ("fd00::21", False)],
)
def test_check_address(tmp_path: Path, address: str, ok: bool) -> None:
    s = settings_for(tmp_path)
    if ok:
        check_address("leaf-01", address, s)
    else:
        with pytest.raises(ConnectError, match=f"leaf-01: management address {address} is outside"):
            check_address("leaf-01", address, s)


def test_no_allowed_networks_refuses_everything(tmp_path: Path) -> None:
    with pytest.raises(ConnectError, match="10.255.0.21"):
        check_address("leaf-01", "10.255.0.21", settings_for(tmp_path, allowed_networks=[]))
