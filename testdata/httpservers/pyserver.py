"""HTTP/1.1 keep-alive test server for the HTTP monitor tests (stdlib only).

  /work          sleeps SLEEP seconds (argv[1], default 0.03), then answers
                 500 to exactly one request in five and 200 to the others
  /status/NNN    answers status NNN
  anything else  answers 200 "ok"

Prints "listening on http://ADDR" once it accepts connections.
"""
import http.server
import sys
import threading
import time

SLEEP = float(sys.argv[1]) if len(sys.argv) > 1 else 0.03
lock = threading.Lock()
count = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, code, body=b"ok\n"):
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        global count
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        path = self.path.split("?", 1)[0]
        if path == "/work":
            time.sleep(SLEEP)
            with lock:
                count += 1
                fail = count % 5 == 0
            self._send(500 if fail else 200)
        elif path.startswith("/status/"):
            try:
                code = int(path[len("/status/"):])
            except ValueError:
                code = 400
            self._send(code, b"")
        else:
            self._send(200)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    def log_message(self, *args):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
print("listening on http://%s:%d" % srv.server_address, flush=True)
srv.serve_forever()
