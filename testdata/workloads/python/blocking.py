# Off-CPU: py_sleeper blocks in time.sleep, py_reader in a socket read
# whose peer (another process, so no GIL hand-off) answers after a delay;
# 3:1 in time. With a file name argument it writes there, every half
# second, the time each function really took so far ("sleeper reader", in
# seconds): wake-up latencies make the ratio a little less than 3:1.
import os
import socket
import subprocess
import sys
import time

SLEEP = 0.06
READ = 0.02

PEER = """
import socket, sys, time
s = socket.socket(fileno=int(sys.argv[1]))
while s.recv(1):
    time.sleep(float(sys.argv[2]))
    s.sendall(b"x")
"""


def py_sleeper():
    time.sleep(SLEEP)


def py_reader(sock):
    sock.sendall(b"?")
    sock.recv(1)


def main():
    a, b = socket.socketpair()
    subprocess.Popen([sys.executable, "-c", PEER, str(b.fileno()), str(READ)], pass_fds=[b.fileno()])
    b.close()
    out = sys.argv[1] if len(sys.argv) > 1 else None
    spent = [0.0, 0.0]
    last = time.monotonic()
    print("ready=0x1", flush=True)
    while True:
        t0 = time.monotonic()
        py_sleeper()
        t1 = time.monotonic()
        py_reader(a)
        t2 = time.monotonic()
        spent[0] += t1 - t0
        spent[1] += t2 - t1
        if out and t2 - last > 0.5:
            last = t2
            with open(out + ".tmp", "w") as f:
                f.write("%f %f" % (spent[0], spent[1]))
            os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
