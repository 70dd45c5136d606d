# staticd in nginx's place in front of Django/gunicorn.
#
#   docker build --target runtime -t staticd .     # the proxy/static tier: only the binary
#   docker build --target web -t toyproject .      # sample_project under gunicorn (+ staticd collect)
#
# docker-compose.yml wires both with postgres.

# ---- builder: the release binary --------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cargo.toml declares the benches and the test binary; cargo refuses the manifest without
# their files (only the test binary's root is needed, not its modules).
COPY benches ./benches
COPY tests/main.rs ./tests/main.rs
RUN cargo build --release --locked --bin staticd \
    && strip target/release/staticd

# ---- web: sample_project under gunicorn; `staticd collect` fills the shared volume ----------
FROM python:3.13-slim AS web
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY sample_project/requirements.txt /app/requirements.txt
RUN pip install --no-cache-dir -r /app/requirements.txt
COPY sample_project /app
COPY --from=builder /src/target/release/staticd /usr/local/bin/staticd
# The mount points of compose's volumes, owned by the app user: an empty named volume takes
# the ownership of the directory it is mounted on, so Django can write uploads (/app/media),
# collect can swap STATIC_ROOT (/app/public/static) and fill its cache (/var/cache/staticd).
RUN useradd --system --uid 10001 --home-dir /app app \
    && mkdir -p /app/public /app/media /var/cache/staticd \
    && chown app /app/public /app/media /var/cache/staticd
USER app
EXPOSE 8000
STOPSIGNAL SIGTERM
# collect (compressed variants cached by content in /var/cache/staticd, a volume in compose:
# a new container compresses only what changed), then prune (hashed files that only
# generations older than the last 2 named; pages still holding the previous URLs keep
# working), migrate, gunicorn.
CMD ["sh", "-c", "staticd collect /app --python python --cache-dir /var/cache/staticd && staticd prune /app --python python --keep-generations 2 && python manage.py migrate --noinput && exec gunicorn toyproject.wsgi --bind 0.0.0.0:8000 --workers 3"]

# ---- runtime: only the binary, non-root --------------------------------------------------
FROM debian:bookworm-slim AS runtime
RUN useradd --system --uid 10001 --no-create-home staticd
COPY --from=builder /src/target/release/staticd /usr/local/bin/staticd
USER staticd
# Unprivileged port inside the container; compose publishes it as 80.
EXPOSE 8080
ENV STATICD_BIND=0.0.0.0:8080
# SIGTERM drains in-flight requests (--shutdown-timeout).
STOPSIGNAL SIGTERM
# No curl in the image: bash's /dev/tcp asks staticd's own liveness path (answered by staticd,
# never forwarded to Django) and only a 200 is healthy. Liveness, not readiness
# (/.staticd/health/ready): a restart of this container cannot bring a dead upstream back, so
# an unreachable Django must not mark staticd unhealthy; load balancers ask for readiness.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /.staticd/health HTTP/1.0\\r\\n\\r\\n' >&3 && head -c 12 <&3 | grep -Eq '^HTTP/1.[01] 200'"]
ENTRYPOINT ["staticd"]
CMD ["serve", "--root", "/srv/static", "--static-url", "/static/"]
