"""The IOS command parser of the device simulator: command trees with abbreviation, ACL entries."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal


class CliError(Exception):
    """A command line the device refuses; `kind` decides the IOS text shown."""

    def __init__(self, kind: Literal["invalid", "incomplete", "ambiguous", "message"],
                 word: int = 0, text: str = "") -> None:
        super().__init__(kind, word, text)
        self.kind = kind
        self.word = word
        self.text = text


class _RestFail(Exception):
    def __init__(self, offset: int, kind: Literal["invalid", "incomplete", "ambiguous"]) -> None:
        super().__init__(offset, kind)
        self.offset = offset
        self.kind = kind


Handler = Callable[[Any, list[Any]], str | None]  # (the CliSession, the values) -> its reply


@dataclass(frozen=True)
class _Kw:
    word: str


@dataclass(frozen=True)
class _Param:
    name: str
    accept: Callable[[str], Any]  # returns the value, or None when the word does not fit


@dataclass(frozen=True)
class _Rest:
    name: str
    parse: Callable[[list[str]], Any]  # consumes every remaining word or raises _RestFail


@dataclass
class Node:
    children: dict[str, tuple[_Kw | _Param | _Rest, Node]] = field(default_factory=dict)
    handler: Handler | None = None


def _ipv4(word: str) -> str | None:
    if not re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", word):
        return None
    try:
        return str(ipaddress.IPv4Address(word))
    except ValueError:
        return None


def _word(word: str) -> str:
    return word


def _int_range(lo: int, hi: int) -> Callable[[str], int | None]:
    def accept(word: str) -> int | None:
        if word.isdigit() and lo <= int(word) <= hi:
            return int(word)
        return None

    return accept


def _rest_line(words: list[str]) -> str:
    return " ".join(words)


LEVELS = ("emergencies", "alerts", "critical", "errors", "warnings", "notifications", "informational",
          "debugging")


class CommandTree:
    """Commands of one CLI mode, built from pattern strings such as ``logging host <ip>``.

    Pattern words: a keyword (matched by unique prefix), ``<ip>``, ``<word>``, ``<line>`` (the rest
    of the line), ``<lo-hi>`` (an integer range), ``<a|b>`` (one of several keywords), ``<level>``
    (a syslog level name or 0-7), or a named rest-parser given in `rest`.
    """

    def __init__(self, rest: dict[str, Callable[[list[str]], Any]] | None = None) -> None:
        self.root = Node()
        self._rest = rest or {}

    def add(self, pattern: str, handler: Handler) -> None:
        """Add every expansion of `pattern` (choices multiply) with `handler`."""
        expansions: list[list[_Kw | _Param | _Rest]] = [[]]
        for word in pattern.split():
            options: list[_Kw | _Param | _Rest]
            if word == "<ip>":
                options = [_Param("ip", _ipv4)]
            elif word == "<word>":
                options = [_Param("word", _word)]
            elif word == "<line>":
                options = [_Rest("line", _rest_line)]
            elif word == "<level>":
                options = [*(_Kw(lv) for lv in LEVELS), _Param("0-7", _int_range(0, 7))]
            elif m := re.fullmatch(r"<(\d+)-(\d+)>", word):
                options = [_Param(word, _int_range(int(m.group(1)), int(m.group(2))))]
            elif word.startswith("<") and word[1:-1] in self._rest:
                options = [_Rest(word, self._rest[word[1:-1]])]
            elif word.startswith("<") and "|" in word:
                options = [_Kw(w) for w in word[1:-1].split("|")]
            else:
                options = [_Kw(word)]
            expansions = [[*e, o] for e in expansions for o in options]
        for tokens in expansions:
            node = self.root
            for tok in tokens:
                key = f"kw:{tok.word}" if isinstance(tok, _Kw) else f"p:{tok.name}"
                if key not in node.children:
                    node.children[key] = (tok, Node())
                node = node.children[key][1]
            node.handler = handler

    def match(self, words: list[str]) -> tuple[Handler, list[Any]]:
        """Resolve `words` to a handler and the matched values, or raise :class:`CliError`."""
        alive: list[tuple[Node, list[Any]]] = [(self.root, [])]
        rest_done: list[tuple[Node, list[Any]]] = []
        fail: tuple[int, Literal["invalid", "incomplete", "ambiguous"]] = (0, "invalid")
        for i, word in enumerate(words):
            low = word.lower()
            kw_hits: dict[str, list[tuple[Node, list[Any]]]] = {}
            nxt: list[tuple[Node, list[Any]]] = []
            for node, vals in alive:
                for tok, child in node.children.values():
                    if isinstance(tok, _Kw):
                        if tok.word.lower().startswith(low):
                            kw_hits.setdefault(tok.word, []).append((child, [*vals, tok.word]))
                    elif isinstance(tok, _Param):
                        value = tok.accept(word)
                        if value is not None:
                            nxt.append((child, [*vals, value]))
                    else:
                        try:
                            value = tok.parse(words[i:])
                        except _RestFail as exc:
                            if i + exc.offset >= fail[0]:
                                fail = (i + exc.offset, exc.kind)
                        else:
                            if child.handler:
                                rest_done.append((child, [*vals, value]))
            exact = [k for k in kw_hits if k.lower() == low]
            if exact:
                nxt = kw_hits[exact[0]] + nxt
            elif len(kw_hits) == 1:
                nxt = next(iter(kw_hits.values())) + nxt
            elif len(kw_hits) > 1:
                raise CliError("ambiguous", i)
            if not nxt:
                if rest_done:
                    node, vals = rest_done[0]
                    assert node.handler is not None
                    return node.handler, vals
                if i >= fail[0]:
                    fail = (i, "invalid")
                raise CliError(fail[1], fail[0])
            alive = nxt
        for node, vals in alive:
            if node.handler:
                return node.handler, vals
        if rest_done:
            node, vals = rest_done[0]
            assert node.handler is not None
            return node.handler, vals
        raise CliError("incomplete", len(words))


def _prefix_kw(word: str, options: Sequence[str], at: int) -> str:
    """Resolve an abbreviated keyword inside a rest-parser (exact match wins)."""
    low = word.lower()
    if low in options:
        return low
    hits = [o for o in options if o.startswith(low)]
    if len(hits) == 1:
        return hits[0]
    raise _RestFail(at, "ambiguous" if hits else "invalid")


# --- access-control entries ---------------------------------------------------------------------

_PROTO_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ahp": 51, "eigrp": 88,
                  "ospf": 89, "pim": 103}
_PROTO_NAMES = {v: k for k, v in _PROTO_NUMBERS.items()}
_PORT_NAMES = {"ftp-data": 20, "ftp": 21, "telnet": 23, "smtp": 25, "domain": 53, "www": 80,
               "pop3": 110, "bgp": 179}
_PORT_BY_NUMBER = {v: k for k, v in _PORT_NAMES.items()}


def _ace_addr(words: list[str], i: int) -> tuple[str, int]:
    if i >= len(words):
        raise _RestFail(i, "incomplete")
    word = words[i]
    ip = _ipv4(word)
    if ip is None:
        kw = _prefix_kw(word, ("any", "host"), i)
        if kw == "any":
            return "any", i + 1
        if i + 1 >= len(words):
            raise _RestFail(i + 1, "incomplete")
        host = _ipv4(words[i + 1])
        if host is None:
            raise _RestFail(i + 1, "invalid")
        return f"host {host}", i + 2
    if i + 1 >= len(words):
        raise _RestFail(i + 1, "incomplete")
    wildcard = _ipv4(words[i + 1])
    if wildcard is None:
        raise _RestFail(i + 1, "invalid")
    wild = int(ipaddress.IPv4Address(wildcard))
    base = ipaddress.IPv4Address(int(ipaddress.IPv4Address(ip)) & ~wild & 0xFFFFFFFF)
    if wild == 0:
        return f"host {base}", i + 2
    if wild == 0xFFFFFFFF:
        return "any", i + 2
    return f"{base} {wildcard}", i + 2


def _ace_port(words: list[str], i: int) -> str:
    if i >= len(words):
        raise _RestFail(i, "incomplete")
    word = words[i].lower()
    if word.isdigit() and int(word) <= 65535:
        number = int(word)
    else:
        number = _PORT_NAMES[_prefix_kw(word, tuple(_PORT_NAMES), i)]
    return _PORT_BY_NUMBER.get(number, str(number))


def _ace_ports(words: list[str], i: int) -> tuple[str, int]:
    if i >= len(words) or _ipv4(words[i]) is not None:
        return "", i
    low = words[i].lower()
    if not any(op.startswith(low) for op in ("eq", "neq", "lt", "gt", "range")):
        return "", i
    op = _prefix_kw(low, ("eq", "neq", "lt", "gt", "range"), i)
    if op == "range":
        return f" range {_ace_port(words, i + 1)} {_ace_port(words, i + 2)}", i + 3
    return f" {op} {_ace_port(words, i + 1)}", i + 2


def parse_ace(words: list[str], *, with_seq: bool = True) -> tuple[int | None, str]:
    """Parse one extended ACL entry; return (sequence or None, canonical text as IOS shows it)."""
    i = 0
    seq: int | None = None
    if with_seq and words and words[0].isdigit():
        seq = int(words[0])
        if not 1 <= seq <= 2147483647:
            raise _RestFail(0, "invalid")
        i = 1
    if i >= len(words):
        raise _RestFail(i, "incomplete")
    action = _prefix_kw(words[i], ("permit", "deny", "remark"), i)
    i += 1
    if action == "remark":
        if i >= len(words):
            raise _RestFail(i, "incomplete")
        text = " ".join(words[i:])
        if len(text) > 100:
            raise _RestFail(i, "invalid")
        return seq, f"remark {text}"
    if i >= len(words):
        raise _RestFail(i, "incomplete")
    pword = words[i].lower()
    if pword.isdigit() and int(pword) <= 255:
        proto = _PROTO_NAMES.get(int(pword), pword)
    else:
        proto = _prefix_kw(pword, ("ip", *_PROTO_NUMBERS), i)
    i += 1
    src, i = _ace_addr(words, i)
    sports, dports = "", ""
    if proto in ("tcp", "udp"):
        sports, i = _ace_ports(words, i)
    dst, i = _ace_addr(words, i)
    if proto in ("tcp", "udp"):
        dports, i = _ace_ports(words, i)
    flags: list[str] = []
    options: tuple[str, ...] = ("log", "log-input", *(("established",) if proto == "tcp" else ()))
    while i < len(words):
        if not options:
            raise _RestFail(i, "invalid")
        flag = _prefix_kw(words[i], options, i)
        # `established` may be followed by a log keyword; nothing follows a log keyword
        options = ("log", "log-input") if flag == "established" else ()
        flags.append(flag)
        i += 1
    text = f"{action} {proto} {src}{sports} {dst}{dports}" + "".join(f" {f}" for f in flags)
    return seq, text


def ace_rest(words: list[str]) -> tuple[int | None, str]:
    return parse_ace(words, with_seq=True)


def ace_rest_noseq(words: list[str]) -> tuple[int | None, str]:
    return parse_ace(words, with_seq=False)


_IF_TYPES = ("GigabitEthernet", "Loopback")


def ifname_rest(words: list[str]) -> str:
    joined = "".join(words)
    m = re.fullmatch(r"([A-Za-z-]+)(\d+(?:/\d+)*)", joined)
    if not m:
        raise _RestFail(0, "invalid" if joined else "incomplete")
    kind = _prefix_kw(m.group(1), tuple(t.lower() for t in _IF_TYPES), 0)
    return next(t for t in _IF_TYPES if t.lower() == kind) + m.group(2)
