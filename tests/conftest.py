from tests.fake_telegram import fake_telegram  # noqa: F401
from tests.faults import processes  # noqa: F401
from tests.feed_server import feed_server  # noqa: F401
from tests.postgres import database_url, postgres_server, postgres_url  # noqa: F401
