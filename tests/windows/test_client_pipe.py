"""`wgdesk.client.HelperClient` on Windows: the real client and the real `WindowsPlatform` control
endpoint, pywin32 faked (a scripted helper on the pipe). The client finds the pipe by default,
sends its request line, reads the reply — and refuses, with nothing sent, a pipe the helper does not
own (a name grabbed before the helper started)."""

from __future__ import annotations

import json

import pytest

from tests.windows.fake_windows import USER, FakeClient
from wgdesk import client, platforms
from wgdesk.platforms.windows import WindowsPlatform, pipes
from wgdesk.platforms.windows.pipe_connection import ERROR_BROKEN_PIPE, FILE_FLAG_OVERLAPPED, Win32


def on_windows(monkeypatch: pytest.MonkeyPatch, fake: FakeClient) -> None:
    monkeypatch.setattr(Win32, "load", classmethod(lambda cls: fake.bundle()))
    backend = WindowsPlatform()
    monkeypatch.setattr(platforms, "backend", lambda: backend)
    monkeypatch.delenv("WGDESK_SOCKET", raising=False)


def test_the_client_talks_to_the_helper_on_the_control_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeClient()
    on_windows(monkeypatch, fake)
    fake.incoming.extend([b'{"v":1,"id":1,"ok":true,"result":{"version":"1.2.3"}}\n', ERROR_BROKEN_PIPE])
    helper = client.HelperClient(timeout=3)
    assert helper.socket_path == pipes.CONTROL_PIPE == r"\\.\pipe\wgdesk-helper"
    assert helper.version() == {"version": "1.2.3"}
    helper.close()
    assert fake.calls[:3] == [
        ("WaitNamedPipe", pipes.CONTROL_PIPE, 3000),
        ("CreateFile", pipes.CONTROL_PIPE, 0xC0000000, 0, 3, FILE_FLAG_OVERLAPPED),
        ("GetSecurityInfo", "client", pipes.SE_KERNEL_OBJECT, pipes.OWNER_SECURITY_INFORMATION),
    ]
    sent = json.loads(b"".join(fake.written))
    assert sent == {"v": 1, "id": 1, "verb": "version", "args": {}}
    assert ("CloseHandle", "client") in fake.calls


@pytest.mark.parametrize("owner", [pipes.ADMINISTRATORS_SID, pipes.SYSTEM_SID])
def test_a_pipe_owned_by_localsystem_or_administrators_is_the_helper(
    monkeypatch: pytest.MonkeyPatch, owner: str
) -> None:
    fake = FakeClient(owner=owner)
    on_windows(monkeypatch, fake)
    fake.incoming.append(b'{"v":1,"id":1,"ok":true,"result":{"tunnels":[]}}\n')
    assert client.HelperClient(timeout=1).status() == []


def test_a_pipe_someone_else_owns_gets_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeClient(owner=USER)
    on_windows(monkeypatch, fake)
    with pytest.raises(client.HelperUnavailable) as refused:
        client.HelperClient(timeout=1).up("home", "[Interface]\nPrivateKey = secret\n")
    assert refused.value.code == "untrusted"
    assert "not by root" in refused.value.message
    assert fake.written == [], "not a byte sent to an impostor"
    assert ("CloseHandle", "client") in fake.calls


def test_no_helper_and_a_refused_user_are_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    on_windows(monkeypatch, FakeClient(missing=True))
    with pytest.raises(client.HelperUnavailable) as missing:
        client.HelperClient(timeout=1).version()
    assert missing.value.code == "unavailable" and "sc.exe start wgdesk-helper" in missing.value.message
    on_windows(monkeypatch, FakeClient(denied=True))
    with pytest.raises(client.HelperPermissionDenied) as denied:
        client.HelperClient(timeout=1).version()
    assert denied.value.code == "denied"
