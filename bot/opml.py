"""OPML subscription lists: read (import) and written (export).

Pure functions of bytes and values, no I/O. An OPML file comes from anyone,
so it is parsed with ``defusedxml`` (entity declarations, external entities
and DTD tricks refused), as a stream through a target that counts outlines
and nesting as they arrive: a hostile file is refused as soon as it passes a
cap, having built nothing but the feeds read so far. The caller reads at
most ``MAX_OPML_BYTES`` (see ``read_opml_file``).

Categories come from an outline's ``category`` attribute (OPML 2.0:
comma-separated, slash-delimited, ``"/News/Tech"``) and from the folders it
sits in (the titles of its parent outlines, nearest first), matched to a
category's id, title or aliases without regard to case, spaces, ``_``, ``-``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from bot.config import CategoryConfig
from bot.errors import InputError

MAX_OPML_BYTES = 5 * 1024 * 1024
MAX_OUTLINES = 10_000
MAX_DEPTH = 16
MAX_URL_LENGTH = 2000
MAX_TITLE_LENGTH = 300
_CHUNK = 64 * 1024
_NAME_NOISE = re.compile(r"[\s_\-]+")


class OpmlError(InputError):
    """An OPML file that is refused: not OPML, malformed, hostile or too big."""

    def __str__(self) -> str:
        return f"opml: {self.args[0]}" if self.args else "opml: invalid"


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    url: str
    title: str | None
    html_url: str | None
    folders: tuple[str, ...] = ()  # parent outline titles, outermost first
    category_paths: tuple[str, ...] = ()  # the ``category`` attribute, split at commas


@dataclass(frozen=True, slots=True)
class OpmlDocument:
    feeds: tuple[OpmlFeed, ...]
    skipped: int = 0  # feed outlines whose xmlUrl is not an http(s) URL


@dataclass(frozen=True, slots=True)
class ExportedFeed:
    url: str
    title: str | None
    html_url: str | None
    categories: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PlannedFeed:
    url: str
    title: str | None
    categories: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """What an import would do, for the operator to read before it does it."""

    new: tuple[PlannedFeed, ...]
    present: tuple[str, ...]  # URLs already in the database
    skipped: int
    unmatched: tuple[str, ...] = field(default=())  # folder/category names matching no category

    @property
    def total(self) -> int:
        return len(self.new) + len(self.present)


def read_opml_file(path: Path, limit: int = MAX_OPML_BYTES) -> bytes:
    """The file's bytes, refused without reading it whole when it is bigger
    than ``limit`` (the size on disk, then the bytes read, for a file that
    grows or a pipe)."""
    try:
        with path.open("rb") as file:
            size = path.stat().st_size if path.is_file() else 0
            if size > limit:
                raise OpmlError(f"{path} is {size} bytes, over the {limit}-byte cap")
            data = file.read(limit + 1)
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None
    if len(data) > limit:
        raise OpmlError(f"{path} is over the {limit}-byte cap")
    return data


class _Collector:
    """The parser's target: keeps feed outlines, counts and caps as it goes."""

    def __init__(self, max_outlines: int, max_depth: int) -> None:
        self.max_outlines = max_outlines
        self.max_depth = max_depth
        self.feeds: list[OpmlFeed] = []
        self.skipped = 0
        self.outlines = 0
        self.root: str | None = None
        # One entry per open outline: its folder name, or None for a feed
        # (outlines inside a feed outline are not folders of anything).
        self.stack: list[str | None] = []
        self.depth = 0

    def start(self, tag: str, attrib: Mapping[str, str]) -> None:
        name = tag.rsplit("}", 1)[-1]
        self.depth += 1
        if self.depth > self.max_depth + 3:  # opml, body, then the outlines
            raise OpmlError(f"outlines nested deeper than {self.max_depth} levels")
        if self.root is None:
            self.root = name
            if name.lower() != "opml":
                raise OpmlError(f"not an OPML document (its root element is <{name[:40]}>)")
        if name.lower() != "outline":
            return
        self.outlines += 1
        if self.outlines > self.max_outlines:
            raise OpmlError(f"more than {self.max_outlines} outlines")
        attrs = {key.rsplit("}", 1)[-1].lower(): value for key, value in attrib.items()}
        title = _clean(attrs.get("title")) or _clean(attrs.get("text"))
        xml_url = (attrs.get("xmlurl") or "").strip()
        if not xml_url:
            self.stack.append(title or "")
            return
        self.stack.append(None)
        url = _http_url(xml_url)
        if url is None:
            self.skipped += 1
            return
        if None in self.stack[:-1]:
            return  # inside another feed's outline: not a subscription list shape
        folders = tuple(f for f in self.stack[:-1] if f)
        categories = tuple(p.strip() for p in (attrs.get("category") or "").split(",") if p.strip())
        self.feeds.append(
            OpmlFeed(
                url=url,
                title=title,
                html_url=_http_url(attrs.get("htmlurl") or ""),
                folders=folders,
                category_paths=categories[:20],
            )
        )

    def end(self, tag: str) -> None:
        self.depth -= 1
        if tag.rsplit("}", 1)[-1].lower() == "outline" and self.stack:
            self.stack.pop()

    def data(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def parse_opml(
    data: bytes, *, max_outlines: int = MAX_OUTLINES, max_depth: int = MAX_DEPTH
) -> OpmlDocument:
    """The feed outlines of an OPML document. Raises ``OpmlError``."""
    if len(data) > MAX_OPML_BYTES:
        raise OpmlError(f"{len(data)} bytes, over the {MAX_OPML_BYTES}-byte cap")
    if not data.strip():
        raise OpmlError("empty document")
    collector = _Collector(max_outlines, max_depth)
    parser = DefusedXMLParser(target=collector, forbid_dtd=False)
    try:
        for start in range(0, len(data), _CHUNK):
            parser.feed(data[start : start + _CHUNK])
        parser.close()
    except OpmlError:
        raise
    except DefusedXmlException as error:
        raise OpmlError(
            f"refused: {type(error).__name__} (entities and DTDs are not allowed)"
        ) from None
    except ElementTree.ParseError as error:
        raise OpmlError(f"not well-formed XML: {error}") from None
    if collector.root is None:
        raise OpmlError("empty document")
    return OpmlDocument(tuple(collector.feeds), collector.skipped)


def _clean(value: str | None) -> str | None:
    if not value:
        return None
    text = " ".join(value.split())
    return text[:MAX_TITLE_LENGTH] or None


def _http_url(value: str) -> str | None:
    value = value.strip()
    if not value or len(value) > MAX_URL_LENGTH:
        return None
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return value


# -- categories ------------------------------------------------------------------


def _key(name: str) -> str:
    return _NAME_NOISE.sub("", name.casefold().lstrip("#"))


def category_index(categories: Iterable[CategoryConfig]) -> dict[str, str]:
    """Every name a category answers to (id, title, aliases), as a key, to its id."""
    index: dict[str, str] = {}
    for category in categories:
        for name in (category.id, category.title, *category.aliases):
            index.setdefault(_key(name), category.id)
    return index


def feed_categories(feed: OpmlFeed, index: Mapping[str, str]) -> tuple[str, ...]:
    """The categories an outline names: each ``category`` path (its most
    specific part first), else the nearest folder that names one."""
    found: list[str] = []
    for path in feed.category_paths:
        for part in reversed([p for p in path.split("/") if p.strip()]):
            category_id = index.get(_key(part))
            if category_id is not None:
                if category_id not in found:
                    found.append(category_id)
                break
    if found:
        return tuple(found)
    for folder in reversed(feed.folders):
        category_id = index.get(_key(folder))
        if category_id is not None:
            return (category_id,)
    return ()


def plan_import(
    document: OpmlDocument,
    categories: Sequence[CategoryConfig],
    present_urls: Iterable[str],
    default_category: str | None = None,
) -> ImportPlan:
    """Which feeds an import adds, with which categories, and which are
    already present. A URL listed in several folders gets all their
    categories; one whose folders name none gets ``default_category``."""
    index = category_index(categories)
    present = set(present_urls)
    merged: dict[str, tuple[str | None, list[str]]] = {}
    unmatched: list[str] = []
    seen_present: list[str] = []
    for feed in document.feeds:
        if feed.url in present:
            if feed.url not in seen_present:
                seen_present.append(feed.url)
            continue
        found = feed_categories(feed, index)
        if not found:
            names = feed.category_paths or feed.folders[-1:]
            for name in names:
                if name not in unmatched:
                    unmatched.append(name)
        title, so_far = merged.setdefault(feed.url, (feed.title, []))
        for category_id in found:
            if category_id not in so_far:
                so_far.append(category_id)
    new = []
    for url, (title, found_ids) in merged.items():
        chosen = tuple(found_ids) or ((default_category,) if default_category else ())
        new.append(PlannedFeed(url, title, chosen))
    return ImportPlan(tuple(new), tuple(seen_present), document.skipped, tuple(unmatched))


# -- export --------------------------------------------------------------------


def export_opml(
    feeds: Sequence[ExportedFeed],
    categories: Sequence[CategoryConfig],
    now: datetime,
    title: str = "newsbot feeds",
) -> bytes:
    """OPML 2.0: one folder outline per category (titled with the category's
    title, which an import matches back), each feed in every folder of its
    categories, feeds without a category at the top level."""
    root = ElementTree.Element("opml", version="2.0")
    head = ElementTree.SubElement(root, "head")
    ElementTree.SubElement(head, "title").text = title
    ElementTree.SubElement(head, "dateCreated").text = format_datetime(now, usegmt=True)
    body = ElementTree.SubElement(root, "body")
    titles = {c.id: c.title for c in categories}
    folders: dict[str, ElementTree.Element] = {}
    for category in categories:
        if any(category.id in f.categories for f in feeds):
            folders[category.id] = ElementTree.SubElement(
                body, "outline", text=category.title, title=category.title
            )
    for feed in feeds:
        parents = [folders[c] for c in feed.categories if c in titles] or [body]
        for parent in parents:
            ElementTree.SubElement(parent, "outline", _feed_attributes(feed))
    ElementTree.indent(root)
    data: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def _feed_attributes(feed: ExportedFeed) -> dict[str, Any]:
    name = feed.title or feed.url
    attributes = {"type": "rss", "text": name, "title": name, "xmlUrl": feed.url}
    if feed.html_url:
        attributes["htmlUrl"] = feed.html_url
    return attributes
