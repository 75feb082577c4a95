"""``route``: which chats get an article. Pure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.route import ChatRouting, Delivery, Subscription, route

CATEGORIES = ("space", "science", "industry")


def chats(*ids: int, inactive: tuple[int, ...] = ()) -> dict[int, ChatRouting]:
    return {i: ChatRouting(i, i not in inactive) for i in ids}


def test_each_subscribed_chat_gets_the_article_once() -> None:
    subscriptions = [
        Subscription(1, "space"),
        Subscription(2, "science"),
        Subscription(3, "science"),
        Subscription(3, "space"),
    ]
    assert route(("space", "science"), subscriptions, chats(1, 2, 3)) == [
        Delivery(1, "space"),
        Delivery(2, "science"),
        Delivery(3, "space"),  # the first of its categories in the article's order
    ]


def test_chats_of_other_categories_and_inactive_chats_get_nothing() -> None:
    subscriptions = [
        Subscription(1, "industry"),
        Subscription(2, "space"),
        Subscription(4, "space"),
    ]
    assert route(("space",), subscriptions, chats(1, 2, 4, inactive=(4,))) == [Delivery(2, "space")]


def test_a_subscription_of_an_unknown_chat_is_ignored() -> None:
    assert route(("space",), [Subscription(9, "space")], {}) == []


@given(
    st.lists(st.sampled_from(CATEGORIES), unique=True, max_size=3),
    st.lists(st.tuples(st.integers(1, 8), st.sampled_from(CATEGORIES)), max_size=30),
    st.sets(st.integers(1, 8)),
)
def test_routing_is_once_per_active_chat_that_follows_a_category_of_the_article(
    categories: list[str], raw: list[tuple[int, str]], inactive: set[int]
) -> None:
    subscriptions = [Subscription(c, k) for c, k in raw]
    known = {c: ChatRouting(c, c not in inactive) for c in range(1, 9)}
    deliveries = route(tuple(categories), subscriptions, known)
    chat_ids = [d.chat_id for d in deliveries]
    assert chat_ids == sorted(set(chat_ids))
    expected = {c for c, k in raw if k in categories and c not in inactive}
    assert set(chat_ids) == expected
    for delivery in deliveries:
        followed = [k for c, k in raw if c == delivery.chat_id and k in categories]
        assert delivery.category_id == min(followed, key=categories.index)
