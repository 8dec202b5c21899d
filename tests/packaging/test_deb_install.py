"""Install the .deb on this machine with apt, use what it installed, purge it, and find nothing left.

The tests in this module run in order: install (module fixture), checks on the installed package,
then `test_purge_leaves_nothing_behind`. The fixture purges on the way out whatever happens, so a
failing check never leaves the package installed.
"""

from __future__ import annotations

import fcntl
import grp
import json
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helper.lab import SERVER_TUNNEL, HelperProcess, lab
from tests.interop import wgnet
from tests.interop.wgnet import INNER4, INNER6, build, wait_handshake
from tests.netns import namespaces, unique_name, wait_for
from tests.packaging.artifacts import EXECUTABLES, VERSION

pytestmark = [pytest.mark.root, pytest.mark.slow]

APT = ["apt-get", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300"]
UNIT = "wgdesk-helper.service"
MIME_TYPE = "application/x-wireguard-config"
# Where a package could leave something behind; compared by name before install and after purge.
WATCHED = ["/etc", "/opt", "/usr", "/var/lib", "/lib/systemd"]
WG_CONF = "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nAddress = 10.9.0.2/32\n"


def wgdesk_paths() -> set[str]:
    out = subprocess.run(
        ["find", *WATCHED, "-xdev", "(", "-iname", "*wgdesk*", "-o", "-iname", "*wireguard-config*", ")"],
        capture_output=True,
        text=True,
    ).stdout
    return set(out.split())


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def dpkg_status() -> str:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "wgdesk"], capture_output=True, text=True
    )
    return result.stdout.strip() if result.returncode == 0 else ""


def purge() -> subprocess.CompletedProcess[str]:
    # userdel refuses a user that still runs processes. On a machine that runs other test sessions at
    # the same time, their helpers may start engines as `wgdesk-engine` while it exists: let those end.
    wait_for(
        lambda: subprocess.run(["pgrep", "-u", "wgdesk-engine"], capture_output=True).returncode != 0, 120
    )
    return subprocess.run([*APT, "purge", "wgdesk"], capture_output=True, text=True, timeout=600)


@dataclass
class Installed:
    deb: Path
    output: str
    before: set[str]
    group_existed: bool
    user_existed: bool
    executables: list[str]


@pytest.fixture(scope="module")
def installed(deb: Path) -> Iterator[Installed]:
    # One install/purge cycle at a time on this machine, even across concurrent test sessions.
    with open("/run/lock/wgdesk-packaging-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield from _install(deb)


def _install(deb: Path) -> Iterator[Installed]:
    if dpkg_status():  # left over from an interrupted run
        purge()
    before = wgdesk_paths()
    group_existed = group_exists("wgdesk")
    user_existed = user_exists("wgdesk-engine")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", SUDO_USER="nobody")
    result = subprocess.run([*APT, "install", str(deb)], capture_output=True, text=True, env=env, timeout=900)
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        present = subprocess.run(
            ["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True
        ).stdout
        executables = [e for e in EXECUTABLES if f"./usr/bin/{e} -> " in present]
        yield Installed(deb, result.stdout + result.stderr, before, group_existed, user_existed, executables)
    finally:
        if dpkg_status():
            purge()


def test_installed_files(installed: Installed) -> None:
    assert dpkg_status() == "ii"
    assert installed.executables == list(EXECUTABLES)
    for exe in installed.executables:
        assert Path(f"/usr/bin/{exe}").resolve() == Path(f"/opt/wgdesk/{exe}")
        assert os.access(f"/usr/bin/{exe}", os.X_OK)
    assert Path("/usr/share/applications/wgdesk.desktop").is_file()
    # the dpkg triggers of shared-mime-info and hicolor-icon-theme ran
    assert Path(f"/usr/share/mime/{MIME_TYPE}.xml").is_file()
    # the leftover scan of the purge test sees what the package installed
    assert {
        "/opt/wgdesk",
        "/usr/bin/wgdesk",
        f"/usr/share/mime/{MIME_TYPE}.xml",
    } <= wgdesk_paths() - installed.before


def test_group_created_and_user_told_to_join(installed: Installed) -> None:
    assert group_exists("wgdesk")
    assert "usermod -aG wgdesk nobody" in installed.output


def test_engine_user_and_settings(installed: Installed) -> None:
    engine = pwd.getpwnam("wgdesk-engine")
    assert 0 < engine.pw_uid < 1000, "a system user"
    assert engine.pw_shell == "/usr/sbin/nologin"
    settings = Path("/etc/wgdesk/helper.toml")
    assert settings.stat().st_uid == 0 and settings.stat().st_mode & 0o022 == 0


def test_helper_unit_enabled(installed: Installed) -> None:
    link = Path("/etc/systemd/system/multi-user.target.wants") / UNIT
    assert link.is_symlink()
    assert link.resolve() == Path("/lib/systemd/system", UNIT).resolve()
    verify = subprocess.run(
        ["systemd-analyze", "verify", f"/lib/systemd/system/{UNIT}"], capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stderr


def test_installed_mime_type_resolves(installed: Installed, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CURRENT_DESKTOP", "XDG_DATA_HOME")}
    env.update(XDG_DATA_DIRS="/usr/share", HOME=str(tmp_path))
    wg, other = tmp_path / "wg0.conf", tmp_path / "other.conf"
    wg.write_text(WG_CONF)
    other.write_text("[main]\nkey=value\n")
    types = [
        subprocess.run(
            ["xdg-mime", "query", "filetype", str(f)], capture_output=True, text=True, env=env, check=True
        ).stdout.strip()
        for f in (wg, other)
    ]
    assert types[0] == MIME_TYPE
    assert types[1] != MIME_TYPE
    default = subprocess.run(
        ["xdg-mime", "query", "default", MIME_TYPE], capture_output=True, text=True, env=env
    )
    assert default.stdout.strip() == "wgdesk.desktop"


def test_installed_wgdeskctl_version(installed: Installed) -> None:
    result = subprocess.run(["/usr/bin/wgdeskctl", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert VERSION in result.stdout.split()


def test_installed_gui_starts_offscreen(installed: Installed, tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QT_", "DISPLAY", "WAYLAND"))}
    env.update(
        QT_QPA_PLATFORM="offscreen",
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_RUNTIME_DIR=str(runtime),
        WGDESK_SOCKET=str(tmp_path / "no-helper.sock"),
    )
    log = tmp_path / "gui.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["/usr/bin/wgdesk"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            time.sleep(2.0)
            assert proc.poll() is None, f"exited with {proc.returncode}:\n{log.read_text(errors='replace')}"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text
    assert "Could not load the Qt platform plugin" not in text, text


def test_installed_engine_interoperates_with_wireguard_go(
    installed: Installed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The namespace ping test of tests/interop with the INSTALLED /usr/bin/wgdesk-engine on one side."""
    monkeypatch.setitem(wgnet.IMPLEMENTATIONS, "installed", "/usr/bin/wgdesk-engine")
    with namespaces("pka", "pkb") as (na, nb):
        topo = build(na, nb, "installed", "go", tmp_path, outer="4", psk=True, endpoints=(0,))
        try:
            topo.ping(0, INNER4[1])
            topo.ping(0, INNER6[1])
            topo.ping(1, INNER4[0])
            wait_handshake(topo.a, topo.b.public)
            # `ip netns exec` execs the engine: this is the installed bootloader, not the venv's script
            # (the same file, not the same path string: in a chroot whose root is a mount point, the
            # kernel prints the exe of a process in another mount namespace from the real root)
            assert os.path.samefile(f"/proc/{topo.a.proc.pid}/exe", "/opt/wgdesk/wgdesk-engine")
        finally:
            for iface in (topo.a, topo.b):
                if iface.alive():
                    iface.stop()


class InstalledHelper(HelperProcess):
    """tests/helper's lab helper, but the INSTALLED /usr/bin/wgdesk-helper (same namespaces and arguments)."""

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115
        script = 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"'
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(self.resolv_conf),
                "/usr/bin/wgdesk-helper", "--socket", str(self.socket), "--state-dir", str(self.state_dir),
                "--config", str(self.config), "--engine", self.engine, "--log-level", "debug"]  # fmt: skip
        self.proc = self.lab.client.popen(*argv, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, stdout=log,
                                          stderr=subprocess.STDOUT)  # fmt: skip
        log.close()
        started = wait_for(lambda: self._answers() or self.proc is None or self.proc.poll() is not None, 30)
        if not started or self.proc.poll() is not None:
            raise RuntimeError(f"installed helper did not start:\n{self.log()}")


def test_installed_cli_helper_and_engine_bring_a_tunnel_up(installed: Installed) -> None:
    """wgdeskctl -> wgdesk-helper -> wgdesk-engine, all three from /usr/bin, against a wireguard-go server."""
    with lab() as lab_:
        helper = InstalledHelper(lab_, engine="/usr/bin/wgdesk-engine")
        lab_.helper = helper
        name = unique_name("pkg")
        conf = lab_.workdir / f"{name}.conf"
        conf.write_text(lab_.config())

        def ctl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["/usr/bin/wgdeskctl", "--socket", str(helper.socket), *args],
                                  capture_output=True, text=True, timeout=120)  # fmt: skip

        up = ctl("up", str(conf), "--no-kill-switch")
        assert up.returncode == 0, up.stdout + up.stderr + helper.log()[-3000:]
        try:
            assert lab_.ping(SERVER_TUNNEL[0], 3), helper.log()[-3000:]
            shown = json.loads(ctl("show", name, "--json").stdout)
            [tunnel] = shown["tunnels"]
            [peer] = tunnel["peers"]
            assert peer["public_key"] == lab_.server_public
            assert isinstance(peer["latest_handshake"], int) and peer["rx_bytes"] > 0
            # the engine the installed helper started is the installed one, running as the package's user
            pattern = f"wgdesk-engine.* {tunnel['interface']}"
            engines = subprocess.run(["pgrep", "-u", "wgdesk-engine", "-f", pattern], capture_output=True,
                                     text=True).stdout.split()  # fmt: skip
            assert engines, helper.log()[-3000:]
            assert os.path.samefile(f"/proc/{engines[0]}/exe", "/opt/wgdesk/wgdesk-engine")
        finally:
            down = ctl("down", name)
        assert down.returncode == 0, down.stdout + down.stderr


def test_purge_leaves_nothing_behind(installed: Installed) -> None:
    result = purge()
    assert result.returncode == 0, result.stdout + result.stderr
    assert dpkg_status() == ""
    assert wgdesk_paths() == installed.before
    assert group_exists("wgdesk") is installed.group_existed
    assert user_exists("wgdesk-engine") is installed.user_existed
    for path in (
        f"/etc/systemd/system/multi-user.target.wants/{UNIT}",
        f"/etc/systemd/system/{UNIT}",
        f"/var/lib/systemd/deb-systemd-helper-enabled/{UNIT}.dsh-also",
        f"/var/lib/systemd/deb-systemd-helper-masked/{UNIT}",
        "/var/lib/wgdesk",
        "/opt/wgdesk",
    ):
        assert not os.path.lexists(path), path
