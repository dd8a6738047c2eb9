"""Loss gradients over a batch of N predictions (reduction "mean", the lecture's 1/N).

``LossGrad_<loss>.time_op`` forms:

``structured``
    ``loss.grad(y, y_hat)``, the fused kernel;
``structured_jacobian``
    ``loss.jacobian(y, y_hat)``, the 1 x N structure ``(1/N) 1^T diag(dJ0/dy_hat)``;
``numpy``
    the gradient written in numpy;
``dense``
    the lecture's chain materialised: ``(1/N) 1^T @ np.diag(dJ0/dy_hat)``, an N x N
    diagonal built and multiplied (what a dense-Jacobian framework holds).
"""

from __future__ import annotations

import numpy as np

from .common import StructuredVsDense, dense_bytes, rng, structjac_part

SIZES = (1024, 8192, 65536, 1_048_576)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _bce_partial(y, p):
    p = np.clip(p, 1e-12, 1.0 - 1e-12)
    return (p - y) / (p * (1.0 - p))


# name: (inputs(n) -> (y, second argument), per-element partial dJ0/dy_hat in numpy)
LOSSES = {
    "mse": (
        lambda n: (rng(0).standard_normal(n), rng(1).standard_normal(n)),
        lambda y, yh: -2.0 * (y - yh),
    ),
    "bce": (
        lambda n: ((rng(0).random(n) < 0.5).astype(float), rng(1).uniform(0.01, 0.99, n)),
        _bce_partial,
    ),
    "bce_with_logits": (
        lambda n: ((rng(0).random(n) < 0.5).astype(float), rng(1).standard_normal(n)),
        lambda y, z: _sigmoid(z) - y,
    ),
}


class _LossGradBase(StructuredVsDense):
    sizes = SIZES
    forms = ["structured", "structured_jacobian", "numpy", "dense"]
    cheap_forms = ("structured", "structured_jacobian", "numpy")
    loss_name = None

    def dense_cost(self, n, form):
        return dense_bytes((n, n)), 2.0 * n * n

    def build(self, n, form):
        y, y_hat = LOSSES[self.loss_name][0](n)
        partial = LOSSES[self.loss_name][1]
        if form == "structured":
            loss = getattr(structjac_part("structjac.ops"), self.loss_name)
            return lambda: loss.grad(y, y_hat)
        if form == "structured_jacobian":
            loss = getattr(structjac_part("structjac.ops"), self.loss_name)
            return lambda: loss.jacobian(y, y_hat)
        if form == "numpy":
            return lambda: partial(y, y_hat) / n
        ones = np.full(n, 1.0 / n)
        return lambda: ones @ np.diag(partial(y, y_hat))

    def track_stored_bytes(self, n, form):
        return int(self.fn().nbytes)

    track_stored_bytes.unit = "bytes"


for _name in LOSSES:
    globals()[f"LossGrad_{_name}"] = type(
        f"LossGrad_{_name}",
        (_LossGradBase,),
        {
            "loss_name": _name,
            "__module__": __name__,
            "__doc__": f"{_name}.grad / .jacobian against numpy and the dense chain.",
        },
    )
