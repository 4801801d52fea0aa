"""gunicorn settings for `make run`, the load benchmark and a plant server (read from the working directory).

Several processes, each serving one request at a time (gunicorn's sync worker): an idle process takes the
next connection, so a quick request never queues behind a slow one in a busy process, and processes do not
take turns on one interpreter lock as the threads of one process do. Run it behind a reverse proxy that
buffers requests and responses (TLS, slow networks), as a plant server is. Environment: BIND
(127.0.0.1:5000), WEB_WORKERS (2 per CPU + 1), WEB_THREADS (1; more than 1 serves with threads in each
process), ACCESS_LOG ("-" for stdout, a file path, or "off").
"""
import os

bind = os.environ.get("BIND", "127.0.0.1:5000")
workers = int(os.environ.get("WEB_WORKERS") or 2 * (os.cpu_count() or 1) + 1)
threads = int(os.environ.get("WEB_THREADS") or 1)
keepalive = 5  # seconds, with threads (the sync worker closes each connection after its response)
_access_log = os.environ.get("ACCESS_LOG", "-")
accesslog = None if _access_log == "off" else _access_log
# method, path, status and the time taken in milliseconds
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
