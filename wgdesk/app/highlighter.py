"""Syntax highlighting for wg-quick ``.conf`` text: sections, keys, values, comments and invalid tokens."""

from __future__ import annotations

import re

from PySide6.QtGui import QColor, QFont, QSyntaxHighlighter, QTextCharFormat, QTextDocument

INTERFACE_KEYS = frozenset(
    {
        "privatekey",
        "listenport",
        "fwmark",
        "address",
        "dns",
        "mtu",
        "table",
        "preup",
        "postup",
        "predown",
        "postdown",
        "saveconfig",
    }
)
PEER_KEYS = frozenset({"publickey", "presharedkey", "allowedips", "endpoint", "persistentkeepalive"})
SECTIONS = {"interface": INTERFACE_KEYS, "peer": PEER_KEYS}

_SECTION = re.compile(r"^\s*\[\s*([^\]]*?)\s*\]\s*$")
_KEY_VALUE = re.compile(r"^(\s*)([^=\s]+)(\s*=\s*)(.*?)\s*$")
_COMMENT = re.compile(r"#.*$")

# block state: 0 = before any section, 1 = [Interface], 2 = [Peer], 3 = unknown section
_STATE = {"interface": 1, "peer": 2}


def _format(colour: str, bold: bool = False, italic: bool = False) -> QTextCharFormat:
    fmt = QTextCharFormat()
    fmt.setForeground(QColor(colour))
    if bold:
        fmt.setFontWeight(QFont.Weight.Bold)
    fmt.setFontItalic(italic)
    return fmt


class ConfHighlighter(QSyntaxHighlighter):
    """Colours the text and underlines, in red, what the parser will reject (unknown sections/keys, junk)."""

    def __init__(self, document: QTextDocument) -> None:
        super().__init__(document)
        self.section = _format("#7c3aed", bold=True)
        self.key = _format("#1d4ed8", bold=True)
        self.value = _format("#047857")
        self.comment = _format("#6b7280", italic=True)
        self.invalid = QTextCharFormat()
        self.invalid.setForeground(QColor("#b91c1c"))
        self.invalid.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
        self.invalid.setUnderlineColor(QColor("#dc2626"))
        self.error_lines: set[int] = set()

    def set_error_lines(self, lines: set[int]) -> None:
        """Mark whole lines (1-based) the parser reported, then re-highlight."""
        if lines != self.error_lines:
            self.error_lines = lines
            self.rehighlight()

    def highlightBlock(self, text: str) -> None:
        previous = self.previousBlockState()
        state = previous if previous >= 0 else 0
        comment = _COMMENT.search(text)
        code = text[: comment.start()] if comment else text
        if comment:
            self.setFormat(comment.start(), len(text) - comment.start(), self.comment)
        section = _SECTION.match(code)
        if section:
            state = _STATE.get(section.group(1).lower(), 3)
            self.setFormat(0, len(code), self.section if state != 3 else self.invalid)
        elif code.strip():
            kv = _KEY_VALUE.match(code)
            if kv is None:
                self.setFormat(0, len(code), self.invalid)
            else:
                key_start = len(kv.group(1))
                key = kv.group(2)
                known = {1: INTERFACE_KEYS, 2: PEER_KEYS}.get(state, frozenset())
                self.setFormat(key_start, len(key), self.key if key.lower() in known else self.invalid)
                value_start = kv.start(4)
                self.setFormat(value_start, len(kv.group(4)), self.value if kv.group(4) else self.invalid)
        line = self.currentBlock().blockNumber() + 1
        if line in self.error_lines and code.strip():
            start = len(code) - len(code.lstrip())
            self.setFormat(start, len(code.rstrip()) - start, self.invalid)
        self.setCurrentBlockState(state)
