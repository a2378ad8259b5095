# Prints, for every code object compiled from the file named first, its
# line table and the line CPython itself gives for each code unit: the
# expectation for the Go decoders (linetable_test.go).
import dis
import json
import sys
import types


def expected(c):
    n = len(c.co_code) // 2
    if hasattr(c, "co_positions"):  # 3.11+
        return [p[0] if p[0] is not None else -1 for p in c.co_positions()]
    if hasattr(c, "co_lines"):  # 3.10
        out = [-1] * n
        for start, end, line in c.co_lines():
            for i in range(start // 2, end // 2):
                out[i] = line if line is not None else -1
        return out
    starts = dict(dis.findlinestarts(c))  # 3.8, 3.9
    out, cur = [], c.co_firstlineno
    for i in range(n):
        cur = starts.get(2 * i, cur)
        out.append(cur)
    return out


def walk(c, out):
    table = c.co_linetable if hasattr(c, "co_linetable") else c.co_lnotab
    out.append({"name": c.co_name, "first": c.co_firstlineno, "table": table.hex(), "lines": expected(c)})
    for k in c.co_consts:
        if isinstance(k, types.CodeType):
            walk(k, out)


out = []
walk(compile(open(sys.argv[1]).read(), sys.argv[1], "exec"), out)
json.dump(out, sys.stdout)
