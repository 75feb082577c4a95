"""The parse pool: how many workers (the CPUs this process may really use: a
container limited to 2 CPUs on a 64-core host must not start 64 workers of
about 45 MB each; the quota is read from cgroup files, faked here in
tmp_path), and what becomes of a parse given up on or cut off by a close."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.categorize import Categorizer
from bot.config import CategoryConfig, PollingConfig
from bot.errors import ParseError
from bot.parse_pool import ParsePool, cpus_allowed, usable_cpus
from tests import held_parser
from tests.faults import eventually

V2 = "0::/\n"


def write(root: Path, relative: str, **files: str) -> None:
    folder = root / relative
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", ".", 1)).write_text(text + "\n")


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("200000 100000", 2),  # docker run --cpus 2
        ("150000 100000", 2),  # 1.5 CPUs: two workers can both be busy
        ("50000 100000", 1),
        ("max 100000", 64),  # no limit
        ("garbage", 64),
        ("0 100000", 64),
    ],
)
def test_a_cgroup_v2_cpu_quota_lowers_the_cpu_count(
    tmp_path: Path, cpu_max: str, expected: int
) -> None:
    write(tmp_path, "", cpu_max=cpu_max)
    assert cpus_allowed(64, tmp_path, V2) == expected


def test_the_tightest_quota_on_the_way_to_the_root_counts(tmp_path: Path) -> None:
    own = "0::/kubepods/pod7/app\n"
    write(tmp_path, "kubepods", cpu_max="400000 100000")
    write(tmp_path, "kubepods/pod7", cpu_max="300000 100000")
    write(tmp_path, "kubepods/pod7/app", cpu_max="max 100000")
    assert cpus_allowed(64, tmp_path, own) == 3


def test_a_cgroup_path_that_is_not_mounted_falls_back_to_the_root(tmp_path: Path) -> None:
    # Inside a container /proc/self/cgroup may name the host's path, while
    # only the container's own cgroup is mounted, at the root.
    write(tmp_path, "", cpu_max="200000 100000")
    assert cpus_allowed(64, tmp_path, "0::/system.slice/docker-abc.scope\n") == 2


@pytest.mark.parametrize("mount", ["cpu", "cpu,cpuacct"])
def test_a_cgroup_v1_cfs_quota_lowers_the_cpu_count(tmp_path: Path, mount: str) -> None:
    own = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n"
    write(tmp_path, f"{mount}/docker/abc", cpu_cfs_quota_us="300000", cpu_cfs_period_us="100000")
    assert cpus_allowed(64, tmp_path, own) == 3


def test_a_cgroup_v1_quota_of_minus_one_means_no_limit(tmp_path: Path) -> None:
    own = "4:cpu,cpuacct:/\n"
    write(tmp_path, "cpu,cpuacct", cpu_cfs_quota_us="-1", cpu_cfs_period_us="100000")
    assert cpus_allowed(8, tmp_path, own) == 8


def test_the_affinity_mask_wins_when_it_is_smaller(tmp_path: Path) -> None:
    write(tmp_path, "", cpu_max="800000 100000")
    assert cpus_allowed(2, tmp_path, V2) == 2  # taskset -c 0,1


def test_no_cgroup_files_at_all_leave_the_affinity(tmp_path: Path) -> None:
    assert cpus_allowed(4, tmp_path / "missing", V2) == 4
    assert cpus_allowed(4, tmp_path / "missing", "") == 4
    assert cpus_allowed(0, tmp_path / "missing", "") == 1


def test_this_machine_has_at_least_one_usable_cpu() -> None:
    assert usable_cpus() >= 1


def test_the_automatic_worker_count_is_capped_and_an_explicit_one_is_kept() -> None:
    automatic = ParsePool.for_config(PollingConfig(max_parse_workers=1))
    assert automatic.workers == 1
    assert ParsePool.for_config(PollingConfig()).workers <= PollingConfig().max_parse_workers
    assert ParsePool.for_config(PollingConfig(parse_workers=5)).workers == 5


# -- worker processes -------------------------------------------------------------

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><item><title>One</title><link>https://x.example/1</link></item></channel></rss>'


def held_feed(gate: Path) -> bytes:
    return FEED.replace(b"<channel>", b"<channel>" + held_parser.hold(gate))


@pytest.mark.slow
async def test_a_parse_cancelled_by_its_caller_stops_its_worker_and_the_pool_goes_on(
    tmp_path: Path,
) -> None:
    pool = ParsePool(2, timeout=600, parser=held_parser.parse)
    gate = tmp_path / "held"
    try:
        parsing = asyncio.create_task(pool.parse(held_feed(gate), "https://x.example/", None))
        await eventually(held_parser.started(gate).exists, what="the held parse")
        parsing.cancel()  # a shutdown gives up on it
        with pytest.raises(asyncio.CancelledError):
            await parsing
        # The held worker is stopped (its gate never opens) and replaced.
        async with asyncio.timeout(60):  # a hang guard
            results = await asyncio.gather(
                *(pool.parse(FEED, "https://x.example/", None) for _ in range(4))
            )
        assert [r.entries[0].title for r in results] == ["One"] * 4
    finally:
        held_parser.release(gate)
        pool.close()


@pytest.mark.slow
async def test_closing_the_pool_fails_a_running_parse_instead_of_leaving_it_hanging(
    tmp_path: Path,
) -> None:
    pool = ParsePool(2, timeout=600, parser=held_parser.parse)
    gate = tmp_path / "held"
    try:
        parsing = asyncio.create_task(pool.parse(held_feed(gate), "https://x.example/", None))
        await eventually(held_parser.started(gate).exists, what="the held parse")
        pool.close()
        async with asyncio.timeout(60):  # a hang guard
            with pytest.raises(ParseError, match="the parser was stopped"):
                await parsing
    finally:
        held_parser.release(gate)
        pool.close()


_RULES = [
    CategoryConfig(id="space", title="Space", aliases=["NASA news"]),
    CategoryConfig(id="science", title="Science", keywords=["telescope", "C++"]),
    CategoryConfig(id="world", title="World"),
]
_TAGGED_FEED = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>T</title><link>https://x.example/</link>
<item><title>A new telescope</title><link>https://x.example/1</link>
<category>NASA  News</category><description>Pictures.</description></item>
<item><title>Plain</title><link>https://x.example/2</link>
<description>Nothing of the rules.</description></item>
<item><title>Code</title><link>https://x.example/3</link>
<category>world</category><description>Written in C++ today.</description></item>
</channel></rss>"""


@pytest.mark.parametrize("workers", [1, 2])
async def test_the_pool_categorizes_each_entry_as_the_categorizer_does_where_it_parses(
    workers: int,
) -> None:
    categorizer = Categorizer(_RULES)
    pool = ParsePool(workers, timeout=600)
    try:
        async with asyncio.timeout(120):  # a hang guard
            parsed, categories = await pool.parse_and_categorize(
                _TAGGED_FEED, "https://x.example/feed", None, categorizer, ["world"]
            )
    finally:
        pool.close()
    assert [e.url for e in parsed.entries] == [f"https://x.example/{n}" for n in (1, 2, 3)]
    assert categories == tuple(
        categorizer.categorize(("world",), e.tags, e.title, e.summary) for e in parsed.entries
    )
    assert categories == (("space", "science", "world"), ("world",), ("science", "world"))
