"""The WFP kill switch: the filter plan as data (golden files under tests/windows/golden/, regenerated
with WGDESK_REGOLD=1 and reviewed as a diff), and the ``fwpuclnt`` call sequence against a fake that
decodes every filter back from its C structures: commit on success, abort on any failure, the old
plan replaced inside the same transaction."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.windows.fake_windows import DllShim, FakeFwpuclnt
from wgdesk.platforms.windows import wfp
from wgdesk.platforms.windows.wfp_plan import LAYERS, Plan, TunnelRules, plan

GOLDEN = Path(__file__).parent / "golden"
ENGINE = r"C:\Program Files\wgdesk\wgdesk-engine.exe"
LUID = 0x0006_0000_0123_4567
OFFICE = TunnelRules("wg-office", LUID, ("10.7.0.1", "fd00::1"))
HOME = TunnelRules("wg-home", LUID + 1, ("192.168.77.1",))


def golden(name: str, data: dict[str, Any]) -> None:
    """One line per filter, so a change reads as a diff of rules."""
    path = GOLDEN / name
    head = {k: v for k, v in data.items() if k != "filters"}
    text = "\n".join([json.dumps(head), *(json.dumps(f) for f in data["filters"])]) + "\n"
    if os.environ.get("WGDESK_REGOLD"):
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with WGDESK_REGOLD=1 and review it"
    assert text == path.read_text(), f"{name} changed: review, then regenerate with WGDESK_REGOLD=1"


def test_kill_switch_plan_is_the_golden_one() -> None:
    golden(
        "kill-switch.json",
        plan("kill-switch", ENGINE, [OFFICE, HOME], lan=["192.168.1.0/24", "fd12::/48"]).as_data(),
    )


def test_lockdown_plan_is_the_golden_one() -> None:
    golden("lockdown.json", plan("lockdown", ENGINE, [OFFICE]).as_data())


def test_plan_properties_that_must_hold_whatever_the_golden_file_says() -> None:
    p = plan("kill-switch", ENGINE, [OFFICE])
    blocks = [f for f in p.filters if f.action == "block" and not f.conditions]
    assert {f.layer for f in blocks} == set(LAYERS) and all(f.weight == 0 for f in blocks)
    dns_permit = [f for f in p.filters if f.name.startswith("permit DNS")]
    dns_block = [f for f in p.filters if f.name == "block DNS elsewhere"]
    assert dns_permit and dns_block
    assert min(f.weight for f in dns_permit) > max(f.weight for f in dns_block)
    assert max(f.weight for f in dns_block) > max(
        f.weight for f in p.filters if f.name.startswith("permit tunnel")
    )
    assert len({f.key for f in p.filters}) == len(p.filters)
    assert plan("kill-switch", ENGINE, [OFFICE]) == p, "keys and order must be stable"
    assert not any(f.boot_time for f in p.filters)
    assert all(f.boot_time for f in plan("lockdown", ENGINE, []).filters if f.name.startswith("boot:"))
    with pytest.raises(ValueError):
        plan("kill-switch", ENGINE, [TunnelRules("x", 1, ("dns.example",))])


CARRIED = {"v4_address": "uint32"}
"""An IPv4 address travels as FWP_UINT32 (host order)."""
SAME_KEY = {"ICMP_TYPE": "IP_LOCAL_PORT"}
"""fwpmu.h defines FWPM_CONDITION_ICMP_TYPE as FWPM_CONDITION_IP_LOCAL_PORT."""


def decoded(p: Plan) -> list[dict[str, object]]:
    """The plan's filters as the fake decodes them from C (the app ID as the device path)."""
    out = []
    for f in p.as_data()["filters"]:
        conditions = [
            [
                SAME_KEY.get(field, field),
                match,
                CARRIED.get(kind, kind),
                ("\\device\\" + value) if kind == "app_id" else value,
            ]
            for field, match, kind, value in f["conditions"]
        ]
        flags = wfp.FWPM_FILTER_FLAG_BOOTTIME if f.get("boot_time") else int(p.persistent)
        out.append(
            {
                "key": f["key"],
                "name": "wgdesk: " + f["name"],
                "flags": flags,
                "provider": p.provider_key,
                "layer": f["layer"],
                "sublayer": p.sublayer_key,
                "weight": f["weight"],
                "action": f["action"],
                "conditions": conditions,
            }
        )
    return out


def test_a_dynamic_session_adds_provider_sublayer_filters_in_one_committed_transaction() -> None:
    """The mechanism without persistence (a plan made non-persistent): nothing to replace, so no
    enumeration and no deletes — only adds between begin and commit."""
    fake = FakeFwpuclnt()
    p = plan("kill-switch", ENGINE, [OFFICE], lan=["192.168.1.0/24", "fd12::/48"])
    p = Plan("dynamic", p.provider_key, p.sublayer_key, p.filters)
    engine = wfp.FilterEngine(fake, dynamic=True)
    engine.apply(p)
    assert fake.session_flags == wfp.FWPM_SESSION_FLAG_DYNAMIC
    n = len(p.filters)
    engine_filters = [i for i, f in enumerate(p.filters) if f.name == "permit the engine"]
    expected = ["FwpmEngineOpen0", "FwpmTransactionBegin0", "FwpmProviderAdd0", "FwpmSubLayerAdd0"]
    expected += ["FwpmFilterAdd0"] * engine_filters[0]
    expected += ["FwpmGetAppIdFromFileName0"] + ["FwpmFilterAdd0"] * (n - engine_filters[0])
    expected += ["FwpmTransactionCommit0", "FwpmFreeMemory0"]
    assert fake.calls == expected
    assert fake.provider == (p.provider_key, 0)
    assert fake.sublayer == (p.sublayer_key, 0, 0xFFFF, p.provider_key)
    assert {f["flags"] for f in fake.added} == {0}
    assert len(fake.freed) == 1 and fake.freed[0] in fake.app_blobs


def test_the_kill_switch_is_persistent_and_replaces_what_is_in_place_in_one_transaction() -> None:
    """Applied without a previous plan (a new helper): the filters of its provider are enumerated
    inside the transaction and deleted — its own keys first — before the plan is added; another
    program's filters (another provider, or none) are not touched."""
    fake = FakeFwpuclnt()
    p = plan("kill-switch", ENGINE, [OFFICE], lan=["192.168.1.0/24", "fd12::/48"])
    fake.foreign = {
        "00000000-0000-0000-0000-0000000000aa": None,
        "00000000-0000-0000-0000-0000000000bb": p.sublayer_key,  # a GUID that is not our provider
    }
    wfp.FilterEngine(fake, dynamic=False).apply(p)
    assert fake.session_flags == 0
    n = len(p.filters)
    engine_filters = [i for i, f in enumerate(p.filters) if f.name == "permit the engine"]
    expected = ["FwpmEngineOpen0", "FwpmTransactionBegin0"]
    expected += ["FwpmFilterCreateEnumHandle0", "FwpmFilterEnum0", "FwpmFreeMemory0"]
    expected += ["FwpmFilterDestroyEnumHandle0"] + ["FwpmFilterDeleteByKey0"] * n
    expected += ["FwpmProviderAdd0", "FwpmSubLayerAdd0"] + ["FwpmFilterAdd0"] * engine_filters[0]
    expected += ["FwpmGetAppIdFromFileName0"] + ["FwpmFilterAdd0"] * (n - engine_filters[0])
    expected += ["FwpmTransactionCommit0", "FwpmFreeMemory0"]
    assert fake.calls == expected
    assert fake.deleted == [f.key for f in p.filters], "only its own keys: nothing of another program"
    assert fake.provider == (p.provider_key, wfp.FWPM_PROVIDER_FLAG_PERSISTENT)
    assert fake.sublayer == (p.sublayer_key, wfp.FWPM_SUBLAYER_FLAG_PERSISTENT, 0xFFFF, p.provider_key)
    assert fake.added == decoded(p), "what reached the DLL is not the plan"
    assert {f["flags"] for f in fake.added} == {wfp.FWPM_FILTER_FLAG_PERSISTENT}, "no boot-time filters"


def test_a_kill_switch_left_by_a_crashed_helper_is_replaced_whole() -> None:
    """The old helper protected wg-office and wg-home; the new one knows only wg-office (the journal
    of the other was gone). Everything of the old plan goes in the transaction that adds the new one,
    found by enumeration in batches — also the wg-home filters no key of the new plan names."""
    fake = FakeFwpuclnt()
    old = plan("kill-switch", ENGINE, [OFFICE, HOME])
    wfp.FilterEngine(fake, dynamic=False).apply(old)
    assert fake.present == {f.key for f in old.filters}
    fake.foreign = {f"00000000-0000-0000-0000-{i:012x}": None for i in range(300)}  # two batches and more
    fake.calls.clear()
    fake.deleted.clear()
    new = plan("kill-switch", ENGINE, [OFFICE])
    wfp.FilterEngine(fake, dynamic=False).apply(new)
    assert fake.present == {f.key for f in new.filters}
    stale = {f.key for f in old.filters} - {f.key for f in new.filters}
    assert stale and any("wg-home" in f.name for f in old.filters if f.key in stale)
    assert set(fake.deleted) == {f.key for f in old.filters} | {f.key for f in new.filters}
    assert fake.calls.count("FwpmFilterEnum0") == 2 and fake.calls.count("FwpmFilterDestroyEnumHandle0") == 1
    begin, commit = fake.calls.index("FwpmTransactionBegin0"), fake.calls.index("FwpmTransactionCommit0")
    assert begin < fake.calls.index("FwpmFilterCreateEnumHandle0") < commit


def test_enumeration_failure_aborts_and_still_destroys_the_handle() -> None:
    fake = FakeFwpuclnt()
    fake.fail["FwpmFilterEnum0"] = (1, 0x80320011)
    with pytest.raises(wfp.FilterError, match="FwpmFilterEnum0 failed"):
        wfp.FilterEngine(fake, dynamic=False).apply(plan("kill-switch", ENGINE, [OFFICE]))
    assert fake.calls[-2:] == ["FwpmFilterDestroyEnumHandle0", "FwpmTransactionAbort0"]
    assert "FwpmFilterAdd0" not in fake.calls


def test_every_fwpuclnt_function_called_has_its_c_signature() -> None:
    """ctypes' defaults would return a signed int (FWP_E_* codes have the top bit set: no tolerated
    status would match) and truncate 64-bit handles: every function the engine calls is declared."""
    import ctypes

    fake = FakeFwpuclnt()
    engine = wfp.FilterEngine(fake, dynamic=False)
    engine.apply(plan("lockdown", ENGINE, [OFFICE]))
    engine.has_filter(plan("lockdown", ENGINE, []).filters[0].key)
    engine.remove(plan("kill-switch", ENGINE, [OFFICE]))
    engine.close()
    assert set(fake.calls) <= set(wfp.SIGNATURES)
    for name, (restype, argtypes) in wfp.SIGNATURES.items():
        assert restype in (ctypes.c_uint32, None), name
        assert ctypes.c_int not in argtypes and ctypes.c_long not in argtypes, name
    configured = wfp.configure(DllShim(fake))
    assert configured.FwpmFilterEnum0.restype is ctypes.c_uint32
    assert configured.FwpmFilterEnum0.argtypes[2] is ctypes.c_uint32


def test_lockdown_objects_are_persistent_and_boot_time_filters_flagged() -> None:
    fake = FakeFwpuclnt()
    p = plan("lockdown", ENGINE, [OFFICE])
    wfp.FilterEngine(fake, dynamic=False).apply(p)
    assert fake.session_flags == 0
    assert fake.provider == (p.provider_key, wfp.FWPM_PROVIDER_FLAG_PERSISTENT)
    assert fake.sublayer is not None and fake.sublayer[1] == wfp.FWPM_SUBLAYER_FLAG_PERSISTENT
    assert fake.added == decoded(p)
    assert {f["flags"] for f in fake.added} == {
        wfp.FWPM_FILTER_FLAG_PERSISTENT,
        wfp.FWPM_FILTER_FLAG_BOOTTIME,
    }


def test_a_failing_filter_aborts_the_transaction_and_names_the_filter() -> None:
    fake = FakeFwpuclnt()
    p = plan("kill-switch", ENGINE, [OFFICE])
    fake.fail["FwpmFilterAdd0"] = (5, 0x80320013)
    with pytest.raises(
        wfp.FilterError, match=rf"adding filter '{p.filters[4].name}' \({p.filters[4].layer}\) failed"
    ):
        wfp.FilterEngine(fake, dynamic=True).apply(p)
    assert "FwpmTransactionCommit0" not in fake.calls
    assert fake.calls[-1] == "FwpmTransactionAbort0"
    assert fake.calls.count("FwpmFilterAdd0") == 5


def test_a_failing_commit_aborts_too() -> None:
    fake = FakeFwpuclnt()
    fake.fail["FwpmTransactionCommit0"] = (1, 0x80320017)
    with pytest.raises(wfp.FilterError, match="FwpmTransactionCommit0 failed"):
        wfp.FilterEngine(fake, dynamic=True).apply(plan("kill-switch", ENGINE, [OFFICE]))
    assert fake.calls.count("FwpmTransactionAbort0") == 1


def test_replacing_deletes_the_old_filters_inside_the_same_transaction() -> None:
    fake = FakeFwpuclnt()
    old = plan("kill-switch", ENGINE, [OFFICE])
    new = plan("kill-switch", ENGINE, [OFFICE, HOME])
    engine = wfp.FilterEngine(fake, dynamic=True)
    engine.apply(old)
    fake.calls.clear()
    fake.added.clear()
    fake.deleted.clear()
    fake.present.discard(old.filters[0].key)  # one already gone (FWP_E_FILTER_NOT_FOUND): fine
    fake.fail["FwpmProviderAdd0"] = (2, wfp.FWP_E_ALREADY_EXISTS)
    fake.fail["FwpmSubLayerAdd0"] = (2, wfp.FWP_E_ALREADY_EXISTS)
    engine.apply(new, previous=old)
    begin, commit = fake.calls.index("FwpmTransactionBegin0"), fake.calls.index("FwpmTransactionCommit0")
    assert fake.calls.count("FwpmTransactionBegin0") == 1
    deletes = [i for i, c in enumerate(fake.calls) if c == "FwpmFilterDeleteByKey0"]
    adds = [i for i, c in enumerate(fake.calls) if c == "FwpmFilterAdd0"]
    assert begin < min(deletes) and max(deletes) < min(adds) and max(adds) < commit
    assert fake.deleted == [f.key for f in old.filters]
    assert fake.added == decoded(new)


def test_remove_deletes_every_object_by_key_and_tolerates_gone_ones() -> None:
    fake = FakeFwpuclnt()
    p = plan("lockdown", ENGINE, [])
    fake.fail["FwpmSubLayerDeleteByKey0"] = (1, wfp.FWP_E_SUBLAYER_NOT_FOUND)
    wfp.FilterEngine(fake, dynamic=False).remove(p)
    assert fake.deleted == [f.key for f in p.filters] + [p.sublayer_key, p.provider_key]
    assert fake.calls[-1] == "FwpmTransactionCommit0"


def test_remove_finds_filters_of_tunnels_it_was_not_told_of() -> None:
    """The kill switch removed with the tunnel-less plan (the helper restarted and knows no tunnel):
    the per-tunnel filters of its provider go too, before the sublayer."""
    fake = FakeFwpuclnt()
    full = plan("kill-switch", ENGINE, [OFFICE, HOME])
    wfp.FilterEngine(fake, dynamic=False).apply(full)
    fake.deleted.clear()
    bare = plan("kill-switch", ENGINE, [])
    wfp.FilterEngine(fake, dynamic=False).remove(bare)
    assert fake.present == set()
    assert fake.deleted[-2:] == [bare.sublayer_key, bare.provider_key]
    assert fake.deleted[: len(bare.filters)] == [f.key for f in bare.filters]


def test_engine_open_failure_says_what_to_check() -> None:
    fake = FakeFwpuclnt()
    fake.fail["FwpmEngineOpen0"] = (1, 0x6D9)
    with pytest.raises(wfp.FilterError, match="BFE"):
        wfp.FilterEngine(fake, dynamic=True)


def test_a_persistent_plan_reapplied_replaces_its_own_filters() -> None:
    """Lockdown on at boot, the helper starts and applies it again: no FWP_E_ALREADY_EXISTS."""
    fake = FakeFwpuclnt()
    p = plan("lockdown", ENGINE, [OFFICE])
    wfp.FilterEngine(fake, dynamic=False).apply(p)
    wfp.FilterEngine(fake, dynamic=False).apply(p)
    assert fake.present == {f.key for f in p.filters}
    assert fake.calls.count("FwpmTransactionCommit0") == 2
