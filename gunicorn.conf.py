"""gunicorn settings for `make run`, the load benchmark and a plant server (read from the working directory).

Several processes with few threads each: a request spends most of its time in short database round
trips, and threads of one process take turns on one interpreter lock, so a quick request queued behind a
busy thread in the same process waits for it. Processes do not share that lock. Environment:
BIND (127.0.0.1:5000), WEB_WORKERS (2 per CPU + 1), WEB_THREADS (2), ACCESS_LOG ("-" for stdout,
a file path, or "off").
"""
import os

bind = os.environ.get("BIND", "127.0.0.1:5000")
workers = int(os.environ.get("WEB_WORKERS") or 2 * (os.cpu_count() or 1) + 1)
threads = int(os.environ.get("WEB_THREADS") or 2)
keepalive = 5  # seconds: a tablet's next request usually comes within a few seconds
_access_log = os.environ.get("ACCESS_LOG", "-")
accesslog = None if _access_log == "off" else _access_log
# method, path, status and the time taken in milliseconds
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
