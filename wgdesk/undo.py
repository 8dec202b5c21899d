"""Undo records: what one change to the system was, as a frozen typed value, and how to reverse it.

The helper writes a record to a tunnel's journal *before* it makes the change the record describes
(`wgdesk.helper.journal`), so that after a crash at any point the journal covers everything that may
have been done; undoing a record whose change never happened must be harmless. Records are plain
frozen dataclasses whose fields are JSON values (str, int, bool, None, and tuples of them), so a
journal line is ``{"kind": KIND, **fields}`` and reads back into an equal record.

Each owner of records keeps a `Registry` that maps a record type to the function that undoes it, next
to where the change is made (the helper's bring-up steps; each OS backend of `wgdesk.platforms` for the
changes only it knows how to make). A leaf module: it imports nothing of wgdesk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar


@dataclasses.dataclass(frozen=True)
class UndoRecord:
    """One change, described well enough to reverse it. Subclasses set `kind` (the journal's name
    for it) and declare their fields; `aliases` are older names of the same kind still read."""

    kind: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()

    def fields(self) -> dict[str, Any]:
        """The record as a journal line's fields (tuples become lists)."""
        return {f.name: _json(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> UndoRecord:
        """The record of a journal line; lists become tuples. Raises `KeyError` when a field without a
        default is missing, `TypeError` for a field it does not have."""
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                values[f.name] = _frozen(data[f.name])
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise KeyError(f"{cls.kind}: field {f.name!r} missing")
        return cls(**values)


def _json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    return value


def _frozen(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


R = TypeVar("R", bound=UndoRecord)
C = TypeVar("C")
Undo = Callable[[Any, C], None]


class Registry(Generic[C]):
    """Record types by kind and the function that undoes each, given a context ``C`` (what the undo
    needs: the helper's state, an OS backend)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._types: dict[str, type[UndoRecord]] = {}
        self._undo: dict[type[UndoRecord], Undo[C]] = {}

    def undoes(self, record_type: type[R]) -> Callable[[Callable[[R, C], None]], Callable[[R, C], None]]:
        """Decorator: the function below undoes records of ``record_type``."""

        def register(function: Callable[[R, C], None]) -> Callable[[R, C], None]:
            for kind in (record_type.kind, *record_type.aliases):
                if kind in self._types:
                    raise ValueError(f"{self.owner}: two record types of kind {kind!r}")
                self._types[kind] = record_type
            self._undo[record_type] = function
            return function

        return register

    def knows(self, record: UndoRecord) -> bool:
        return type(record) in self._undo

    def load(self, data: Mapping[str, Any]) -> UndoRecord | None:
        """The record of a journal line, or None when its kind is not one of this registry's. Raises
        `KeyError`/`TypeError`/`ValueError` for a line of a known kind that is malformed."""
        record_type = self._types.get(str(data.get("kind", "")))
        if record_type is None:
            return None
        return record_type.from_fields({k: v for k, v in data.items() if k != "kind"})

    def undo(self, record: UndoRecord, context: C) -> None:
        """Reverse ``record``'s change (`KeyError` when the record is not of this registry)."""
        self._undo[type(record)](record, context)
