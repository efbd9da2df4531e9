"""The one escaping layer for text that reaches a person: terminal, Markdown, HTML, XML (JUnit), rich.

Input text (appendix cells, check evidence, host names, error messages) may hold anything: control
characters, terminal escape sequences (`ESC ]0;title BEL` retitles a terminal), bidi overrides
(U+202E makes `exe.txt` look like `txt.exe`), NUL, raw HTML, Markdown links to `javascript:`,
rich markup (`[/]`). Every human-facing output passes its input text through one function here:

* :func:`plain` — terminal and plain text: C0/C1 control characters (ESC, NUL, BEL, ...) become
  their visible Unicode "control pictures" (``␛``, ``␀``, ``␇``) or ``�``; bidi embeddings,
  overrides and isolates (U+202A–U+202E, U+2066–U+2069) and the marks U+200E, U+200F, U+061C
  become ``�``. Nothing of the text is dropped silently: what was there stays visible.
* :func:`md_text`, :func:`md_cell`, :func:`md_code`, :func:`md_fence` — Markdown: :func:`plain`,
  then every character Markdown (CommonMark/GFM) could read as markup is backslash-escaped, so raw
  HTML, links and emphasis print as the characters typed.
* :func:`html_text` — HTML text and attribute values: :func:`plain`, then ``& < > " '``.
* :func:`xml_text` — XML 1.0 text (JUnit): :func:`plain`, then what XML 1.0 forbids (lone
  surrogates, U+FFFE, U+FFFF) replaced; the XML writer escapes ``& < >`` itself.
* :func:`rich_markup`, :func:`rich_text` — for rich consoles: :func:`plain`, then as text, never
  markup.

Every function is linear in the length of the text.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from rich.text import Text

#: What a character that must not reach a person is replaced by when it has no control picture.
REPLACEMENT: Final = "\ufffd"

_BIDI: Final = (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)


def _table(*, newlines: bool) -> dict[int, str]:
    table: dict[int, str] = {c: chr(0x2400 + c) for c in range(0x20)}  # ␀ … ␟
    table[0x7F] = "\u2421"  # ␡
    table.update({c: REPLACEMENT for c in range(0x80, 0xA0)})  # C1 controls (CSI is 0x9B)
    table.update({c: REPLACEMENT for c in _BIDI})
    table[0x2028] = table[0x2029] = "\n" if newlines else " "  # line / paragraph separators
    table[0x09] = "\t" if newlines else " "
    if newlines:
        table[0x0A] = "\n"
        table[0x0D] = ""  # CRLF -> LF; a lone CR would return the cursor to the start of the line
    else:
        table[0x0A] = table[0x0D] = " "
    return table


_ONE_LINE: Final = _table(newlines=False)
_LINES: Final = _table(newlines=True)


def plain(text: object, *, newlines: bool = False) -> str:
    """`text` safe for a terminal or a plain-text file: no control, escape or bidi characters.

    Args:
        text: anything (None is ``""``; other objects are ``str()``-ed).
        newlines: keep line breaks and tabs (else they become spaces: one line).

    Example:
        >>> plain("a\\x1b]0;owned\\x07b\\u202e")
        'a␛]0;owned␇b�'
    """
    if text is None:
        return ""
    return str(text).translate(_LINES if newlines else _ONE_LINE)


# --- Markdown ---------------------------------------------------------------------------------------

# the ASCII punctuation CommonMark/GFM reads as markup inside a line (backslash escapes, code spans,
# emphasis, strikethrough, links and images, raw HTML and autolinks, entities, table cells); the
# characters that are markup only at the start of a line (`# - + . )`) are never escaped: this text
# is always put after something on its line. The digits, dots and dashes of addresses and host
# names stay as they are.
_MD_SPECIAL: Final = re.compile(r"([\\`*_\[\]<>|~&])")
_MD_NEEDS: Final = re.compile(
    r"[\\`*_\[\]<>|~&\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]"
)


def md_text(text: object) -> str:
    """`text` as literal Markdown inline text, on one line: markup characters backslash-escaped.

    Raw HTML (`<script>`), links (`[x](javascript:…)`), autolinks (`<http://…>`), emphasis and
    entities (`&lt;`) print as typed.

    Example:
        >>> print(md_text("<img src=x onerror=alert(1)> [x](javascript:alert(1))"))
        \\<img src=x onerror=alert(1)\\> \\[x\\](javascript:alert(1))
    """
    s = "" if text is None else str(text)
    if _MD_NEEDS.search(s) is None:  # the common case: nothing to do
        return s
    return _MD_SPECIAL.sub(r"\\\1", plain(s))


def md_cell(text: object) -> str:
    """`text` for a Markdown table cell: :func:`md_text`, whitespace runs folded to one space."""
    s = "" if text is None else str(text)
    if _MD_NEEDS.search(s) is None and "  " not in s and s == s.strip():
        return s
    return md_text(" ".join(plain(s).split()))


def md_code(text: object) -> str:
    """`text` as a Markdown code span: backquotes longer than any run inside, on one line."""
    s = " ".join(plain(text).split())
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s else ""
    return f"{ticks}{pad}{s}{pad}{ticks}"


def md_fence(text: object, *, empty: str = "") -> list[str]:
    """`text` as a fenced Markdown code block (its lines): the fence is longer than any backquote run
    in the text, so nothing in it can close the block early.

    Example:
        >>> md_fence("a\\n```\\nb")
        ['````', 'a', '```', 'b', '````']
    """
    s = plain(text, newlines=True) or empty
    longest = max((len(m) for m in re.findall(r"`{3,}", s)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, *s.split("\n"), fence]


# --- HTML and XML -----------------------------------------------------------------------------------


def html_text(text: object) -> str:
    """`text` for HTML text or a quoted attribute value: :func:`plain` (line breaks kept), then escaped."""
    return html.escape(plain(text, newlines=True), quote=True)


_XML_FORBIDDEN: Final = re.compile("[\ud800-\udfff\ufffe\uffff]")


def xml_text(text: object, *, newlines: bool = True) -> str:
    """`text` made of characters XML 1.0 allows (for ElementTree, which escapes ``& < >`` itself).

    Control characters become control pictures (:func:`plain`), lone surrogates and the
    non-characters U+FFFE/U+FFFF become ``�``.
    """
    s = plain(text, newlines=newlines)
    return _XML_FORBIDDEN.sub(REPLACEMENT, s) if _XML_FORBIDDEN.search(s) else s


# --- rich -------------------------------------------------------------------------------------------


def rich_markup(text: object) -> str:
    """`text` to put inside a rich markup string: :func:`plain`, then ``[`` escaped (never a tag)."""
    from rich.markup import escape

    return escape(plain(text))


def rich_text(text: object, style: str = "") -> Text:
    """`text` as a rich :class:`~rich.text.Text` (never parsed as markup), :func:`plain` first."""
    from rich.text import Text

    return Text(plain(text), style=style)


__all__ = ["REPLACEMENT", "html_text", "md_cell", "md_code", "md_fence", "md_text", "plain", "rich_markup",
           "rich_text", "xml_text"]
