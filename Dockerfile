# newsbot: docker build -t newsbot . && docker run -d --name newsbot \
#   -e NEWSBOT_TOKEN=123:ABC -v newsbot-data:/data -v "$PWD/config.toml:/config/config.toml:ro" newsbot
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user owns only the data directory.
RUN groupadd --system newsbot \
    && useradd --system --gid newsbot --home-dir /data --shell /usr/sbin/nologin newsbot \
    && mkdir -p /data /config \
    && chown newsbot:newsbot /data

WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install . && rm -rf /src

# Mount your own config.toml over the example (and set NEWSBOT_TOKEN). Every
# newsbot command finds it through NEWSBOT_CONFIG (docker exec ... newsbot
# health too), and a relative [storage] path lands on the /data volume.
COPY config.example.toml /config/config.toml
ENV NEWSBOT_CONFIG=/config/config.toml \
    NEWSBOT_DATA_DIR=/data
WORKDIR /data
USER newsbot
VOLUME ["/data"]
# Only needed in webhook mode ([telegram] webhook_url).
EXPOSE 8443
# WebSub callbacks ([websub] listen), in webhook mode too.
EXPOSE 8444

HEALTHCHECK --interval=60s --timeout=10s --start-period=60s --retries=3 \
    CMD ["newsbot", "--log-level", "ERROR", "healthcheck"]

# docker stop sends this, then kills after 10 s: the bot ends its polling round
# at a feed boundary (no slow feed is waited for), finishes the sends in
# flight and closes the database.
STOPSIGNAL SIGTERM

ENTRYPOINT ["newsbot"]
CMD ["run"]
