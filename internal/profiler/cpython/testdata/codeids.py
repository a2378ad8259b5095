# Prints the addresses (id) of a few code objects and of a non-code object,
# then waits: for the code object reader's test.
import sys
import time


class Widget:
    def py_method(self):
        return 1


def py_func():
    return 2


def py_ünicode():
    return 3


print("method=0x%x func=0x%x uni=0x%x notcode=0x%x" % (
    id(Widget.py_method.__code__), id(py_func.__code__), id(py_ünicode.__code__), id([])), flush=True)
sys.stdin.read()
time.sleep(3600)
