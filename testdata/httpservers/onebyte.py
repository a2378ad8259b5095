"""Keep-alive HTTP/1.1 server that, like Go's net/http, reads the first
byte of every request after the first on a connection with a separate
1-byte read. Answers 200 "ok" to everything. Prints "listening on URL".
"""
import socket
import threading

RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n"


def serve(conn):
    with conn:
        first = True
        while True:
            head = b"" if first else conn.recv(1)
            if not first and not head:
                return
            data = head + conn.recv(4096)
            if not data:
                return
            first = False
            conn.sendall(RESP)


ln = socket.socket()
ln.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ln.bind(("127.0.0.1", 0))
ln.listen(64)
print("listening on http://%s:%d" % ln.getsockname(), flush=True)
while True:
    c, _ = ln.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
