"""Production settings of gunicorn, read from the working directory (`gunicorn app:app`).

Command-line options and GUNICORN_CMD_ARGS override any of these. The time limits come
from the app's own settings (`shared.config.TimeLimits`), which refuse database timeouts
that a stalled database could stretch beyond the worker timeout.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shared.config import time_limits_from_env

limits = time_limits_from_env()
limits.validate()

wsgi_app = "app:app"
bind = [f"0.0.0.0:{os.environ.get('PORT', '5000')}"]  # behind a reverse proxy or load balancer

# Threads, not sync workers: a slow client (headers or body trickling in) holds one
# thread, not a whole process, and a request waiting on the database does not stop the
# worker's heartbeat. 8 threads stay below the engine's pool (pool_size 10 + overflow 10),
# so no thread ever waits for a pooled connection.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
threads = 8

# The worker timeout is the deadline the database limits are checked against (WORKER_TIMEOUT).
timeout = limits.worker_timeout
# On a restart or stop, requests in flight may finish within the same deadline.
graceful_timeout = limits.worker_timeout
# An idle kept-alive connection is closed after this; a load balancer in front should
# close its idle upstream connections sooner.
keepalive = 5

# Request line and headers: bounded, well above what the SPA and curl send (a JWT is ~400 bytes).
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190


def post_worker_init(worker: Any) -> None:
    """Before its first request, a worker compiles the statements of an exam's hot paths
    (`shared.warm_up`). Then what it loaded (modules, models, schemas, routes, those
    statements: some 170,000 objects that live as long as the worker) leaves the garbage
    collector's sight (`gc.freeze`): a full collection then scans only what requests made,
    instead of stopping every thread of the worker for about 100 ms."""
    from shared.warm_up import warm_up

    try:
        warm_up(worker.wsgi)
    except Exception:  # an optimisation: a worker that cannot warm up still serves
        worker.log.exception("Warm-up failed; requests compile their statements.")
    gc.freeze()


# Recycle workers now and then, staggered so that they never all restart at once.
max_requests = 1000
max_requests_jitter = 100

# Logs to the standard streams (access log: stdout, errors: stderr), for the container or
# systemd to collect; the access line carries the request id of the app's own log lines.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'

# gunicorn's control socket has one default path per user, which several servers on one
# host would share; nothing here uses it.
control_socket_disable = True

# The heartbeat file on a RAM disk: a slow or full disk must not look like a hung worker.
RAM_DISK = Path("/dev/shm")  # noqa: S108 - only gunicorn's own heartbeat files go there
if RAM_DISK.is_dir():
    worker_tmp_dir = str(RAM_DISK)
