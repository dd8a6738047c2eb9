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

``sigmoid`` and ``tanh`` also take the lecture's route through the output
:math:`a = f(x)`: ``derivative_from_output(a)``, ``jacobian_from_output(a)`` and
``vjp_from_output(a, g)`` (no exponential is recomputed).

Dtypes: float32 stays float32, float64 stays float64, integers and bools are
computed in float64, mixed ``x``/``g`` follow :func:`numpy.result_type`.  Inputs
are never written to.
"""

from __future__ import annotations


from structjac import kernels as _k
from structjac.structures import Diagonal

from ._dispatch import dispatched
from ._checks import same_shape

__all__ = [
    "UnaryOp", "OutputUnaryOp",
    "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "Exp", "Log", "Softplus",
    "sigmoid", "tanh", "relu", "leaky_relu", "exp", "log", "softplus",
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
    def layer_activation(self):
        """``(name, params)`` of the fused dense-layer kernels in
        ``structjac.kernels.layer`` that compute this op, or None when it has none."""
        if type(self) is not self._layer_kernel_owner:
            return None
        return self._layer_activation()

    def _layer_activation(self):
        return None

    @dispatched
    def __call__(self, x, out=None):
        """Return :math:`f(x)` element-wise (shape of ``x``)."""
        return self._value(x, out)

    @dispatched
    def derivative(self, x, out=None):
        """Return :math:`f'(x)` element-wise (shape of ``x``)."""
        return self._derivative(x, out)

    @dispatched
    def jacobian(self, x):
        """Return ``Diagonal(f'(x).ravel())``, the Jacobian over ``x.size`` values."""
        d = self._derivative(x, None)
        return Diagonal(d.reshape(-1), copy=False)

    @dispatched
    def vjp(self, x, g, out=None):
        """Return :math:`g \\odot f'(x)` in one fused pass; ``g`` must have the shape of ``x``."""
        x, g = same_shape(x, g, "x", "g")
        return self._vjp(x, g, out)

    @dispatched
    def value_and_jacobian(self, x):
        """Return ``(f(x), jacobian(x))``."""
        return self._value(x, None), self.jacobian(x)

    def __repr__(self):
        return f"structjac.ops.{self.name}"


class OutputUnaryOp(UnaryOp):
    """An op whose derivative the lecture writes through its output :math:`a = f(x)`.

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
    def derivative_from_output(self, a, out=None):
        """Return :math:`f'` computed from the output ``a`` (shape of ``a``)."""
        return self._derivative_from_output(a, out)

    @dispatched
    def jacobian_from_output(self, a):
        """Return ``Diagonal`` of :math:`f'` computed from the output ``a``."""
        return Diagonal(self._derivative_from_output(a, None).reshape(-1), copy=False)

    @dispatched
    def vjp_from_output(self, a, g, out=None):
        """Return :math:`g \\odot f'` computed from the output ``a``, fused."""
        a, g = same_shape(a, g, "a", "g")
        return self._vjp_from_output(a, g, out)


class Sigmoid(OutputUnaryOp):
    r"""The logistic sigmoid :math:`\sigma(x) = 1 / (1 + e^{-x})`.

    .. math::

        \sigma'(x) = \sigma(x)(1 - \sigma(x)) = a(1 - a)
                   = \frac{e}{(1 + e)^2}, \quad e = e^{-|x|}.

    ``derivative(x)`` uses :math:`e/(1+e)^2` with :math:`e = e^{-|x|}`: no
    overflow and full relative accuracy in both tails (float32 down to
    :math:`\sigma'(\pm 80) \approx 1.8\cdot 10^{-35}`).  The lecture's
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

    def _layer_activation(self):
        return "sigmoid", ()

    def _value(self, x, out):
        return _k.sigmoid(x, out=out)

    def _derivative(self, x, out):
        return _k.sigmoid_derivative(x, out=out)

    def _vjp(self, x, g, out):
        return _k.sigmoid_vjp(x, g, out=out)

    def _derivative_from_output(self, a, out):
        return _k.sigmoid_derivative_from_output(a, out=out)

    def _vjp_from_output(self, a, g, out):
        return _k.sigmoid_vjp_from_output(a, g, out=out)


class Tanh(OutputUnaryOp):
    r"""The hyperbolic tangent.

    .. math::

        \tanh'(x) = (1 + a)(1 - a) = \frac{4e}{(1 + e)^2}, \quad a = \tanh x,\ e = e^{-2|x|}.

    ``derivative(x)`` uses :math:`4e/(1+e)^2` (accurate in the tails);
    ``derivative_from_output(a)`` is the lecture's :math:`(1 + a)(1 - a)`, about
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

    def _layer_activation(self):
        return "tanh", ()

    def _value(self, x, out):
        return _k.tanh(x, out=out)

    def _derivative(self, x, out):
        return _k.tanh_derivative(x, out=out)

    def _vjp(self, x, g, out):
        return _k.tanh_vjp(x, g, out=out)

    def _derivative_from_output(self, a, out):
        return _k.tanh_derivative_from_output(a, out=out)

    def _vjp_from_output(self, a, g, out):
        return _k.tanh_vjp_from_output(a, g, out=out)


class ReLU(UnaryOp):
    r"""The rectifier :math:`\mathrm{ReLU}(x) = \max(x, 0)`.

    .. math::

        \mathrm{ReLU}'(x) = \begin{cases} 1 & x > 0 \\ c & x = 0 \\ 0 & x < 0 \end{cases}

    ReLU has no derivative at 0; any :math:`c \in [0, 1]` is a subgradient.  The
    lecture takes :math:`c = 1` (":math:`1` for :math:`z \ge 0`") and so does
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

    def _layer_activation(self):
        return "relu", (self.at_zero,)

    def __init__(self, at_zero=1.0):
        self.at_zero = float(at_zero)

    def with_derivative_at_zero(self, at_zero):
        """Return a new ``ReLU`` with derivative ``at_zero`` at 0."""
        return type(self)(at_zero=at_zero)

    def _value(self, x, out):
        return _k.relu(x, out=out)

    def _derivative(self, x, out):
        return _k.relu_derivative(x, self.at_zero, out=out)

    def _vjp(self, x, g, out):
        return _k.relu_vjp(x, g, self.at_zero, out=out)

    def __repr__(self):
        return f"structjac.ops.ReLU(at_zero={self.at_zero!r})"


class LeakyReLU(UnaryOp):
    r"""Leaky rectifier :math:`f(x) = x` for :math:`x \ge 0`, :math:`s x` for :math:`x < 0`.

    .. math::

        f'(x) = \begin{cases} 1 & x > 0 \\ c & x = 0 \\ s & x < 0 \end{cases}

    Parameters
    ----------
    slope : float, default 0.01
        The slope :math:`s` for negative inputs.
    at_zero : float, default 1.0
        The derivative :math:`c` at exactly 0 (the lecture's ReLU convention).

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

    def _layer_activation(self):
        return "leaky_relu", (self.slope, self.at_zero)

    def __init__(self, slope=0.01, at_zero=1.0):
        self.slope = float(slope)
        self.at_zero = float(at_zero)

    def with_slope(self, slope):
        """Return a new ``LeakyReLU`` with negative slope ``slope``."""
        return type(self)(slope=slope, at_zero=self.at_zero)

    def with_derivative_at_zero(self, at_zero):
        """Return a new ``LeakyReLU`` with derivative ``at_zero`` at 0."""
        return type(self)(slope=self.slope, at_zero=at_zero)

    def _value(self, x, out):
        return _k.leaky_relu(x, self.slope, out=out)

    def _derivative(self, x, out):
        return _k.leaky_relu_derivative(x, self.slope, self.at_zero, out=out)

    def _vjp(self, x, g, out):
        return _k.leaky_relu_vjp(x, g, self.slope, self.at_zero, out=out)

    def __repr__(self):
        return f"structjac.ops.LeakyReLU(slope={self.slope!r}, at_zero={self.at_zero!r})"


class Exp(UnaryOp):
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

    def _value(self, x, out):
        return _k.exp(x, out=out)

    def _derivative(self, x, out):
        return _k.exp_derivative(x, out=out)

    def _vjp(self, x, g, out):
        return _k.exp_vjp(x, g, out=out)


class Log(UnaryOp):
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

    def _value(self, x, out):
        return _k.log(x, out=out)

    def _derivative(self, x, out):
        return _k.log_derivative(x, out=out)

    def _vjp(self, x, g, out):
        return _k.log_vjp(x, g, out=out)


class Softplus(UnaryOp):
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

    def _layer_activation(self):
        return "softplus", ()

    def _value(self, x, out):
        return _k.softplus(x, out=out)

    def _derivative(self, x, out):
        return _k.softplus_derivative(x, out=out)

    def _vjp(self, x, g, out):
        return _k.softplus_vjp(x, g, out=out)


#: The logistic sigmoid (see :class:`Sigmoid`).
sigmoid = Sigmoid()
#: The hyperbolic tangent (see :class:`Tanh`).
tanh = Tanh()
#: ReLU with the lecture's derivative 1 at 0 (see :class:`ReLU`).
relu = ReLU()
for _cls in (Sigmoid, Tanh, ReLU, LeakyReLU, Softplus):
    _cls._layer_kernel_owner = _cls
del _cls

#: Leaky ReLU with slope 0.01 (see :class:`LeakyReLU`).
leaky_relu = LeakyReLU()
#: The exponential (see :class:`Exp`).
exp = Exp()
#: The natural logarithm (see :class:`Log`).
log = Log()
#: Softplus (see :class:`Softplus`).
softplus = Softplus()
