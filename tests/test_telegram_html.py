"""The HTML checker refuses what Telegram refuses, with Telegram's wording and
byte offsets, and counts length the way Telegram does (UTF-16, after parsing)."""

from __future__ import annotations

import html

import pytest

from tests.telegram_html import (
    MAX_MESSAGE_LENGTH,
    TelegramHTMLError,
    assert_valid_message,
    check_telegram_html,
    parse_telegram_html,
    telegram_length,
    utf16_length,
)

# --- accepted ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "plain"),
    [
        ("plain text", "plain text"),
        ("", ""),
        ("<b>bold</b> <strong>strong</strong>", "bold strong"),
        ("<i>i</i><em>em</em><u>u</u><ins>ins</ins>", "iemuins"),
        ("<s>s</s><strike>strike</strike><del>del</del>", "sstrikedel"),
        ('<tg-spoiler>x</tg-spoiler><span class="tg-spoiler">y</span>', "xy"),
        ('<a href="https://example.com/a?b=1&amp;c=2">link</a>', "link"),
        ("<a href='https://example.com'>single quotes</a>", "single quotes"),
        ('<a  href = "https://example.com" >spaces</a >', "spaces"),
        ("<code>x = 1</code>", "x = 1"),
        ('<pre><code class="language-python">print(1)</code></pre>', "print(1)"),
        ("<blockquote>q</blockquote><blockquote expandable>e</blockquote>", "qe"),
        ('<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>', "👍"),
        ('<tg-time unix="1647531900" format="wDT">22:45</tg-time>', "22:45"),
        ("<B>upper case tags</B>", "upper case tags"),
        ("<b><i><u>nested</u></i></b>", "nested"),
        ("<b>closed by</>", "closed by"),
        ("&lt;p&gt; &amp; &quot;quoted&quot;", '<p> & "quoted"'),
        ("&#60;&#x3C;&#128512;&#x1F600;", "<<😀😀"),
        ("line\nbreaks\n\nkept", "line\nbreaks\n\nkept"),
        ("Ünïcödé — ✓ 日本語", "Ünïcödé — ✓ 日本語"),
        ("quote \" and apostrophe ' are fine", "quote \" and apostrophe ' are fine"),
    ],
)
def test_valid_html_gives_its_plain_text(source: str, plain: str) -> None:
    assert check_telegram_html(source) == plain


def test_html_escape_output_is_always_valid() -> None:
    nasty = '<p>Tom & Jerry\'s "show" > 3 &nbsp; <br/> &#0; </b>'
    assert check_telegram_html(html.escape(nasty)) == nasty
    assert check_telegram_html(html.escape(nasty, quote=False)) == nasty


def test_entities_are_reported_in_utf16_offsets() -> None:
    parsed = parse_telegram_html('😀 <b>bold</b> <a href="https://e.com">l</a>')
    assert parsed.text == "😀 bold l"
    assert parsed.entities == [
        {"type": "bold", "offset": 3, "length": 4},
        {"type": "text_link", "offset": 8, "length": 1, "url": "https://e.com"},
    ]


def test_pre_with_language_is_one_entity_and_lone_code_has_none() -> None:
    parsed = parse_telegram_html(
        '<pre><code class="language-py">a</code></pre><code class="language-py">b</code>'
    )
    assert parsed.entities == [
        {"type": "pre", "offset": 0, "length": 1, "language": "py"},
        {"type": "code", "offset": 1, "length": 1},
    ]


def test_empty_entities_are_dropped_and_nesting_is_sorted_outer_first() -> None:
    parsed = parse_telegram_html("<b></b><b><i>x</i>y</b>")
    assert parsed.entities == [
        {"type": "bold", "offset": 0, "length": 2},
        {"type": "italic", "offset": 0, "length": 1},
    ]


def test_expandable_blockquote_spoiler_and_custom_emoji_entities() -> None:
    parsed = parse_telegram_html(
        '<blockquote expandable>a</blockquote><span class="tg-spoiler">b</span>'
        '<tg-emoji emoji-id="42">c</tg-emoji>'
    )
    assert [e["type"] for e in parsed.entities] == [
        "expandable_blockquote",
        "spoiler",
        "custom_emoji",
    ]
    assert parsed.entities[2]["custom_emoji_id"] == "42"


# --- refused, as Telegram refuses -----------------------------------------------


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("Hello<p>world</p>", 'Unsupported start tag "p" at byte offset 5'),
        ("line<br>break", 'Unsupported start tag "br" at byte offset 4'),
        ("<br/>", 'Unsupported start tag "br/" at byte offset 0'),
        ('<img src="x">', 'Unsupported start tag "img" at byte offset 0'),
        ("<!-- comment -->", 'Unsupported start tag "!--" at byte offset 0'),
        ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("x <b", "Unclosed start tag at byte offset 2"),
        ('<a href="https://e.com"', "Unclosed start tag at byte offset 0"),
        ("<a href", 'Unclosed start tag "a" at byte offset 0'),
        ('<a ="x">y</a>', 'Empty attribute name in the tag "a" at byte offset 0'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</i>", 'Can\'t find end tag corresponding to start tag "b"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ('<span class="x">x</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ],
)
def test_invalid_html_is_refused_with_telegrams_message(source: str, reason: str) -> None:
    with pytest.raises(TelegramHTMLError) as caught:
        check_telegram_html(source)
    assert str(caught.value) == f"Can't parse entities: {reason}"
    # Telegram itself refuses these too: not just our strictness.
    with pytest.raises(TelegramHTMLError):
        check_telegram_html(source, strict=False)


def test_byte_offsets_count_utf8_bytes() -> None:
    # "é" is 2 bytes, "😀" 4: the <p> starts at byte 6, though at character 3.
    with pytest.raises(TelegramHTMLError) as caught:
        check_telegram_html("é😀<p>")
    assert caught.value.byte_offset == 6
    assert "at byte offset 6" in caught.value.message


def test_custom_emoji_needs_a_numeric_id() -> None:
    with pytest.raises(TelegramHTMLError, match="Invalid custom emoji identifier specified"):
        check_telegram_html('<tg-emoji emoji-id="abc">x</tg-emoji>')


def test_unquoted_value_ending_badly_is_refused_even_leniently() -> None:
    with pytest.raises(TelegramHTMLError, match="Unexpected end of name token at byte offset 8"):
        check_telegram_html("<a href=x/>y</a>", strict=False)


def test_lone_surrogates_are_not_utf8() -> None:
    with pytest.raises(TelegramHTMLError, match="UTF-8"):
        check_telegram_html("bad \ud800 text")


# --- strict mode: what Telegram lets through but is a bug on our side -----------


@pytest.mark.parametrize(
    ("source", "fragment", "lenient_plain"),
    [
        ("Tom & Jerry", 'Unescaped "&" at byte offset 4', "Tom & Jerry"),
        ("a&b", 'Unescaped "&" at byte offset 1', "a&b"),
        ("3 > 2", 'Unescaped ">" at byte offset 2', "3 > 2"),
        ("non&nbsp;breaking", 'Unsupported entity "&nbsp;" at byte offset 3', "non&nbsp;breaking"),
        ("&apos;", 'Unsupported entity "&apos;"', "&apos;"),
        (
            "&amp without semicolon",
            'Entity "&amp" at byte offset 0 is not terminated',
            "& without semicolon",
        ),
        ("&#65 x", 'Entity "&#65" at byte offset 0 is not terminated', "A x"),
        ("&#0;", 'Invalid character reference "&#0;"', "&#0;"),
        ("&#xD800;", 'Invalid character reference "&#xD800;"', "&#xD800;"),
        ("&#;", 'Invalid character reference "&#;"', "&#;"),
        ('<a href="https://e.com/?a=1&b=2">x</a>', 'Unescaped "&" at byte offset 27', "x"),
        ("<a href=https>x</a>", 'Unquoted attribute value in the tag "a" at byte offset 8', "x"),
        ("<a>x</a>", 'Tag "a" must have a non-empty href attribute', "x"),
        ('<a href="">x</a>', 'Tag "a" must have a non-empty href attribute', "x"),
        ('<a href="/relative">x</a>', 'Tag "a" has href "/relative"', "x"),
        ('<a href="javascript:alert(1)">x</a>', "not an absolute URL", "x"),
        (
            "<b class>x</b>",
            'Expected equal sign in declaration of an attribute of the tag "b"',
            "x",
        ),
        ('<tg-time format="t">x</tg-time>', 'Tag "tg-time" must have an integer "unix"', "x"),
    ],
)
def test_strict_mode_refuses_what_telegram_would_show_wrongly(
    source: str, fragment: str, lenient_plain: str
) -> None:
    with pytest.raises(TelegramHTMLError) as caught:
        check_telegram_html(source)
    assert str(caught.value).startswith("Can't parse entities: ")
    assert fragment in str(caught.value)
    assert check_telegram_html(source, strict=False) == lenient_plain


def test_lenient_mode_decodes_references_in_attributes_like_telegram() -> None:
    parsed = parse_telegram_html('<a href="https://e.com/?a=1&lt=2&x">x</a>', strict=False)
    # The classic escaping bug: "&lt" in a URL turns into "<".
    assert parsed.entities[0]["url"] == "https://e.com/?a=1<=2&x"


# --- lengths ---------------------------------------------------------------------


def test_utf16_length_counts_astral_characters_twice() -> None:
    assert utf16_length("abc") == 3
    assert utf16_length("é") == 1
    assert utf16_length("😀") == 2
    assert utf16_length("👍🏽") == 4  # emoji + skin tone modifier


def test_telegram_length_is_measured_after_entity_parsing() -> None:
    assert telegram_length('<b>Hi</b> <a href="https://example.com">there</a>') == 8
    assert telegram_length("&lt;&amp;&gt;") == 3
    assert telegram_length("&#x1F600;") == 2


def test_assert_valid_message_accepts_exactly_the_limit() -> None:
    body = "<b>" + "x" * (MAX_MESSAGE_LENGTH - 2) + "</b>😀"
    assert utf16_length(assert_valid_message(body)) == MAX_MESSAGE_LENGTH


def test_assert_valid_message_refuses_one_unit_too_many() -> None:
    with pytest.raises(AssertionError, match="too long \\(4097 UTF-16"):
        assert_valid_message("x" * (MAX_MESSAGE_LENGTH - 1) + "😀")


def test_assert_valid_message_counts_emoji_as_two() -> None:
    assert_valid_message("😀" * 2048)
    with pytest.raises(AssertionError, match="too long"):
        assert_valid_message("😀" * 2049)


def test_markup_does_not_count_toward_the_limit() -> None:
    body = "<b>" + "&amp;" * MAX_MESSAGE_LENGTH + "</b>"
    assert len(body) > 5 * MAX_MESSAGE_LENGTH
    assert assert_valid_message(body) == "&" * MAX_MESSAGE_LENGTH


@pytest.mark.parametrize("source", ["", "   ", "\n\t", "<b> </b>", "<i></i>"])
def test_assert_valid_message_refuses_empty_text(source: str) -> None:
    with pytest.raises(AssertionError, match="empty"):
        assert_valid_message(source)


def test_assert_valid_message_shows_where_the_problem_is() -> None:
    with pytest.raises(AssertionError) as caught:
        assert_valid_message("A fine headline <p>then feed junk</p>")
    text = str(caught.value)
    assert 'Unsupported start tag "p" at byte offset 16' in text
    assert "near: " in text


def test_assert_valid_message_with_custom_limit() -> None:
    assert assert_valid_message("12345", max_length=5) == "12345"
    with pytest.raises(AssertionError):
        assert_valid_message("123456", max_length=5)
