"""Where the lab keeps its files.

``$LINTAS_HOME/lab/`` (0700, root) holds what is the lab's own::

    state.json                      what `lab up` built (read by status, down, the driver)
    keys/id_ed25519{,.pub}          the lab key pair: root's key on every lab switch
    keys/known_hosts                every switch's and host's host key, by mgmt address and name
    <device>/ssh_host_ed25519_key   the switch's or host's SSH host key (+ .pub)
    <device>/sshd_config            its sshd, listening on the mgmt address only
    <device>/authorized_keys        the lab public key
    <device>/sshd.pid, sshd.log

``/run/lintas-lab/lx-<device>/`` holds what the switch's FRR reads and writes. It is
outside ``$LINTAS_HOME`` because FRR drops privileges to user ``frr``, which cannot
enter ``/root``, and because unix socket paths must stay under 108 bytes. Every
process of a switch (FRR daemons, sshd and so every SSH session) runs in the switch's
network namespace, its own UTS namespace (hostname = device name) and a mount
namespace where these directories are bind-mounted over the usual FRR paths, so a
switch looks like any Linux + FRR box from inside::

    etc/   -> /etc/frr      frr.conf, vtysh.conf, daemons
    run/   -> /run/frr      vty sockets, zserv.api, bfdd.sock, pid files
    log/   -> /var/log/frr  frr.log

A hypervisor host's directory ``/run/lintas-lab/lx-<host>/`` holds, in the same way, what
its libvirt and Open vSwitch read and write (the host's own ``sshd`` files are in
``$LINTAS_HOME/lab/<host>/`` like a switch's)::

    libvirt-etc/   -> /etc/libvirt          libvirtd.conf, virtlogd.conf, qemu.conf, qemu/*.xml
    libvirt-lib/   -> /var/lib/libvirt
    libvirt-run/   -> /run/libvirt          libvirt-sock, libvirt-sock-ro, virtlogd-sock, pid files
    libvirt-log/   -> /var/log/libvirt
    libvirt-cache/ -> /var/cache/libvirt    QEMU capabilities (probed again after `down`)
    ovs-etc/       -> /etc/openvswitch      conf.db
    ovs-run/       -> /run/openvswitch      db.sock, *.ctl, pid files
    ovs-log/       -> /var/log/openvswitch

``/run/lintas-lab/owner.json`` names the ``LINTAS_HOME`` whose lab is up: there is one
lab per machine (namespace names and the management subnet are machine-wide).

A twin (:func:`twin_paths`, issue 18) keeps everything under ``/run/lintas-twin/<prefix>/``, on
tmpfs like the twin itself, so removing that one tree removes all its files::

    twin.json                     the twin's record (name, LINTAS_HOME, holder, phase)
    ctl/                          (0700) what ``$LINTAS_HOME/lab/`` is for the lab: state.json,
                                  keys/, <device>/sshd_config, host keys, ...
    <prefix>-<device>/            the switch's etc/, run/, log/ (as ``/run/lintas-lab/lx-<device>/``)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lintas.workers.lab.topology import PRODUCTION, Instance

RUN_ROOT = Path("/run/lintas-lab")
TWIN_ROOT = Path("/run/lintas-twin")
DEVICE_FRR_ETC = "/etc/frr"
DEVICE_FRR_RUN = "/run/frr"
DEVICE_FRR_LOG = "/var/log/frr"
# (host directory name, path inside the host): every bind mount of a hypervisor host
HOST_MOUNTS: tuple[tuple[str, str], ...] = (
    ("libvirt-etc", "/etc/libvirt"),
    ("libvirt-lib", "/var/lib/libvirt"),
    ("libvirt-run", "/run/libvirt"),
    ("libvirt-log", "/var/log/libvirt"),
    ("libvirt-cache", "/var/cache/libvirt"),
    ("ovs-etc", "/etc/openvswitch"),
    ("ovs-run", "/run/openvswitch"),
    ("ovs-log", "/var/log/openvswitch"),
)


@dataclass(frozen=True, slots=True)
class LabPaths:
    home: Path
    run_root: Path = RUN_ROOT
    instance: Instance = PRODUCTION
    control: Path | None = None  # a twin's ctl/ directory; the production lab's is $LINTAS_HOME/lab

    @property
    def lab_dir(self) -> Path:
        return self.control if self.control is not None else self.home / "lab"

    @property
    def mount_marker(self) -> str:
        """What the mount root of every bind mount of this lab's processes contains (see
        :func:`workers.lab.netns.orphan_pids`): ``lintas-lab/lx-`` or ``lintas-twin/<prefix>/``."""
        if self.instance.is_twin:
            return f"{self.run_root.parent.name}/{self.run_root.name}/"
        return f"{self.run_root.name}/{self.instance.ns_prefix}"

    @property
    def state_file(self) -> Path:
        return self.lab_dir / "state.json"

    @property
    def keys_dir(self) -> Path:
        return self.lab_dir / "keys"

    @property
    def key(self) -> Path:
        return self.keys_dir / "id_ed25519"

    @property
    def pubkey(self) -> Path:
        return self.keys_dir / "id_ed25519.pub"

    @property
    def known_hosts(self) -> Path:
        return self.keys_dir / "known_hosts"

    @property
    def owner_file(self) -> Path:
        return self.run_root / "owner.json"

    def device_dir(self, device: str) -> Path:
        return self.lab_dir / device

    def run_dir(self, device: str) -> Path:
        return self.run_root / self.instance.namespace(device)

    def frr_etc(self, device: str) -> Path:
        return self.run_dir(device) / "etc"

    def frr_run(self, device: str) -> Path:
        return self.run_dir(device) / "run"

    def frr_log(self, device: str) -> Path:
        return self.run_dir(device) / "log"

    def host_dir(self, host: str, inside: str) -> Path:
        """Host path of the directory a hypervisor host sees at ``inside`` (``/run/libvirt``)."""
        for name, where in HOST_MOUNTS:
            if where == inside:
                return self.run_dir(host) / name
        raise KeyError(inside)

    def libvirt_etc(self, host: str) -> Path:
        return self.host_dir(host, "/etc/libvirt")

    def libvirt_run(self, host: str) -> Path:
        return self.host_dir(host, "/run/libvirt")

    def libvirt_socket(self, host: str) -> Path:
        return self.libvirt_run(host) / "libvirt-sock"

    def libvirt_ro_socket(self, host: str) -> Path:
        return self.libvirt_run(host) / "libvirt-sock-ro"

    def libvirt_uri(self, host: str) -> str:
        """libvirt URI of a lab host's libvirtd, from the root namespace."""
        return f"qemu:///system?socket={self.libvirt_socket(host)}"

    def ovs_etc(self, host: str) -> Path:
        return self.host_dir(host, "/etc/openvswitch")

    def ovs_run(self, host: str) -> Path:
        return self.host_dir(host, "/run/openvswitch")

    def ovs_db_socket(self, host: str) -> Path:
        return self.ovs_run(host) / "db.sock"

    def host_binds(self, host: str) -> list[tuple[str, str]]:
        """(host path, path inside) bind mounts of a hypervisor host's mount namespace."""
        return [(str(self.run_dir(host) / name), inside) for name, inside in HOST_MOUNTS]

    def binds(self, device: str) -> list[tuple[str, str]]:
        """(host path, device path) bind mounts of a switch's mount namespace."""
        return [
            (str(self.frr_etc(device)), DEVICE_FRR_ETC),
            (str(self.frr_run(device)), DEVICE_FRR_RUN),
            (str(self.frr_log(device)), DEVICE_FRR_LOG),
        ]


def twin_paths(home: Path, instance: Instance, twin_root: Path = TWIN_ROOT) -> LabPaths:
    """The files of twin ``instance`` (made for ``home``'s Lintas), all under ``<twin_root>/<prefix>/``."""
    run_root = twin_root / instance.prefix
    return LabPaths(home, run_root, instance, run_root / "ctl")


def twin_record_file(instance: Instance, twin_root: Path = TWIN_ROOT) -> Path:
    return twin_root / instance.prefix / "twin.json"
