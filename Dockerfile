# CyberHub backend: Tornado + python-socketio + Motor, one process per container.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=3000

# An unprivileged user owns nothing but what it needs to run.
RUN groupadd --system --gid 10001 cyberhub \
 && useradd --system --uid 10001 --gid cyberhub --home-dir /app --no-create-home --shell /usr/sbin/nologin cyberhub

WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY settings.py run.py ./
COPY cyberhub/ cyberhub/
COPY handlers/ handlers/

USER cyberhub
EXPOSE 3000

# slim has no curl: ask /health with the standard library (200 = ok, 503 = database unreachable).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '3000'), timeout=4)"]

# SIGTERM (docker stop) starts a graceful shutdown: stop accepting, finish
# in-flight requests, close sockets. Give it longer than SHUTDOWN_TIMEOUT_SECONDS
# with `docker stop -t` / compose `stop_grace_period`.
STOPSIGNAL SIGTERM
CMD ["python", "run.py"]
