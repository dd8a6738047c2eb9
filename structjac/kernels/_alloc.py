r"""The allocation of the kernels' outputs: large ones aligned to huge pages.

A new output of the kernels comes from :func:`empty`.  Below
:data:`ALIGN_MIN_BYTES` it is :func:`numpy.empty`.  From there on it is a view of
a slightly larger numpy allocation whose first element lies on a 2 MiB boundary.

Why
---
An allocation above glibc's largest ``mmap`` threshold (32 MiB on 64-bit
systems) is a fresh ``mmap`` every time: each of its pages faults on its first
write, and the kernel zeroes it then.  numpy asks for transparent huge pages
(``madvise(MADV_HUGEPAGE)``) on allocations of 4 MiB and more, but the block that
``malloc`` returns starts 16 bytes past a 4 KiB page boundary, not on a 2 MiB one.
Only the 2 MiB regions lying wholly inside the block can be huge pages; the
partial regions at both ends fault page by page.  10^7 float32 (40 MB) take 568
faults: 18 huge pages, and about 550 faults of 4 KiB pages at the two ends.  The
aligned block takes 21.  The zeroing is the same, but the traps are fewer.

Measured with ``scripts/perf_alloc.py`` (10^7 elements, one thread, best of 25
interleaved rounds, thread CPU time): the serial sigmoid/relu vjp into a fresh
output took 4--12 % less time aligned than in ``np.empty`` (float32 sigmoid 8.70
to 8.35 ms, relu 8.09 to 7.13 ms; float64 19.9 to 18.5 ms and 15.2 to 13.5 ms).
``np.multiply`` into an aligned output gains 3--15 % too.

Cost
----
At most 2 MiB of address space before the array, never touched and so never
resident.  The tail is rounded up to a whole 2 MiB region so that it can be a huge
page too: at most 2 MiB resident beyond the array, under 7 % of an array of
:data:`ALIGN_MIN_BYTES` or more.  The result does not own its memory
(``flags.owndata`` is False, ``base`` is the byte buffer), so ``ndarray.resize``
refuses it, as it refuses any view.  Where transparent huge pages are off, no page
beyond the array's is touched and nothing changes.  Nothing is set at import:
the only state is numpy's own hugepage setting.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ALIGN_MIN_BYTES", "HUGE_PAGE", "empty"]

#: The alignment of large outputs: the x86-64 / arm64 (4 KiB base page) huge page size.
HUGE_PAGE = 1 << 21

#: Outputs of this many bytes or more are aligned to :data:`HUGE_PAGE`.  This is glibc's
#: largest dynamic ``mmap`` threshold (``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit
#: systems): smaller blocks are reused from the heap after their first free, without
#: page faults, so aligning them gains nothing.
ALIGN_MIN_BYTES = 32 << 20


def empty(shape, dtype) -> np.ndarray:
    """Return a new uninitialised C-contiguous array, aligned to a huge page when large.

    Parameters
    ----------
    shape : int or tuple of int
    dtype : data-type

    Returns
    -------
    ndarray
        Of ``shape`` and ``dtype``, C-contiguous and writeable.  From
        :data:`ALIGN_MIN_BYTES` bytes on (and not empty), its data start on a :data:`HUGE_PAGE`
        boundary and it is a view of a byte buffer (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> a = empty((2, 3), np.float32)
    >>> a.shape, a.dtype, a.flags.c_contiguous
    ((2, 3), dtype('float32'), True)
    >>> b = empty(ALIGN_MIN_BYTES // 8, np.float64)
    >>> b.ctypes.data % HUGE_PAGE, b.flags.writeable
    (0, True)
    """
    out = np.empty(shape, dtype=dtype)  # the small case at numpy's cost (no Python
    nbytes = out.nbytes  # arithmetic on the shape); a large one is only mapped, untouched
    if nbytes < ALIGN_MIN_BYTES or nbytes == 0:
        return out
    shape, dtype = out.shape, out.dtype
    del out  # unmapped before the aligned block is mapped
    rounded = -(-nbytes // HUGE_PAGE) * HUGE_PAGE
    raw = np.empty(rounded + HUGE_PAGE, dtype=np.uint8)
    start = -raw.ctypes.data % HUGE_PAGE
    return raw[start : start + nbytes].view(dtype).reshape(shape)
