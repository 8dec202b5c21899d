"""The helper's directories on Windows (`wgdesk.platforms.windows.directories`): found through the
shell's known folder, created with a protected descriptor, and refused when others could change them —
repaired only by the elevated installer (``wgdesk-helper --install``: moved aside, made anew), never by
the service.

The fakes (`fake_windows.FakeFileSecurity`, `FakeShell32`, `FakeOle32`) are hand-written from
Microsoft's documentation and pywin32's source, as are the descriptors below (ProgramData's subfolder
as a user creates it: owner that user, entries inherited from ProgramData); none was read from a
Windows machine. ``FOLDERID_ProgramData`` is read from mingw-w64's ``knownfolders.h``."""

from __future__ import annotations

import ctypes
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.windows.fake_windows import FakeFileSecurity, FakeOle32, FakeShell32
from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.windows import directories
from wgdesk.platforms.windows.directories import DIRECTORY_SDDL, Security, helper_paths, program_data, unsafe
from wgdesk.platforms.windows.service import WindowsService

KNOWN_FOLDERS = Path("/usr/x86_64-w64-mingw32/include/knownfolders.h")
ROOT = Path("C:/ProgramData/wgdesk")
STATE = ROOT / "state"
SY, BA, BU, USER = "S-1-5-18", "S-1-5-32-544", "S-1-5-32-545", "S-1-5-21-1004336348-1177238915-682003330-1001"
OURS = DIRECTORY_SDDL
"""What the helper creates, as Windows keeps it."""
USER_MADE = (
    f"O:{USER}G:{USER}D:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIID;0x1200a9;;;BU)"
    f"(A;OICIIOID;FA;;;CO)(A;ID;FA;;;{USER})"
)
"""A folder an ordinary user made in ProgramData before the helper ran: theirs, entries inherited."""
INSTALLER_MADE = (
    "O:BAG:SYD:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIID;0x1200a9;;;BU)(A;CIID;0x100116;;;BU)"
)
"""A folder an installer running as Administrator made without a descriptor: inherits ProgramData's,
which lets every user create files in it."""


def security(
    objects: dict[str, str] | None = None, links: set[str] | None = None, busy: set[str] | None = None
) -> FakeFileSecurity:
    return FakeFileSecurity(objects, links, busy)


def checker(fake: FakeFileSecurity) -> Security:
    return Security(fake, fake, attributes=fake.attributes, os_handle=lambda fd: fd + 1000)


def test_the_sddl_gives_system_and_administrators_full_control_inherited_and_protects_it() -> None:
    assert DIRECTORY_SDDL == "O:SYG:SYD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"


def test_program_data_comes_from_the_known_folder_named_in_the_sdk_header() -> None:
    text = KNOWN_FOLDERS.read_text()
    fields = re.search(r"DEFINE_KNOWN_FOLDER\s*\(FOLDERID_ProgramData,([^)]*)\)", text)
    assert fields is not None
    numbers = [int(v, 16) for v in fields.group(1).split(",")]
    header_guid = uuid.UUID(
        fields=(
            numbers[0],
            numbers[1],
            numbers[2],
            numbers[3],
            numbers[4],
            int.from_bytes(bytes(numbers[5:])),
        )
    )
    assert header_guid == directories.FOLDERID_PROGRAMDATA
    shell32, ole32 = FakeShell32(r"D:\Data"), FakeOle32()
    assert program_data(shell32, ole32) == Path(r"D:\Data")
    assert shell32.calls == [("SHGetKnownFolderPath", header_guid.bytes_le, 0, None)]
    assert ole32.freed == [ctypes.addressof(shell32.buffer)]  # the shell's string is freed once


def test_a_failing_known_folder_is_an_error_not_a_default() -> None:
    ole32 = FakeOle32()
    with pytest.raises(PlatformError, match="0x80070002"):
        program_data(FakeShell32("", status=-2147024894), ole32)
    assert ole32.freed == [None]  # CoTaskMemFree(NULL) is documented as harmless; called on every path


def test_the_service_puts_every_file_of_the_helper_under_program_data() -> None:
    service = WindowsService(shell32=FakeShell32(r"C:\ProgramData"), ole32=FakeOle32())
    base = Path(r"C:\ProgramData") / "wgdesk"
    assert service.paths == helper_paths(base)
    assert (service.paths.settings, service.paths.state, service.paths.persistent) == (
        base / "helper.toml",
        base / "state",
        base,
    )
    assert service.paths.lockdown_file == base / "lockdown.json"


def test_a_fresh_machine_gets_both_directories_created_protected_in_order() -> None:
    fake = security()
    checker(fake).prepare(STATE, ROOT)
    what = directories.OWNER_SECURITY_INFORMATION | directories.DACL_SECURITY_INFORMATION
    assert fake.calls == [
        ("CreateDirectory", str(ROOT), OURS),
        ("attributes", str(ROOT)),
        ("GetNamedSecurityInfo", str(ROOT), directories.SE_FILE_OBJECT, what),
        ("CreateDirectory", str(STATE), OURS),
        ("attributes", str(STATE)),
        ("GetNamedSecurityInfo", str(STATE), directories.SE_FILE_OBJECT, what),
    ]


def test_directories_the_helper_made_before_are_accepted() -> None:
    fake = security({str(ROOT): OURS, str(STATE): OURS})
    checker(fake).prepare(STATE, ROOT)
    assert [c[0] for c in fake.calls].count("GetNamedSecurityInfo") == 2


@pytest.mark.parametrize(
    ("sddl", "reason"),
    [
        (USER_MADE, f"its owner is {USER}, not SYSTEM or Administrators"),
        (INSTALLER_MADE, "its DACL is not protected"),
        ("O:SYD:NO_ACCESS_CONTROL", "it has no DACL, which gives everyone full control"),
        (
            "O:SYD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)",
            f"grants access (0x1200a9) to {BU}",
        ),
        ("O:SYD:P(A;OICI;FA;;;SY)(A;OICIIO;FA;;;CO)", "grants access (0x1f01ff) to S-1-3-0"),
    ],
)
def test_a_directory_others_could_change_is_refused_and_left_as_it_is(sddl: str, reason: str) -> None:
    """Refused, not repaired: whoever could write it could have left journals or settings in it."""
    fake = security({str(ROOT): sddl})
    with pytest.raises(PlatformError) as raised:
        checker(fake).prepare(STATE, ROOT)
    message = str(raised.value)
    assert (
        reason in message
        and f'rmdir /s /q "{ROOT}"' in message
        and '"wgdesk-helper.exe --install"' in message
    )
    assert fake.objects == {str(ROOT): sddl}  # nothing changed, nothing created below it
    assert not any(c[0] == "CreateDirectory" and c[1] == str(STATE) for c in fake.calls)


def test_a_state_directory_made_by_someone_else_inside_a_good_root_is_refused() -> None:
    fake = security({str(ROOT): OURS, str(STATE): USER_MADE})
    with pytest.raises(PlatformError, match=re.escape(f"{STATE}: its owner is {USER}")):
        checker(fake).prepare(STATE, ROOT)


def test_a_junction_is_refused_before_its_target_is_looked_at() -> None:
    fake = security(links={str(ROOT)})
    with pytest.raises(PlatformError, match="it is a link"):
        checker(fake).prepare(STATE, ROOT)
    assert not any(c[0] == "GetNamedSecurityInfo" for c in fake.calls)


def test_a_state_directory_outside_program_data_is_prepared_with_the_root_still_checked() -> None:
    elsewhere = Path("D:/wgdesk-state")
    fake = security()
    checker(fake).prepare(elsewhere, ROOT)
    assert [c[1] for c in fake.calls if c[0] == "CreateDirectory"] == [str(ROOT), str(elsewhere)]


def test_deny_entries_and_administrators_as_owner_are_fine() -> None:
    assert unsafe(BA, 0x1000, [(0, 3, 0x1F01FF, SY), (1, 0, 0x1F01FF, "S-1-1-0")], protected=True) is None


def test_a_state_file_inherits_from_the_protected_directory_and_is_trusted() -> None:
    fake = security({"1007": "O:BAD:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)", "1008": f"O:{USER}D:AI(A;ID;FA;;;SY)"})
    check = checker(fake)
    assert check.private_file(7) is None
    assert (
        check.private_file(8)
        == f"its owner is {USER}, not SYSTEM or Administrators (an owner may always change its ACL)"
    )
    what = directories.OWNER_SECURITY_INFORMATION | directories.DACL_SECURITY_INFORMATION
    assert fake.calls == [
        ("GetSecurityInfo", 1007, directories.SE_FILE_OBJECT, what),
        ("GetSecurityInfo", 1008, directories.SE_FILE_OBJECT, what),
    ]


def test_the_service_prepares_under_its_own_root_whatever_the_state_directory() -> None:
    fake = security()
    service = WindowsService(
        shell32=FakeShell32(r"C:\ProgramData"), ole32=FakeOle32(), security=checker(fake)
    )
    service.prepare_directory(service.paths.state)
    root = Path(r"C:\ProgramData") / "wgdesk"
    assert [c[1] for c in fake.calls if c[0] == "CreateDirectory"] == [str(root), str(root / "state")]


def test_the_helper_refuses_to_start_before_reading_settings_from_a_directory_others_own(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The real helper body (`wgdesk.helper.main.run`) with the Windows service on fakes: a
    pre-created ``%ProgramData%\\wgdesk`` stops it with the directory's reason, and its settings file
    (here one that would not even parse) is never read."""
    from types import SimpleNamespace

    from wgdesk.helper import main

    base = Path(r"C:\ProgramData") / "wgdesk"
    fake = security({str(base): USER_MADE})
    service = WindowsService(
        shell32=FakeShell32(r"C:\ProgramData"), ole32=FakeOle32(), security=checker(fake)
    )
    monkeypatch.setattr(main, "backend", lambda: SimpleNamespace(service=service))
    settings = tmp_path / "helper.toml"
    settings.write_text("this is = not toml [\n")
    assert main.run(["--config", str(settings)], None) == 1
    error = capsys.readouterr().err
    assert f"wgdesk-helper: {base}: its owner is {USER}" in error and "helper.toml" not in error
    assert main.build_parser().parse_args([]).state_dir == base / "state"


NOW = datetime(2026, 12, 8, 3, 4, 5, tzinfo=UTC)
ASIDE = Path("C:/ProgramData/wgdesk.untrusted-20261208030405")
WHAT = directories.OWNER_SECURITY_INFORMATION | directories.DACL_SECURITY_INFORMATION


@pytest.mark.parametrize("sddl", [USER_MADE, INSTALLER_MADE, "O:SYD:NO_ACCESS_CONTROL"])
def test_the_installer_moves_a_folder_others_could_change_aside_and_makes_it_anew(sddl: str) -> None:
    """The DoS: a user created ``%ProgramData%\\wgdesk`` (and left a journal in it) before wgdesk
    was installed. ``--install`` checks it, renames it — files and all, nothing deleted — and
    creates the folder and its state directory with the protected descriptor."""
    planted = str(STATE / "wg0.journal")
    fake = security({str(ROOT): sddl, planted: USER_MADE})
    done = checker(fake).reclaim(STATE, ROOT, NOW)
    assert fake.calls == [
        ("attributes", str(ROOT)),
        ("GetNamedSecurityInfo", str(ROOT), directories.SE_FILE_OBJECT, WHAT),
        ("MoveFileEx", str(ROOT), str(ASIDE), 0),  # no REPLACE_EXISTING, no COPY_ALLOWED
        ("CreateDirectory", str(ROOT), DIRECTORY_SDDL),
        ("attributes", str(ROOT)),
        ("GetNamedSecurityInfo", str(ROOT), directories.SE_FILE_OBJECT, WHAT),
        ("attributes", str(STATE)),
        ("CreateDirectory", str(STATE), DIRECTORY_SDDL),
        ("attributes", str(STATE)),
        ("GetNamedSecurityInfo", str(STATE), directories.SE_FILE_OBJECT, WHAT),
    ]
    assert fake.objects == {
        str(ASIDE): sddl,
        str(ASIDE / "state" / "wg0.journal"): USER_MADE,  # the user's files kept, as they were
        str(ROOT): DIRECTORY_SDDL,
        str(STATE): DIRECTORY_SDDL,
    }
    reason = unsafe_reason(sddl)
    assert done == [f"moved {ROOT} aside to {ASIDE} ({reason}); created it anew", f"created {STATE}"]
    checker(fake).prepare(STATE, ROOT)  # and the service now starts from it


def unsafe_reason(sddl: str) -> str:
    fake = security({"x": sddl})
    reason = checker(fake)._problem(Path("x"))
    assert reason is not None
    return reason


def test_the_installer_leaves_a_sound_folder_and_what_is_in_it_untouched() -> None:
    """An upgrade: the folder the helper made, with the administrator's settings and journals."""
    objects = {str(ROOT): OURS, str(STATE): OURS, str(ROOT / "helper.toml"): "O:BAD:AI(A;ID;FA;;;SY)"}
    fake = security(objects)
    done = checker(fake).reclaim(STATE, ROOT, NOW)
    assert fake.objects == objects
    assert not any(c[0] == "MoveFileEx" for c in fake.calls)
    assert [c[0] for c in fake.calls if c[0] == "CreateDirectory"] == ["CreateDirectory"] * 2  # both exist
    assert done == [f"kept {p}: its owner and permissions are sound" for p in (ROOT, STATE)]


def test_the_installer_creates_the_folder_on_a_fresh_machine() -> None:
    fake = security()
    assert checker(fake).reclaim(STATE, ROOT, NOW) == [f"created {ROOT}", f"created {STATE}"]
    assert fake.objects == {str(ROOT): DIRECTORY_SDDL, str(STATE): DIRECTORY_SDDL}


def test_a_junction_is_renamed_itself_and_its_target_is_never_looked_at() -> None:
    """A junction ``%ProgramData%\\wgdesk`` → ``C:\\Windows\\System32\\config``: the link is moved
    aside (``MoveFileEx`` renames a link, not its target), the target's descriptor is neither read
    nor changed, and nothing is created inside it."""
    target = "C:/Windows/System32/config"
    fake = security({target: "O:SYD:P(A;OICI;FA;;;SY)"}, links={str(ROOT)})
    done = checker(fake).reclaim(STATE, ROOT, NOW)
    assert fake.calls[:3] == [
        ("attributes", str(ROOT)),
        ("MoveFileEx", str(ROOT), str(ASIDE), 0),
        ("CreateDirectory", str(ROOT), DIRECTORY_SDDL),
    ]
    assert fake.links == {str(ASIDE)}
    assert fake.objects == {target: "O:SYD:P(A;OICI;FA;;;SY)", str(ROOT): OURS, str(STATE): OURS}
    assert not any(c[0] == "GetNamedSecurityInfo" and c[1] in (target, str(ASIDE)) for c in fake.calls)
    assert done[0].startswith(f"moved {ROOT} aside to {ASIDE} (it is a link")


def test_a_name_taken_in_advance_gets_a_random_suffix_rather_than_blocking_the_move() -> None:
    """A user who guesses the install time could create ``wgdesk.untrusted-<that time>`` first."""
    fake = security({str(ROOT): USER_MADE, str(ASIDE): USER_MADE})
    checker(fake).reclaim(STATE, ROOT, NOW)
    moves = [c for c in fake.calls if c[0] == "MoveFileEx"]
    assert moves[0] == ("MoveFileEx", str(ROOT), str(ASIDE), 0)
    assert re.fullmatch(re.escape(str(ASIDE)) + r"-[0-9a-f]{8}", moves[1][2]) and moves[1][3] == 0
    assert fake.objects == {
        str(ASIDE): USER_MADE,
        moves[1][2]: USER_MADE,
        str(ROOT): DIRECTORY_SDDL,
        str(STATE): DIRECTORY_SDDL,
    }


def test_a_folder_that_cannot_be_renamed_is_refused_and_nothing_is_created() -> None:
    """A handle open inside it (``ERROR_SHARING_VIOLATION``): the install step fails, the folder
    stays as it was, and the service keeps refusing it."""
    fake = security({str(ROOT): USER_MADE}, busy={str(ROOT)})
    with pytest.raises(PlatformError, match=re.escape(f"cannot move {ROOT} aside to {ASIDE}")):
        checker(fake).reclaim(STATE, ROOT, NOW)
    assert fake.objects == {str(ROOT): USER_MADE}
    assert not any(c[0] == "CreateDirectory" for c in fake.calls)
    with pytest.raises(PlatformError, match="its owner is"):
        checker(fake).prepare(STATE, ROOT)


def test_a_folder_recreated_by_someone_else_after_the_move_is_refused() -> None:
    """The race: a user creates the folder again between the rename and ``CreateDirectory``."""
    fake = security({str(ROOT): USER_MADE})
    create = fake.CreateDirectory

    def raced(name: str, attributes: object) -> None:
        if name == str(ROOT) and str(ROOT) not in fake.objects:
            fake.objects[str(ROOT)] = USER_MADE
        create(name, attributes)

    fake.CreateDirectory = raced  # type: ignore[method-assign]
    with pytest.raises(PlatformError, match=re.escape(f"{ROOT}: its owner is {USER}")):
        checker(fake).reclaim(STATE, ROOT, NOW)
    assert str(STATE) not in fake.objects


def test_the_service_start_path_never_moves_or_repairs_anything() -> None:
    fake = security({str(ROOT): USER_MADE})
    with pytest.raises(PlatformError):
        checker(fake).prepare(STATE, ROOT)
    assert not any(c[0] == "MoveFileEx" for c in fake.calls)


def test_wgdesk_helper_install_is_the_entry_point(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``wgdesk-helper --install`` (the real entry point, the real Windows service object) under
    the ProgramData the shell names: moves the user's folder aside, prints what it did, status 0."""
    from types import SimpleNamespace

    from wgdesk.helper import main
    from wgdesk.platforms.windows import install

    base = Path(r"C:\ProgramData") / "wgdesk"
    fake = security({str(base): USER_MADE})
    service = WindowsService(
        shell32=FakeShell32(r"C:\ProgramData"), ole32=FakeOle32(), security=checker(fake)
    )
    monkeypatch.setattr(main, "backend", lambda: SimpleNamespace(service=service))
    monkeypatch.setattr(install, "datetime", SimpleNamespace(now=lambda tz: NOW))
    assert main.main(["--install"]) == 0
    aside = Path(r"C:\ProgramData") / "wgdesk.untrusted-20261208030405"
    assert capsys.readouterr().out.splitlines() == [
        f"moved {base} aside to {aside} (its owner is {USER}, not SYSTEM or Administrators (an owner may "
        "always change its ACL)); created it anew",
        f"created {base / 'state'}",
    ]
    assert fake.objects == {
        str(aside): USER_MADE,
        str(base): DIRECTORY_SDDL,
        str(base / "state"): DIRECTORY_SDDL,
    }


def test_install_refuses_without_elevation_and_on_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from wgdesk.platforms.windows import install

    base = Path(r"C:\ProgramData") / "wgdesk"
    fake = security({str(base): USER_MADE}, busy={str(base)})
    service = WindowsService(
        shell32=FakeShell32(r"C:\ProgramData"), ole32=FakeOle32(), security=checker(fake)
    )
    assert install.main(service, lambda: service.security, lambda: NOW) == 1
    assert capsys.readouterr().err.startswith(f"wgdesk-helper --install: cannot move {base} aside")
    monkeypatch.setattr(FakeShell32, "IsUserAnAdmin", lambda self: 0)
    fake.calls.clear()
    assert install.main(service, lambda: service.security, lambda: NOW) == 1
    assert "must run as Administrator" in capsys.readouterr().err and fake.calls == []
