r"""Element-wise unary ops: value, derivative, Diagonal Jacobian and fused vjp.

An element-wise function :math:`f_i(x) = f(x_i)` has the Jacobian

.. math::

    \frac{\partial f}{\partial x} = \mathrm{diag}(f'(x_1), \dots, f'(x_n)),

so every op here returns a :class:`structjac.structures.Diagonal` of ``x.size``
numbers; a batch ``x`` of shape ``(N, d)`` is flattened row-major (sample after
sample).  The vjp :math:`g^T J = g \odot f'(x)` is computed by one fused kernel.

API of every op ``op``:

* ``op(x, out=None)`` -- the value :math:`f(x)`;
* ``op.derivative(x, out=None)`` -- :math:`f'(x)`, shape of ``x``;
* ``op.jacobian(x)`` -- ``Diagonal(f'(x).ravel())``;
* ``op.vjp(x, g, out=None)`` -- :math:`g \odot f'(x)`, ``g`` of the shape of ``x``;
* ``op.value_and_jacobian(x)`` -- ``(f(x), jacobian)``.

``sigmoid`` and ``tanh`` also take the route through the output
:math:`a = f(x)`: ``derivative_from_output(a)``, ``jacobian_from_output(a)`` and
``vjp_from_output(a, g)`` (no exponential is recomputed).

Dtypes: float32 stays float32, float64 stays float64, integers and bools are
computed in float64, mixed ``x``/``g`` follow :func:`numpy.result_type`.  Inputs
are never written to.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from structjac.structures import Jacobian


from structjac.kernels._scalars import ACTIVATIONS as _TABLE
from structjac.kernels.unary import KERNELS as _KERNELS
from structjac.structures import Diagonal

from ._dispatch import dispatched
from ._checks import same_shape

__all__ = [
    "UnaryOp",
    "OutputUnaryOp",
    "Sigmoid",
    "Tanh",
    "ReLU",
    "LeakyReLU",
    "Exp",
    "Log",
    "Softplus",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "exp",
    "log",
    "softplus",
]


class UnaryOp:
    """Base class of the element-wise ops (value, derivative, Jacobian, vjp).

    Subclasses provide ``_value(x, out)``, ``_derivative(x, out)`` and
    ``_vjp(x, g, out)`` operating on array_like inputs.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import exp
    >>> isinstance(exp, UnaryOp)
    True
    >>> exp.vjp(np.zeros(2), np.array([1.0, 3.0]))
    array([1., 3.])
    """

    _op_kind = "unary"  # how foreign-array handlers (structjac._dask) tell the ops apart

    name = "unary"

    #: Exact types whose ``layer_activation`` is valid (a subclass may change the
    #: value or the derivative, so it falls back to the op's own kernels).
    _layer_kernel_owner = None

    @property
    def layer_activation(self) -> str | None:
        """``(name, params)`` of the fused dense-layer kernels in
        ``structjac.kernels.layer`` that compute this op, or None when it has none."""
        if type(self) is not self._layer_kernel_owner:
            return None
        return self._layer_activation()

    def _layer_activation(self):
        return None

    @dispatched
    def __call__(self, x: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
        """Return :math:`f(x)` element-wise (shape of ``x``)."""
        return self._value(x, out)

    @dispatched
    def derivative(self, x: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
        """Return :math:`f'(x)` element-wise (shape of ``x``)."""
        return self._derivative(x, out)

    @dispatched
    def jacobian(self, x: ArrayLike) -> "Jacobian":
        """Return ``Diagonal(f'(x).ravel())``, the Jacobian over ``x.size`` values."""
        d = self._derivative(x, None)  # a fresh float array of the kernel's: no checks
        return Diagonal._wrap(d.reshape(-1))

    @dispatched
    def vjp(self, x: ArrayLike, g: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
        """Return :math:`g \\odot f'(x)` in one fused pass; ``g`` must have the shape of ``x``."""
        x, g = same_shape(x, g, "x", "g")
        return self._vjp(x, g, out)

    @dispatched
    def value_and_jacobian(self, x: ArrayLike) -> tuple[np.ndarray, "Jacobian"]:
        """Return ``(f(x), jacobian(x))``."""
        return self._value(x, None), self.jacobian(x)

    def __repr__(self):
        return f"structjac.ops.{self.name}"


class OutputUnaryOp(UnaryOp):
    """An op whose derivative has a form in its output :math:`a = f(x)`.

    Adds ``derivative_from_output(a)``, ``jacobian_from_output(a)`` and
    ``vjp_from_output(a, g)``.  Use them when the forward pass already holds
    ``a``: they skip the exponential.  ``derivative(x)`` itself uses a formula in
    ``x`` that keeps full relative accuracy in the tails.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import tanh
    >>> tanh.derivative_from_output(np.array([0.0, 0.5]))
    array([1.  , 0.75])
    """

    @dispatched
    def derivative_from_output(self, a: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
        """Return :math:`f'` computed from the output ``a`` (shape of ``a``)."""
        return self._derivative_from_output(a, out)

    @dispatched
    def jacobian_from_output(self, a: ArrayLike) -> "Jacobian":
        """Return ``Diagonal`` of :math:`f'` computed from the output ``a``."""
        return Diagonal(self._derivative_from_output(a, None).reshape(-1), copy=False)

    @dispatched
    def vjp_from_output(
        self, a: ArrayLike, g: ArrayLike, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Return :math:`g \\odot f'` computed from the output ``a``, fused."""
        a, g = same_shape(a, g, "a", "g")
        return self._vjp_from_output(a, g, out)


class _TableOp(UnaryOp):
    """An op computed by the kernels generated from the scalar table entry ``name``
    (:data:`structjac.kernels._scalars.ACTIVATIONS`).

    The parameters of the entry (``slope``, ``at_zero``, ...) are attributes of the
    op, passed to every kernel; ``layer_activation`` names the entry's fused layer
    kernels when it has them.
    """

    def __init__(self, *args, **kwargs):
        names = [n for n, _, _ in _TABLE[self.name].params]
        if len(args) > len(names):
            raise TypeError(
                f"{type(self).__name__}() takes at most {len(names)} "
                f"parameters ({', '.join(names) or 'none'}), got {len(args)}"
            )
        values = dict(zip(names, args))
        for n, default, _ in _TABLE[self.name].params:
            if n in kwargs:
                if n in values:
                    raise TypeError(f"{type(self).__name__}() got {n!r} twice")
                values[n] = kwargs.pop(n)
            setattr(self, n, float(values.get(n, default)))
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}() got unexpected parameters "
                f"{sorted(kwargs)}; it takes {names}"
            )

    #: Set per class from the table entry: its parameter names and its kernels.
    _param_names = ()
    _kernels = None

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        if name in self._param_names:  # a parameter changed: drop the kept tuple
            self.__dict__.pop("_param_values", None)

    def _params(self):
        """The parameters' values in table order, kept between calls."""
        try:
            return self.__dict__["_param_values"]
        except KeyError:
            values = tuple([getattr(self, n) for n in self._param_names])
            self.__dict__["_param_values"] = values
            return values

    def _layer_activation(self):
        return (self.name, self._params()) if _TABLE[self.name].layer else None

    def _value(self, x, out):
        return self._kernels["value"]((x,), self._params(), out)

    def _derivative(self, x, out):
        return self._kernels["derivative"]((x,), self._params(), out)

    def _vjp(self, x, g, out):
        return self._kernels["vjp"]((x, g), self._params(), out)

    def _derivative_from_output(self, a, out):
        return self._kernels["derivative_from_output"]((a,), self._params(), out)

    def _vjp_from_output(self, a, g, out):
        return self._kernels["vjp_from_output"]((a, g), self._params(), out)


class Sigmoid(_TableOp, OutputUnaryOp):
    r"""The logistic sigmoid :math:`\sigma(x) = 1 / (1 + e^{-x})`.

    .. math::

        \sigma'(x) = \sigma(x)(1 - \sigma(x)) = a(1 - a)
                   = \frac{e}{(1 + e)^2}, \quad e = e^{-|x|}.

    ``derivative(x)`` uses :math:`e/(1+e)^2` with :math:`e = e^{-|x|}`: no
    overflow and full relative accuracy in both tails (float32 down to
    :math:`\sigma'(\pm 80) \approx 1.8\cdot 10^{-35}`).  The textbook
    :math:`a(1 - a)` is available through ``derivative_from_output(a)``,
    ``jacobian_from_output(a)`` and ``vjp_from_output(a, g)``; it loses relative
    accuracy when :math:`a` is close to 1.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import sigmoid
    >>> z = np.array([[-2.0, 0.0], [1.0, 3.0]])     # a batch (N=2, d=2)
    >>> a = sigmoid(z)
    >>> J = sigmoid.jacobian(z)                     # diag over the 4 values
    >>> J.shape
    (4, 4)
    >>> bool(np.allclose(J.diagonal(), (a * (1 - a)).ravel()))
    True
    >>> g = np.ones_like(z)
    >>> bool(np.allclose(sigmoid.vjp_from_output(a, g), sigmoid.vjp(z, g)))
    True
    >>> sigmoid(np.float32([0.0])).dtype
    dtype('float32')
    """

    name = "sigmoid"


class Tanh(_TableOp, OutputUnaryOp):
    r"""The hyperbolic tangent.

    .. math::

        \tanh'(x) = (1 + a)(1 - a) = \frac{4e}{(1 + e)^2}, \quad a = \tanh x,\ e = e^{-2|x|}.

    ``derivative(x)`` uses :math:`4e/(1+e)^2` (accurate in the tails);
    ``derivative_from_output(a)`` is :math:`(1 + a)(1 - a)`, about
    1000x more accurate in float32 than :math:`1 - a^2`.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import tanh
    >>> x = np.array([-1.0, 0.0, 0.5])
    >>> bool(np.allclose(tanh.derivative(x), 1 - np.tanh(x) ** 2))
    True
    >>> a = tanh(x)
    >>> bool(np.allclose(tanh.jacobian_from_output(a).diagonal(), (1 + a) * (1 - a)))
    True
    """

    name = "tanh"


class ReLU(_TableOp, UnaryOp):
    r"""The rectifier :math:`\mathrm{ReLU}(x) = \max(x, 0)`.

    .. math::

        \mathrm{ReLU}'(x) = \begin{cases} 1 & x > 0 \\ c & x = 0 \\ 0 & x < 0 \end{cases}

    ReLU has no derivative at 0; any :math:`c \in [0, 1]` is a subgradient.
    The lecture *Element-wise Operations and Jacobians* takes :math:`c = 1`
    (":math:`1` for :math:`z \ge 0`") and so does
    ``structjac.ops.relu``; PyTorch and JAX take :math:`c = 0`, which is
    ``ReLU(at_zero=0.0)`` or ``relu.with_derivative_at_zero(0.0)``.  NaN in
    gives NaN out (value, derivative and vjp) -- never a silent 0.

    Parameters
    ----------
    at_zero : float, default 1.0
        The derivative used at exactly ``x == 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import relu, ReLU
    >>> x = np.array([-1.0, 0.0, 2.0, np.nan])
    >>> relu(x)
    array([ 0.,  0.,  2., nan])
    >>> relu.derivative(x)
    array([ 0.,  1.,  1., nan])
    >>> ReLU(at_zero=0.0).derivative(x)
    array([ 0.,  0.,  1., nan])
    >>> relu.with_derivative_at_zero(0.5).jacobian(x[:3]).diagonal()
    array([0. , 0.5, 1. ])
    """

    name = "relu"

    def __init__(self, at_zero: float = 1.0) -> None:
        self.at_zero = float(at_zero)

    def with_derivative_at_zero(self, at_zero: float) -> "ReLU":
        """Return a new ``ReLU`` with derivative ``at_zero`` at 0."""
        return type(self)(at_zero=at_zero)

    def __repr__(self):
        return f"structjac.ops.ReLU(at_zero={self.at_zero!r})"


class LeakyReLU(_TableOp, UnaryOp):
    r"""Leaky rectifier :math:`f(x) = x` for :math:`x \ge 0`, :math:`s x` for :math:`x < 0`.

    .. math::

        f'(x) = \begin{cases} 1 & x > 0 \\ c & x = 0 \\ s & x < 0 \end{cases}

    Parameters
    ----------
    slope : float, default 0.01
        The slope :math:`s` for negative inputs.
    at_zero : float, default 1.0
        The derivative :math:`c` at exactly 0 (the convention of :class:`ReLU`).

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import leaky_relu, LeakyReLU
    >>> x = np.array([-2.0, 0.0, 3.0])
    >>> leaky_relu(x)
    array([-0.02,  0.  ,  3.  ])
    >>> LeakyReLU(slope=0.2).derivative(x)
    array([0.2, 1. , 1. ])
    >>> leaky_relu.with_slope(0.1).vjp(x, np.full(3, 2.0))
    array([0.2, 2. , 2. ])
    """

    name = "leaky_relu"

    def __init__(self, slope: float = 0.01, at_zero: float = 1.0) -> None:
        self.slope = float(slope)
        self.at_zero = float(at_zero)

    def with_slope(self, slope: float) -> "LeakyReLU":
        """Return a new ``LeakyReLU`` with negative slope ``slope``."""
        return type(self)(slope=slope, at_zero=self.at_zero)

    def with_derivative_at_zero(self, at_zero: float) -> "LeakyReLU":
        """Return a new ``LeakyReLU`` with derivative ``at_zero`` at 0."""
        return type(self)(slope=self.slope, at_zero=at_zero)

    def __repr__(self):
        return f"structjac.ops.LeakyReLU(slope={self.slope!r}, at_zero={self.at_zero!r})"


class Exp(_TableOp, UnaryOp):
    r"""The exponential, its own derivative: :math:`\exp'(x) = e^x`.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import exp
    >>> x = np.array([0.0, 1.0])
    >>> bool(np.allclose(exp.jacobian(x).to_dense(), np.diag(np.exp(x))))
    True
    """

    name = "exp"


class Log(_TableOp, UnaryOp):
    r"""The natural logarithm, :math:`\log'(x) = 1/x`.

    Outside the domain the IEEE results are returned, without a warning:
    :math:`\log x` is NaN for :math:`x < 0` and :math:`-\infty` at 0; the
    derivative :math:`1/x` is finite for negative :math:`x` (the formula is
    evaluated as written) and infinite at 0.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import log
    >>> log(np.array([1.0, 0.0, -1.0]))
    array([  0., -inf,  nan])
    >>> log.derivative(np.array([2.0, 4.0]))
    array([0.5 , 0.25])
    """

    name = "log"


class Softplus(_TableOp, UnaryOp):
    r"""Softplus :math:`\log(1 + e^x)`, whose derivative is the sigmoid.

    .. math::

        \mathrm{softplus}(x) = \max(x, 0) + \mathrm{log1p}(e^{-|x|}), \qquad
        \mathrm{softplus}'(x) = \sigma(x).

    The rewritten form neither overflows for large :math:`x` nor loses digits
    for very negative :math:`x`.

    Examples
    --------
    >>> import numpy as np
    >>> from structjac.ops import softplus
    >>> x = np.array([-50.0, 0.0, 800.0])
    >>> bool(np.allclose(softplus(x), [np.exp(-50.0), np.log(2.0), 800.0], rtol=1e-15, atol=0))
    True
    >>> bool(np.allclose(softplus.derivative(x), 1 / (1 + np.exp(-x))))
    True
    """

    name = "softplus"


#: The logistic sigmoid (see :class:`Sigmoid`).
sigmoid = Sigmoid()
#: The hyperbolic tangent (see :class:`Tanh`).
tanh = Tanh()
#: ReLU with derivative 1 at 0 (see :class:`ReLU`).
relu = ReLU()
#: Leaky ReLU with slope 0.01 (see :class:`LeakyReLU`).
leaky_relu = LeakyReLU()
#: The exponential (see :class:`Exp`).
exp = Exp()
#: The natural logarithm (see :class:`Log`).
log = Log()
#: Softplus (see :class:`Softplus`).
softplus = Softplus()


def _generated_doc(name, entry):
    value_doc, derivative_doc, _ = entry.docs
    return (
        f"{value_doc}\n\nDerivative: {derivative_doc}\n\n"
        "Generated from its entry in the kernels' table of scalar functions.\n\n"
        "Examples\n--------\n"
        ">>> import numpy as np\n"
        f">>> from structjac.ops import {name}\n"
        ">>> x = np.linspace(-2.0, 2.0, 5)\n"
        f">>> bool(np.array_equal({name}.vjp(x, np.ones(5)), {name}.derivative(x)))\n"
        "True\n"
        f">>> {name}.jacobian(x).shape\n"
        "(5, 5)\n"
    )


#: The names of the element-wise ops made from the table, in its order.
TABLE_OPS = []

# Every table entry with an op: its class (written above when it has more to say, or
# made here from the entry), marked as computed by the entry's layer kernels, and its
# default instance.
for _name, _entry in _TABLE.items():
    if _entry.op is None:
        continue
    _cls = globals().get(_entry.op)
    if _cls is None:
        _base = UnaryOp if _entry.from_output is None else OutputUnaryOp
        _cls = type(
            _entry.op,
            (_TableOp, _base),
            {
                "__doc__": _generated_doc(_name, _entry),
                "name": _name,
                "__module__": __name__,
                "__qualname__": _entry.op,
            },
        )
        globals()[_entry.op] = _cls
        __all__.append(_entry.op)
    _cls._layer_kernel_owner = _cls
    _cls._param_names = tuple(n for n, _, _ in _entry.params)
    _cls._kernels = _KERNELS[_name]
    if _name not in globals():
        globals()[_name] = _cls()
        __all__.append(_name)
    TABLE_OPS.append(_name)
del _name, _entry, _cls
