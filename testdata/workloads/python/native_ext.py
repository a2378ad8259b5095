# A C extension in a loop: zlib compresses under py_compress, the Python
# caller.
import zlib

DATA = bytes(range(256)) * 4096


def py_compress():
    return zlib.compress(DATA, 6)


def main():
    print("ready=0x1", flush=True)
    while True:
        py_compress()


if __name__ == "__main__":
    main()
