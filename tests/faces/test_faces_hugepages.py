from __future__ import annotations

import itertools
import platform
import subprocess
import sys
import textwrap

import pytest

from mlnb.faces.hugepages import heap_ranges

LINUX = sys.platform == "linux"
#: MADV_COLLAPSE came with Linux 6.1
COLLAPSE_SUPPORTED = LINUX and tuple(map(int, platform.release().split(".")[:2])) >= (6, 1)

#: run in a fresh interpreter, whose heap no earlier test has shaped: 8 MB of small malloc blocks
#: holding a pattern, collapsed, then the heap's huge-page bytes and whether the pattern survived
CHILD = textwrap.dedent("""
    import ctypes
    from pathlib import Path
    import numpy as np
    from mlnb.faces.hugepages import collapse_heap

    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
    values = np.arange(1000, dtype=np.int32)
    blocks = [libc.malloc(values.nbytes) for _ in range(2048)]
    for block in blocks:
        ctypes.memmove(block, values.ctypes.data, values.nbytes)
    collapsed = collapse_heap()
    in_heap, huge = False, 0
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if "-" in line.split(maxsplit=1)[0]:  # a mapping's header line
            in_heap = line.rstrip().endswith("[heap]")
        elif in_heap and line.startswith("AnonHugePages:"):
            huge += int(line.split()[1]) * 1024
    kept = all((np.ctypeslib.as_array((ctypes.c_int32 * 1000).from_address(block)) == values).all()
               for block in blocks)
    print(collapsed, huge, kept)
""")


@pytest.mark.skipif(not LINUX, reason="/proc/self/maps is Linux's")
def test_heap_ranges_are_page_aligned_and_in_order():
    ranges = heap_ranges()
    assert ranges and all(0 < start < end and start % 4096 == 0 and end % 4096 == 0 for start, end in ranges)
    assert all(previous[1] <= following[0] for previous, following in itertools.pairwise(ranges))


@pytest.mark.skipif(not COLLAPSE_SUPPORTED, reason="MADV_COLLAPSE needs Linux 6.1 or later")
def test_collapsing_moves_the_heap_to_huge_pages_and_keeps_its_contents():
    child = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    collapsed, huge_bytes, kept = child.stdout.split()
    assert (collapsed, kept) == ("True", "True")
    assert int(huge_bytes) >= 8 * 1024 * 1024


@pytest.mark.skipif(LINUX, reason="elsewhere than Linux")
def test_elsewhere_nothing_happens():
    from mlnb.faces.hugepages import collapse_heap

    assert heap_ranges() == [] and collapse_heap() is False
