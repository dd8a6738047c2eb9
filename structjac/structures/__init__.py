"""The structured Jacobians, one module per type.

Lattice by inheritance: ``Identity < ScaledIdentity < Diagonal < Jacobian``, so that a
rule written for :class:`Diagonal` serves the tighter types and a tighter rule overrides.
"""

from .base import Jacobian
from .diagonal import Diagonal
from .scaled_identity import ScaledIdentity
from .identity import Identity
from .zero import Zero
from .blockrow import BlockRow
from .blockcolumn import BlockColumn
from .kronecker import Kronecker
from .dense import Dense
from .sparse import Sparse
from .stacked_kronecker import StackedKronecker
from .row_scaled import RowScaled, Transposed
from .block_diagonal import BlockDiagonal
from .block_matrix import BlockMatrix, block, hstack, vstack
from ._wrap import as_jacobian

__all__ = [
    "Jacobian",
    "Identity",
    "ScaledIdentity",
    "Zero",
    "Diagonal",
    "BlockRow",
    "BlockColumn",
    "Kronecker",
    "Dense",
    "Sparse",
    "StackedKronecker",
    "RowScaled",
    "Transposed",
    "BlockDiagonal",
    "BlockMatrix",
    "hstack",
    "vstack",
    "block",
]
