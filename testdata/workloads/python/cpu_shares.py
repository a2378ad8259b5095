# Three functions spending CPU 6:3:1 through a shared helper, in a loop.
# Prints "ready=0x1" first (workload.Start reads one address line).
import sys


def helper(n):
    # Shared by the three callers: its time belongs to each caller.
    x = 0
    for i in range(n):
        x += i * i
    return x


def py_alpha():
    return helper(6000)


def py_beta():
    return helper(3000)


def py_gamma():
    return helper(1000)


def main():
    print("ready=0x1", flush=True)
    while True:
        py_alpha()
        py_beta()
        py_gamma()


if __name__ == "__main__":
    main()
