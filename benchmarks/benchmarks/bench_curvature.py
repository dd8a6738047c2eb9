"""Per-sample statistics and curvature (``value_and_grad(..., extras=...)``, ``nn.ggn``)
against structjac's plain ``value_and_grad`` and BackPACK's extensions, float32, one thread.

``plain``
    ``nn.value_and_grad`` with no extras (the baseline of every ratio);
``<extra>``
    the same call with ``extras=(<extra>,)``;
``ggn_matvec``
    one ``matvec`` of :func:`structjac.nn.ggn`'s operator (forward pass done in ``setup``);
``backpack_plain`` / ``backpack_<Extension>``
    the PyTorch model's forward and backward, without / inside ``with backpack(...)``
    (skipped when BackPACK is not installed).

``scripts/perf_curvature.py`` prints the ratios of one run.
"""

from __future__ import annotations

import itertools

import numpy as np

from .common import StructuredVsDense, optional_import, rng, structjac_part

FIRST = ["grad_norms", "sum_grad_squared", "variance", "clipped_grad"]
SECOND = ["diag_ggn_mc", "kfac", "kflr", "diag_ggn"]
#: Exact only for piecewise linear networks (the ReLU one).
PIECEWISE_LINEAR = ["diag_hessian"]
BACKPACK = {
    "grad_norms": "BatchL2Grad",
    "sum_grad_squared": "SumGradSquared",
    "variance": "Variance",
    "diag_ggn_mc": "DiagGGNMC",
    "kfac": "KFAC",
    "kflr": "KFLR",
    "diag_ggn": "DiagGGNExact",
    "diag_hessian": "DiagHessian",
}


def make_problem(sizes, loss, n):
    r = rng(0)
    params = []
    for d, m in itertools.pairwise(sizes):
        lim = np.sqrt(6.0 / (d + m))
        params.append((r.uniform(-lim, lim, (m, d)).astype(np.float32), np.zeros(m, np.float32)))
    X = r.standard_normal((n, sizes[0])).astype(np.float32)
    y = (
        r.integers(0, sizes[-1], n)
        if loss == "cross_entropy"
        else (r.random(n) > 0.5).astype(np.float32)
    )
    return params, X, y


def backpack_fn(params, acts, loss, X, y, extension):
    torch = optional_import("torch")
    bp = optional_import("backpack")
    extensions = optional_import("backpack.extensions")
    torch.set_num_threads(1)
    act = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh}
    layers = []
    for (W, b), a in zip(params, acts):
        lin = torch.nn.Linear(W.shape[1], W.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(b))
        layers += [lin] + ([act[a]()] if a else [])
    model = bp.extend(torch.nn.Sequential(*layers))
    lossf = bp.extend(
        torch.nn.CrossEntropyLoss() if loss == "cross_entropy" else torch.nn.BCELoss()
    )
    tX = torch.from_numpy(X)
    ty = torch.from_numpy(y) if loss == "cross_entropy" else torch.from_numpy(y).reshape(-1, 1)

    def run():
        model.zero_grad()
        L = lossf(model(tX), ty)
        if extension is None:
            L.backward()
        else:
            with bp.backpack(getattr(extensions, extension)()):
                L.backward()

    return run


class _Extras(StructuredVsDense):
    sizes_net = None
    acts = None
    loss = None
    quick_count = 1

    def build(self, n, form):
        nn = structjac_part("structjac.nn")
        params, X, y = make_problem(self.sizes_net, self.loss, n)
        acts, loss = list(self.acts), self.loss
        if form.startswith("backpack_"):
            name = form[len("backpack_") :]
            return backpack_fn(params, acts, loss, X, y, None if name == "plain" else name)
        if form == "ggn_matvec":
            G = nn.ggn(params, X, y, acts, loss)
            v = rng(1).standard_normal(G.shape[0]).astype(np.float32)
            return lambda: G.matvec(v)
        extras = () if form == "plain" else (form,)
        ws = nn.Workspace()
        return lambda: nn.value_and_grad(
            params, X, y, acts, loss, workspace=ws, extras=extras, max_norm=1.0, seed=0
        )


class ExtrasMNIST(_Extras):
    """784-256-128-10, ReLU, cross-entropy (mean)."""

    sizes = (1024, 4096)
    sizes_net = (784, 256, 128, 10)
    acts = ("relu", "relu", None)
    loss = "cross_entropy"
    forms = ["plain", *FIRST, *SECOND, *PIECEWISE_LINEAR, "ggn_matvec", "backpack_plain"] + [
        f"backpack_{BACKPACK[e]}" for e in FIRST + SECOND + PIECEWISE_LINEAR if e in BACKPACK
    ]
    cheap_forms = tuple(forms)


class ExtrasLecture(_Extras):
    """The lecture's 32-64-64-1, sigmoid / tanh / sigmoid, BCE (BackPACK: first order only,
    its second-order extensions have no BCELoss)."""

    sizes = (1024, 16384)
    sizes_net = (32, 64, 64, 1)
    acts = ("sigmoid", "tanh", "sigmoid")
    loss = "bce"
    forms = ["plain", *FIRST, *SECOND, "ggn_matvec", "backpack_plain"] + [
        f"backpack_{BACKPACK[e]}" for e in FIRST if e in BACKPACK
    ]
    cheap_forms = tuple(forms)
