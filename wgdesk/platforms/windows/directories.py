"""The helper's directories on Windows: ``%ProgramData%\\wgdesk``, which only SYSTEM and the
Administrators may change.

The helper runs as LocalSystem and trusts what it reads there: its settings (``helper.toml``), the
undo journals it replays after a crash (``state``), the lockdown choice. The UNIX defaults
(``/run/wgdesk``) would become ``C:\\run\\wgdesk`` — a folder under ``C:\\`` that any user may create
first and fill — so the place comes from the shell's known folder ``FOLDERID_ProgramData``
(`program_data`, ``SHGetKnownFolderPath``; not ``%ProgramData%``, an environment variable), and every
directory is created with a protected descriptor (`DIRECTORY_SDDL`: SYSTEM and Administrators full
control, inherited by what is created inside, nothing inherited from ``ProgramData``, whose ACL lets
every user create folders and files).

A directory that already exists is verified (`unsafe`), never repaired by the service: it is refused
unless it is no link (a junction could lead anywhere), its owner is SYSTEM or Administrators (an
owner may always rewrite the ACL), its DACL is protected and no entry grants anything to another
account. Repairing would not be enough: whoever could write the directory could have left files in
it — a journal that makes SYSTEM "undo" changes of their choosing, a ``helper.toml`` with
``allow_scripts`` — and mending the ACL does not make those trustworthy. The helper stops with an
error instead (the service reports the failure, `service_host`) that says how to mend it.

The mending is the installer's (`reclaim`, ``wgdesk-helper --install``, run elevated before the
service starts): any user can create ``%ProgramData%\\wgdesk`` before wgdesk is installed, which would
keep the helper from ever starting. A directory that fails the check is moved aside — renamed, within
its parent, to ``NAME.untrusted-YYYYMMDDHHMMSS`` (UTC; a random suffix when that name is taken, so a
name guessed in advance cannot block the move), never deleted: the files are someone's — with
``MoveFileEx`` and no flags: no replacing, no copying across volumes, and a junction or symbolic
link is itself renamed, not followed (Microsoft's "Symbolic Link Effects on File Systems
Functions"). Then it is created anew with `DIRECTORY_SDDL` and verified like any other. When the
rename fails (a handle open inside it, for one) nothing is created and the install step fails.

Each state file the helper reads is held to the same rule (`Security.private_file`), minus the
protection: a file inherits its entries from the protected directory.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from wgdesk.platforms.errors import PlatformError
from wgdesk.platforms.interface import HelperPaths
from wgdesk.platforms.windows import dlls
from wgdesk.platforms.windows.pipes import ADMINISTRATORS_SID, SDDL_REVISION_1, SYSTEM_SID
from wgdesk.platforms.windows.wintun import guid_struct

FOLDERID_PROGRAMDATA = uuid.UUID("62ab5d82-fdc1-4dc3-a9dd-070d1d495d97")
"""``FOLDERID_ProgramData`` (``knownfolders.h``): ``C:\\ProgramData`` unless the machine moved it."""
KF_FLAG_DEFAULT = 0
S_OK = 0
DIRECTORY_SDDL = "O:SYG:SYD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"
"""Owner SYSTEM; protected DACL (``P``: nothing inherited from above); full access (``FA``) for SYSTEM
and Administrators, inherited by subfolders and files (``OICI``); nothing for anyone else."""
TRUSTED_SIDS = frozenset({SYSTEM_SID, ADMINISTRATORS_SID})
SE_FILE_OBJECT = 1
OWNER_SECURITY_INFORMATION = 0x00000001
DACL_SECURITY_INFORMATION = 0x00000004
SE_DACL_PROTECTED = 0x1000
ACCESS_DENIED_ACE_TYPE = 0x1
FILE_ATTRIBUTE_REPARSE_POINT = 0x400
ERROR_ALREADY_EXISTS = 183
ERROR_FILE_EXISTS = 80
MOVEFILE_NO_FLAGS = 0
"""``MoveFileEx`` flags for moving a directory aside: neither ``MOVEFILE_REPLACE_EXISTING`` nor
``MOVEFILE_COPY_ALLOWED`` nor a delay (a rename in place, or a failure)."""
HEADER_CONSTANTS = {
    "KF_FLAG_DEFAULT": KF_FLAG_DEFAULT,
    "SE_FILE_OBJECT": SE_FILE_OBJECT,
    "OWNER_SECURITY_INFORMATION": OWNER_SECURITY_INFORMATION,
    "DACL_SECURITY_INFORMATION": DACL_SECURITY_INFORMATION,
    "SE_DACL_PROTECTED": SE_DACL_PROTECTED,
    "ACCESS_DENIED_ACE_TYPE": ACCESS_DENIED_ACE_TYPE,
    "FILE_ATTRIBUTE_REPARSE_POINT": FILE_ATTRIBUTE_REPARSE_POINT,
    "ERROR_ALREADY_EXISTS": ERROR_ALREADY_EXISTS,
    "ERROR_FILE_EXISTS": ERROR_FILE_EXISTS,
}
"""Checked against the mingw-w64 headers (tests/windows)."""

Ace = tuple[int, int, int, str]
"""One DACL entry as `unsafe` reads it: (type, flags, access mask, SID string)."""


def program_data(shell32: Any, ole32: Any) -> Path:
    """The ``ProgramData`` folder as the shell knows it (``SHGetKnownFolderPath``; the string it
    returns is freed with ``CoTaskMemFree``). Raises `PlatformError`."""
    found = ctypes.c_void_p()
    status = shell32.SHGetKnownFolderPath(
        ctypes.byref(guid_struct(FOLDERID_PROGRAMDATA)), KF_FLAG_DEFAULT, None, ctypes.byref(found)
    )
    try:
        if status != S_OK or not found.value:
            raise PlatformError(f"cannot find the ProgramData folder (HRESULT {status & 0xFFFFFFFF:#010x})")
        return Path(ctypes.wstring_at(found.value))
    finally:
        ole32.CoTaskMemFree(found)


def helper_paths(root: Path) -> HelperPaths:
    """The helper's files under ``root`` (``%ProgramData%\\wgdesk``): the settings and what must
    persist in it, the runtime state (journals) in ``state`` (Windows has no tmpfs: it persists)."""
    return HelperPaths(settings=root / "helper.toml", state=root / "state", persistent=root)


def unsafe(owner: str, control: int, aces: Sequence[Ace] | None, protected: bool) -> str | None:
    """Why an object with this owner SID, descriptor control bits and DACL (None: a NULL DACL) may
    be changed by someone other than SYSTEM and Administrators; None when it cannot. ``protected``:
    also require a protected DACL (a directory: it must not take entries from its parent)."""
    if owner not in TRUSTED_SIDS:
        return f"its owner is {owner}, not SYSTEM or Administrators (an owner may always change its ACL)"
    if aces is None:
        return "it has no DACL, which gives everyone full control"
    if protected and not control & SE_DACL_PROTECTED:
        return "its DACL is not protected: it takes entries from the folder above"
    for kind, _flags, mask, sid in aces:
        if kind != ACCESS_DENIED_ACE_TYPE and sid not in TRUSTED_SIDS and mask:
            return f"its DACL grants access ({mask:#x}) to {sid}"
    return None


def _chain(path: Path, root: Path) -> list[Path]:
    """``root`` and every directory from it down to ``path`` (only ``path`` when it is not under
    ``root``), outermost first."""
    chain = [root]
    if path.is_relative_to(root):
        parts = path.relative_to(root).parts
        chain += [root.joinpath(*parts[: n + 1]) for n in range(len(parts))]
    else:
        chain.append(path)
    return chain


def _file_attributes(path: Path) -> int:
    return int(getattr(os.lstat(path), "st_file_attributes", 0))


def _os_handle(fd: int) -> int:
    import msvcrt

    return msvcrt.get_osfhandle(fd)


class Security:
    """Creating and checking the helper's directories and files (``win32security``/``win32file``:
    pywin32's modules, or fakes; ``attributes``: a path's file attributes, not following a link;
    ``os_handle``: the Windows handle of a file descriptor)."""

    def __init__(
        self,
        win32security: Any,
        win32file: Any,
        attributes: Callable[[Path], int] = _file_attributes,
        os_handle: Callable[[int], int] = _os_handle,
    ) -> None:
        self.win32security = win32security
        self.win32file = win32file
        self.attributes = attributes
        self.os_handle = os_handle

    def prepare(self, path: Path, root: Path) -> None:
        """Create or verify ``root`` and every directory from it down to ``path`` (only ``path``
        when it is not under ``root``). Raises `PlatformError`."""
        for directory in _chain(path, root):
            self._create(directory)
            self._verify(directory)

    def reclaim(self, path: Path, root: Path, now: datetime) -> list[str]:
        """`prepare`, except that a directory of the chain that exists and fails the check is first
        moved aside (module docstring; ``now``: the time its new name carries). Only for the
        elevated installer: the service never trusts a directory it did not verify. Returns what was
        done, for the installer's log. Raises `PlatformError` (what was moved aside stays moved)."""
        done = []
        for directory in _chain(path, root):
            try:
                reason = self._problem(directory)
            except FileNotFoundError:
                done.append(f"created {directory}")
            else:
                if reason is None:
                    done.append(f"kept {directory}: its owner and permissions are sound")
                else:
                    aside = self._move_aside(directory, now)
                    done.append(f"moved {directory} aside to {aside} ({reason}); created it anew")
            self._create(directory)
            self._verify(directory)
        return done

    def private_file(self, fd: int) -> str | None:
        """`unsafe` for the open file ``fd`` (its handle: the file that was opened, not a name)."""
        descriptor = self.win32security.GetSecurityInfo(
            self.os_handle(fd), SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION
        )
        return self._unsafe(descriptor, protected=False)

    def _create(self, directory: Path) -> None:
        attributes = self.win32security.SECURITY_ATTRIBUTES()
        attributes.SECURITY_DESCRIPTOR = (
            self.win32security.ConvertStringSecurityDescriptorToSecurityDescriptor(
                DIRECTORY_SDDL, SDDL_REVISION_1
            )
        )
        try:
            self.win32file.CreateDirectory(str(directory), attributes)
        except Exception as e:
            if getattr(e, "winerror", None) != ERROR_ALREADY_EXISTS:
                raise PlatformError(
                    f"cannot create {directory}: {dlls.describe(getattr(e, 'winerror', 0))}"
                ) from e

    def _problem(self, directory: Path) -> str | None:
        if self.attributes(directory) & FILE_ATTRIBUTE_REPARSE_POINT:
            return "it is a link (junction or symbolic link), which could lead anywhere"
        descriptor = self.win32security.GetNamedSecurityInfo(
            str(directory), SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION
        )
        return self._unsafe(descriptor, protected=True)

    def _move_aside(self, directory: Path, now: datetime) -> Path:
        """Rename ``directory`` (itself, were it a link) to a new name beside it, with a random
        suffix when that name is taken; raises `PlatformError` when it cannot."""
        aside = directory.with_name(f"{directory.name}.untrusted-{now:%Y%m%d%H%M%S}")
        if not self._rename(directory, aside):
            aside = aside.with_name(f"{aside.name}-{secrets.token_hex(4)}")
            if not self._rename(directory, aside):
                raise PlatformError(f"cannot move {directory} aside: {aside} exists as well")
        return aside

    def _rename(self, directory: Path, aside: Path) -> bool:
        """``MoveFileEx`` without flags; False when ``aside`` exists."""
        try:
            self.win32file.MoveFileEx(str(directory), str(aside), MOVEFILE_NO_FLAGS)
        except Exception as e:
            code = getattr(e, "winerror", 0)
            if code in (ERROR_ALREADY_EXISTS, ERROR_FILE_EXISTS):
                return False
            raise PlatformError(
                f"cannot move {directory} aside to {aside}: {dlls.describe(code)}. Nothing was "
                "created: close what uses the folder (or restart Windows) and run the installer again, "
                "or delete the folder as Administrator"
            ) from e
        return True

    def _verify(self, directory: Path) -> None:
        reason = self._problem(directory)
        if reason is not None:
            raise PlatformError(
                f"{directory}: {reason}. The helper keeps its settings and the journals it replays as "
                "SYSTEM there, so it does not start while others could change them. As Administrator, "
                'run "wgdesk-helper.exe --install" from wgdesk\'s folder (what the installer runs: it '
                "moves the folder aside and creates it anew with the right permissions), or delete the "
                f'folder (rmdir /s /q "{directory}"), and start the service again'
            )

    def _unsafe(self, descriptor: Any, protected: bool) -> str | None:
        owner = str(self.win32security.ConvertSidToStringSid(descriptor.GetSecurityDescriptorOwner()))
        control, _revision = descriptor.GetSecurityDescriptorControl()
        dacl = descriptor.GetSecurityDescriptorDacl()
        aces: list[Ace] | None = None
        if dacl is not None:
            aces = []
            for index in range(dacl.GetAceCount()):
                entry = dacl.GetAce(index)  # ((type, flags), mask, [object GUIDs,] SID)
                (kind, flags), mask, sid = entry[0], entry[1], entry[-1]
                aces.append(
                    (int(kind), int(flags), int(mask), str(self.win32security.ConvertSidToStringSid(sid)))
                )
        return unsafe(owner, int(control), aces, protected)
