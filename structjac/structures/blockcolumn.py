r"""Block columns: the transpose of a :class:`BlockRow`, a few nonzero columns.

:math:`(e_i x^T)^T = x e_i^T`: the transpose of a block row keeps its structure.
"""

from __future__ import annotations

# BlockColumn is defined beside BlockRow: each is the other's transpose.
from .blockrow import BlockColumn

__all__ = ["BlockColumn"]
