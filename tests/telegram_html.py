"""A strict checker for Telegram's HTML parse mode, for use in tests.

Telegram parses ``parse_mode=HTML`` text with TDLib's ``parse_html``: a tiny
hand-written scanner, not a real HTML parser. This module follows that scanner
(same tags, same attribute rules, same error messages and UTF-8 byte offsets) so
that a message our code builds is rejected here for the same reason Telegram
would reject it with "Bad Request: can't parse entities: ...".

By default (``strict=True``) it is also stricter than Telegram where Telegram
silently accepts something that is almost always a bug in the sender:

* a bare ``&`` or ``>`` in text, an unknown named entity (``&nbsp;``), a
  reference without its ``;`` or an invalid numeric reference: Telegram shows
  them literally, which means our escaping missed something;
* unquoted attribute values and attributes without a value (other than
  ``<blockquote expandable>``);
* ``<a>`` without an absolute ``href``: Telegram quietly drops such links;
* ``<tg-time>`` without an integer ``unix`` attribute.

Pass ``strict=False`` to get Telegram's own leniency.

Lengths: Telegram counts the text *after* entity parsing, in UTF-16 code units
(an emoji outside the BMP counts 2), and allows 1..4096 of them per message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "ALLOWED_TAGS",
    "MAX_MESSAGE_LENGTH",
    "ParsedHTML",
    "TelegramHTMLError",
    "assert_valid_message",
    "check_telegram_html",
    "parse_telegram_html",
    "telegram_length",
    "utf16_length",
]

MAX_MESSAGE_LENGTH = 4096

ALLOWED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "code",
        "pre",
        "blockquote",
        "tg-spoiler",
        "span",
        "tg-emoji",
        "tg-time",
    }
)

_NAMED_ENTITIES = {b"lt": "<", b"gt": ">", b"amp": "&", b"quot": '"'}

# TDLib's is_space(): the terminating NUL of its C string counts as a space,
# which is how "end of input" ends tag names and attribute names.
_SPACES = frozenset(b" \t\r\n\v\0")
_LT, _GT, _AMP, _SLASH, _EQ = (ord(c) for c in "<>&/=")
_QUOTES = frozenset(b"\"'")
_END = 0  # what _at() reads past the end of the input

# Links Telegram keeps; anything else (relative paths, "javascript:") it drops.
_LINK_SCHEME = re.compile(r"(?:https?|tg|ftp|mailto|tonsite):", re.IGNORECASE)

_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
    "a": "text_link",
    "tg-time": "date_time",
}


class TelegramHTMLError(ValueError):
    """Telegram would refuse the text. ``str(err)`` reads like Telegram's
    description without the "Bad Request: " prefix, e.g.
    ``Can't parse entities: Unsupported start tag "p" at byte offset 12``."""

    def __init__(self, message: str, *, byte_offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.byte_offset = byte_offset


class ParsedHTML(NamedTuple):
    text: str
    """The plain text Telegram stores and counts toward the length limit."""
    entities: list[dict[str, Any]]
    """MessageEntity dicts (Bot API shape), offsets in UTF-16 code units."""


@dataclass
class _OpenTag:
    name: str
    begin: int  # byte offset of its "<", for error messages
    utf16_offset: int
    attrs: dict[str, str] = field(default_factory=dict)


def _parse_error(reason: str, byte_offset: int | None = None) -> TelegramHTMLError:
    return TelegramHTMLError(f"Can't parse entities: {reason}", byte_offset=byte_offset)


def utf16_length(text: str) -> int:
    """Length of ``text`` as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _utf16_units(lead_byte: int) -> int:
    """UTF-16 code units contributed by the UTF-8 sequence starting with this byte
    (0 for continuation bytes): 4-byte sequences are outside the BMP."""
    if lead_byte & 0xC0 == 0x80:
        return 0
    return 2 if lead_byte >= 0xF0 else 1


class _Scanner:
    """One pass over the UTF-8 bytes, like TDLib (byte offsets in errors are UTF-8)."""

    def __init__(self, text: str, strict: bool) -> None:
        try:
            self.data = text.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates in a Python str
            raise TelegramHTMLError("Strings must be encoded in UTF-8") from exc
        self.strict = strict
        self.pos = 0
        self.out = bytearray()
        self.utf16 = 0
        self.stack: list[_OpenTag] = []
        self.entities: list[dict[str, Any]] = []

    def _at(self, index: int) -> int:
        return self.data[index] if index < len(self.data) else _END

    def _skip_spaces(self) -> None:
        while self._at(self.pos) != _END and self._at(self.pos) in _SPACES:
            self.pos += 1

    def _emit(self, char: str) -> None:
        encoded = char.encode("utf-8")
        self.out += encoded
        self.utf16 += 2 if ord(char) > 0xFFFF else 1

    # -- character references -------------------------------------------------

    def _reference(self, start: int) -> tuple[str | None, int]:
        """Decode the reference at ``start`` ("&..."). Returns the character (None
        if Telegram would keep the "&" literally) and the index after it."""
        data = self.data
        end = start + 1
        if self._at(end) == ord("#"):
            end += 1
            hexadecimal = self._at(end) == ord("x")
            if hexadecimal:
                end += 1
            digits_begin = end
            allowed = b"0123456789abcdefABCDEF" if hexadecimal else b"0123456789"
            while self._at(end) != _END and self._at(end) in allowed:
                end += 1
            digits = data[digits_begin:end]
            code = int(digits, 16 if hexadecimal else 10) if digits else 0
            # TDLib refuses NUL, values past Unicode and (UTF-16) surrogates.
            if code == 0 or code >= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                if self.strict:
                    raw = data[start : end + (self._at(end) == ord(";"))].decode("utf-8", "replace")
                    raise _parse_error(
                        f'Invalid character reference "{raw}" at byte offset {start}', start
                    )
                return None, start + 1
            char = chr(code)
        else:
            while chr(self._at(end)).isascii() and chr(self._at(end)).isalpha():
                end += 1
            name = data[start + 1 : end]
            if name not in _NAMED_ENTITIES:
                if self.strict:
                    # "&nbsp;" is an entity Telegram lacks; "&b=2" is an unescaped "&".
                    if name and self._at(end) == ord(";"):
                        raise _parse_error(
                            f'Unsupported entity "&{name.decode()};" at byte offset {start}; only '
                            "&lt; &gt; &amp; &quot; and numeric references are allowed",
                            start,
                        )
                    raise _parse_error(
                        f'Unescaped "&" at byte offset {start}; write it as "&amp;"', start
                    )
                return None, start + 1
            char = _NAMED_ENTITIES[name]
        if self._at(end) == ord(";"):
            return char, end + 1
        if self.strict:
            raw = data[start:end].decode("utf-8", "replace")
            raise _parse_error(
                f'Entity "{raw}" at byte offset {start} is not terminated by ";"', start
            )
        return char, end

    # -- tags -------------------------------------------------------------------

    def _start_tag(self, begin: int) -> None:
        self.pos = begin + 1
        while self._at(self.pos) not in _SPACES and self._at(self.pos) != _GT:
            self.pos += 1
        if self._at(self.pos) == _END:
            raise _parse_error(f"Unclosed start tag at byte offset {begin}", begin)
        name = self.data[begin + 1 : self.pos].decode("utf-8", "replace").lower()
        if name not in ALLOWED_TAGS:
            raise _parse_error(f'Unsupported start tag "{name}" at byte offset {begin}', begin)

        tag = _OpenTag(name, begin, self.utf16)
        while self._at(self.pos) != _GT:
            self._skip_spaces()
            if self._at(self.pos) == _GT:
                break
            attr_begin = self.pos
            while self._at(self.pos) not in _SPACES and self._at(self.pos) not in (_EQ, _GT):
                self.pos += 1
            attr = self.data[attr_begin : self.pos].decode("utf-8", "replace")
            if not attr:
                raise _parse_error(
                    f'Empty attribute name in the tag "{name}" at byte offset {begin}', begin
                )
            self._skip_spaces()
            if self._at(self.pos) != _EQ:
                if self._at(self.pos) == _END:
                    raise _parse_error(f'Unclosed start tag "{name}" at byte offset {begin}', begin)
                # Only <blockquote expandable> means something without a value.
                if self.strict and not (name == "blockquote" and attr == "expandable"):
                    raise _parse_error(
                        "Expected equal sign in declaration of an attribute of the tag "
                        f'"{name}" at byte offset {begin}',
                        begin,
                    )
                tag.attrs[attr] = ""
                continue
            self.pos += 1
            self._skip_spaces()
            if self._at(self.pos) == _END:
                raise _parse_error(f'Unclosed start tag "{name}" at byte offset {begin}', begin)
            tag.attrs[attr] = self._attribute_value(name)
            if self._at(self.pos) == _END:
                raise _parse_error(f"Unclosed start tag at byte offset {begin}", begin)
        self.pos += 1  # the ">"
        self._check_start_tag(tag)
        self.stack.append(tag)

    def _attribute_value(self, tag_name: str) -> str:
        quote = self._at(self.pos)
        if quote not in _QUOTES:
            # An HTML "name token": letters, digits, "." and "-", case-insensitive.
            token_begin = self.pos
            while chr(self._at(self.pos)).isascii() and (
                chr(self._at(self.pos)).isalnum() or self._at(self.pos) in b".-"
            ):
                self.pos += 1
            if self._at(self.pos) not in _SPACES and self._at(self.pos) != _GT:
                raise _parse_error(
                    f"Unexpected end of name token at byte offset {token_begin}", token_begin
                )
            if self.strict:
                raise _parse_error(
                    f'Unquoted attribute value in the tag "{tag_name}" at byte offset '
                    f"{token_begin}",
                    token_begin,
                )
            return self.data[token_begin : self.pos].decode().lower()
        self.pos += 1
        value = bytearray()
        while self._at(self.pos) not in (quote, _END):
            if self._at(self.pos) == _AMP:
                char, after = self._reference(self.pos)
                if char is not None:
                    value += char.encode("utf-8")
                    self.pos = after
                    continue
            value.append(self.data[self.pos])
            self.pos += 1
        if self._at(self.pos) == quote:
            self.pos += 1
        return value.decode("utf-8", "replace")

    def _check_start_tag(self, tag: _OpenTag) -> None:
        at = f"at byte offset {tag.begin}"
        attrs = tag.attrs
        if tag.name == "span" and attrs.get("class") != "tg-spoiler":
            raise _parse_error(f'Tag "span" must have class "tg-spoiler" {at}', tag.begin)
        if tag.name == "tg-emoji":
            emoji_id = attrs.get("emoji-id", "")
            if not (emoji_id.isascii() and emoji_id.isdigit() and 0 < int(emoji_id) < 2**63):
                raise TelegramHTMLError("Invalid custom emoji identifier specified")
        if not self.strict:
            return
        if tag.name == "a":
            href = attrs.get("href", "")
            if not href:
                raise _parse_error(f'Tag "a" must have a non-empty href attribute {at}', tag.begin)
            if not _LINK_SCHEME.match(href) or any(c.isspace() for c in href):
                raise _parse_error(
                    f'Tag "a" has href "{href}" {at}, which is not an absolute URL '
                    "(Telegram would drop the link)",
                    tag.begin,
                )
        if tag.name == "tg-time" and not re.fullmatch(r"-?\d+", attrs.get("unix", "")):
            raise _parse_error(
                f'Tag "tg-time" must have an integer "unix" attribute {at}', tag.begin
            )

    def _end_tag(self, begin: int) -> None:
        if not self.stack:
            raise _parse_error(f"Unexpected end tag at byte offset {begin}", begin)
        self.pos = begin + 2
        while self._at(self.pos) not in _SPACES and self._at(self.pos) != _GT:
            self.pos += 1
        end_name = self.data[begin + 2 : self.pos].decode("utf-8", "replace").lower()
        self._skip_spaces()
        if self._at(self.pos) != _GT:
            raise _parse_error(f"Unclosed end tag at byte offset {begin}", begin)
        self.pos += 1
        tag = self.stack[-1]
        # "</>" closes whatever is open, as in TDLib.
        if end_name and end_name != tag.name:
            raise _parse_error(
                f"Unmatched end tag at byte offset {begin}, expected "
                f'"</{tag.name}>", found "</{end_name}>"',
                begin,
            )
        self.stack.pop()
        self._add_entity(tag)

    def _add_entity(self, tag: _OpenTag) -> None:
        length = self.utf16 - tag.utf16_offset
        if length <= 0:  # Telegram drops empty entities
            return
        entity: dict[str, Any] = {
            "type": _ENTITY_TYPES[tag.name],
            "offset": tag.utf16_offset,
            "length": length,
        }
        attrs = tag.attrs
        if tag.name == "a":
            entity["url"] = attrs.get("href", "")
        elif tag.name == "tg-emoji":
            entity["custom_emoji_id"] = attrs["emoji-id"]
        elif tag.name == "blockquote" and "expandable" in attrs:
            entity["type"] = "expandable_blockquote"
        elif tag.name == "tg-time":
            entity["unix_time"] = int(attrs.get("unix", "0") or 0)
            if attrs.get("format"):
                entity["date_time_format"] = attrs["format"]
        elif tag.name == "code" and attrs.get("class", "").startswith("language-"):
            # Kept only until the enclosing <pre> closes; a lone <code> has no language.
            entity["language"] = attrs["class"].removeprefix("language-")
        elif tag.name == "pre" and self.entities:
            # <pre><code class="language-x">…</code></pre> is one pre entity with a language.
            inner = self.entities[-1]
            same_span = inner["offset"] == entity["offset"] and inner["length"] == length
            if inner["type"] == "code" and same_span and "language" in inner:
                inner["type"] = "pre"
                return
        self.entities.append(entity)

    # -- driver -----------------------------------------------------------------

    def run(self) -> ParsedHTML:
        data = self.data
        while self.pos < len(data):
            byte = data[self.pos]
            if byte == _AMP:
                char, after = self._reference(self.pos)
                if char is not None:
                    self._emit(char)
                    self.pos = after
                    continue
            if byte == _LT:
                begin = self.pos
                if self._at(begin + 1) == _SLASH:
                    self._end_tag(begin)
                else:
                    self._start_tag(begin)
                continue
            if byte == _GT and self.strict:
                raise _parse_error(
                    f'Unescaped ">" at byte offset {self.pos}; write it as "&gt;"', self.pos
                )
            self.out.append(byte)
            self.utf16 += _utf16_units(byte)
            self.pos += 1
        if self.stack:
            unclosed = self.stack[-1]
            raise _parse_error(
                f'Can\'t find end tag corresponding to start tag "{unclosed.name}"', unclosed.begin
            )
        for entity in self.entities:
            if entity["type"] == "code":
                entity.pop("language", None)
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return ParsedHTML(self.out.decode("utf-8"), self.entities)


def parse_telegram_html(text: str, *, strict: bool = True) -> ParsedHTML:
    """Parse ``text`` as Telegram's HTML parse mode: plain text plus entities.
    Raises :class:`TelegramHTMLError` where Telegram (or, if ``strict``, this
    checker) refuses it."""
    return _Scanner(text, strict).run()


def check_telegram_html(text: str, *, strict: bool = True) -> str:
    """The plain text Telegram makes of ``text`` (what counts toward the 4096
    limit); raises :class:`TelegramHTMLError` if it is not acceptable."""
    return parse_telegram_html(text, strict=strict).text


def telegram_length(text: str, *, strict: bool = True) -> int:
    """UTF-16 code units of the plain text of the HTML ``text``: the length
    Telegram checks against :data:`MAX_MESSAGE_LENGTH`."""
    return utf16_length(check_telegram_html(text, strict=strict))


def _context(text: str, byte_offset: int | None, width: int = 40) -> str:
    if byte_offset is None:
        return ""
    char_offset = len(text.encode("utf-8")[:byte_offset].decode("utf-8", "ignore"))
    start = max(0, char_offset - width)
    return f"\n  near: {text[start : char_offset + width]!r}\n  {' ' * (9 + char_offset - start)}^"


def assert_valid_message(
    html_text: str, *, max_length: int = MAX_MESSAGE_LENGTH, strict: bool = True
) -> str:
    """Assert that Telegram would accept ``html_text`` as an HTML message:
    parseable, not empty after trimming whitespace, at most ``max_length``
    UTF-16 code units. Returns the plain text."""
    try:
        plain = check_telegram_html(html_text, strict=strict)
    except TelegramHTMLError as exc:
        raise AssertionError(
            f"Telegram would reject this message: {exc}{_context(html_text, exc.byte_offset)}"
        ) from exc
    if not plain.strip():
        raise AssertionError(f"Telegram would reject this message: text is empty: {html_text!r}")
    length = utf16_length(plain)
    if length > max_length:
        raise AssertionError(
            f"Telegram would reject this message: too long ({length} UTF-16 code units "
            f"after entity parsing, limit {max_length})"
        )
    return plain
