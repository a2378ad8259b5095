# A fixed amount of Python work (the 6:3:1 functions of cpu_shares.py,
# argv[1] rounds), then exit: for overhead comparisons.
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import cpu_shares  # noqa: E402

for _ in range(int(sys.argv[1])):
    cpu_shares.py_alpha()
    cpu_shares.py_beta()
    cpu_shares.py_gamma()
