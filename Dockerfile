# Tern in two stages: build tern-server with every backend (SQLite, PostgreSQL, MySQL/MariaDB)
# compiled in, then run it as an unprivileged user in a slim Debian with only the client
# libraries it links against.

FROM rust:1.95-slim-bookworm AS build
# The -dev packages are what diesel's drivers link against: libpq, MariaDB's libmysqlclient
# compatible library and SQLite (not bundled, so the runtime image supplies it).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        pkg-config libpq-dev default-libmysqlclient-dev libsqlite3-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY migrations ./migrations
RUN cargo build --release --locked -p tern-server --features mysql --bin tern-server

FROM debian:bookworm-slim
# Runtime libraries only; curl serves the health check.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates curl libpq5 libmariadb3 libsqlite3-0 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/tern --create-home tern \
    && mkdir -p /var/lib/tern/data \
    && chown tern:tern /var/lib/tern/data
COPY --from=build /src/target/release/tern-server /usr/local/bin/tern-server
COPY tern.example.toml /etc/tern/tern.example.toml

USER 10001:10001
WORKDIR /var/lib/tern
# Listen on every interface inside the container; without TERN__DATABASE__URL the server
# uses SQLite in the data volume.
ENV TERN__SERVER__LISTEN=0.0.0.0:8080 \
    TERN__STORAGE__DATA_DIR=/var/lib/tern/data
VOLUME ["/var/lib/tern/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/tern-server"]
