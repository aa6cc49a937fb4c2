#!/usr/bin/env python3
"""A push provider for the tests (t/053-push.t): an HTTP server on
127.0.0.1:PORT that takes notifications as the webhook provider gets them.

  push_receiver.py --port N --log FILE [--control FILE] [--ready FILE]

Every POST is appended to --log as one JSON line
{"at": <ms since the epoch>, "path": ..., "status": <answered>, "body": <the
request body, parsed, or its text>}.  What it answers comes from --control,
read at each request: a JSON object {"statuses": [500, 500], "default": 200,
"delay_ms": 0}; each request takes the first of "statuses" (and the file is
written back without it), then "default".  A GET answers 200 "ok" (the test's
readiness probe); anything else 405.
"""

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


def next_status(control):
    if not control or not os.path.exists(control):
        return 200, 0
    with open(control) as f:
        try:
            c = json.load(f)
        except ValueError:
            return 200, 0
    status = c.get("default", 200)
    statuses = c.get("statuses") or []
    if statuses:
        status = statuses.pop(0)
        c["statuses"] = statuses
        tmp = control + ".tmp"
        with open(tmp, "w") as f:
            json.dump(c, f)
        os.replace(tmp, control)
    return int(status), int(c.get("delay_ms", 0))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer(200, "ok")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n).decode("utf-8", "replace")
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        with LOCK:
            status, delay = next_status(self.server.control)
            with open(self.server.log, "a") as f:
                f.write(json.dumps({"at": int(time.time() * 1000),
                                    "path": self.path, "status": status,
                                    "body": body}) + "\n")
        if delay:
            time.sleep(delay / 1000.0)
        self.answer(status, "{}")

    def do_PUT(self):
        self.answer(405, "{}")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # a client gone mid-answer (the test kills the worker): not news
        pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--control")
    p.add_argument("--ready")
    a = p.parse_args()
    srv = Server(("127.0.0.1", a.port), Handler)
    srv.log = a.log
    srv.control = a.control
    if a.ready:
        with open(a.ready, "w") as f:
            f.write(str(os.getpid()))
    srv.serve_forever()


if __name__ == "__main__":
    main()
