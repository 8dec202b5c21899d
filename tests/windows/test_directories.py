"""The helper's directories on Windows (`wgdesk.platforms.windows.directories`): found through the
shell's known folder, created with a protected descriptor, and refused — never repaired — when others
could change them.

The fakes (`fake_windows.FakeFileSecurity`, `FakeShell32`, `FakeOle32`) are hand-written from
Microsoft's documentation and pywin32's source, as are the descriptors below (ProgramData's subfolder
as a user creates it: owner that user, entries inherited from ProgramData); none was read from a
Windows machine. ``FOLDERID_ProgramData`` is read from mingw-w64's ``knownfolders.h``."""

from __future__ import annotations

import ctypes
import re
import uuid
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


def security(objects: dict[str, str] | None = None, links: set[str] | None = None) -> FakeFileSecurity:
    return FakeFileSecurity(objects, links)


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
    assert reason in message and f'rmdir /s /q "{ROOT}"' in message
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
