# Each thread in its own Python function: "one" spins in py_one_work
# (holding the GIL most of the time), "two" sleeps in py_two_sleep, the
# main thread waits in py_main_wait. A walker that took the GIL holder's
# stack instead of each thread's own would show py_one_work everywhere.
import threading
import time


def spin(n):
    x = 0
    for i in range(n):
        x ^= i
    return x


def py_one_work():
    while True:
        spin(1000)


def py_two_sleep():
    while True:
        time.sleep(0.02)


def py_main_wait(ev):
    ev.wait(0.05)


def main():
    threading.Thread(target=py_one_work, name="one", daemon=True).start()
    threading.Thread(target=py_two_sleep, name="two", daemon=True).start()
    ev = threading.Event()
    print("ready=0x1", flush=True)
    while True:
        py_main_wait(ev)


if __name__ == "__main__":
    main()
