r"""The extras against BackPACK and Opacus on the same PyTorch model and batch (float64).

BackPACK's quantities are of the loss as PyTorch reduces it: ``MSELoss`` and
``BCEWithLogitsLoss`` with ``reduction="mean"`` divide by ``N m_L`` (structjac's
``"elementwise_mean"``), ``CrossEntropyLoss`` by ``N`` (``"mean"``); per element
``MSELoss`` is :math:`(y - \hat y)^2`, as structjac's ``mse``.  BackPACK's second-order
extensions take ``BCEWithLogitsLoss`` with one output only and no ``LeakyReLU``, hence
the cases.  Opacus clips the gradients of each sample's
loss :math:`J_0^{(k)}` and divides the sum by ``N`` for ``loss_reduction="mean"``.
"""

import numpy as np
import pytest

from structjac import nn

from . import reference as ref
from .test_extras import close, close_pairs, problem

torch = pytest.importorskip("torch")
# BackPACK's hooks on a model whose input needs no gradient: PyTorch's note, not a fault
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning")

# (sizes, activations, structjac loss, structjac reduction, torch loss)
CASES = [
    ([4, 6, 5, 3], ["sigmoid", "relu", None], "cross_entropy", "mean", "CrossEntropyLoss"),
    ([4, 5, 3], ["tanh", None], "mse", "elementwise_mean", "MSELoss"),
    ([4, 5, 3], ["relu", None], "mse", "sum", "MSELoss-sum"),
    ([4, 5, 1], ["tanh", None], "bce_with_logits", "mean", "BCEWithLogitsLoss"),
]
IDS = [c[4] for c in CASES]
TORCH_ACT = {
    "sigmoid": lambda: torch.nn.Sigmoid(),
    "tanh": lambda: torch.nn.Tanh(),
    "relu": lambda: torch.nn.ReLU(),
    "leaky_relu": lambda: torch.nn.LeakyReLU(ref.SLOPE),
}


def torch_model(params, acts):
    layers = []
    for (W, b), act in zip(params, acts):
        lin = torch.nn.Linear(W.shape[1], W.shape[0]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(W))
            lin.bias.copy_(torch.tensor(b))
        layers.append(lin)
        if act is not None:
            layers.append(TORCH_ACT[act]())
    return torch.nn.Sequential(*layers)


def torch_loss(name):
    if name == "MSELoss-sum":
        return torch.nn.MSELoss(reduction="sum")
    return getattr(torch.nn, name)()


def torch_target(y, loss):
    return torch.tensor(y) if loss == "cross_entropy" else torch.tensor(y, dtype=torch.float64)


def linears(model):
    return [m for m in model if isinstance(m, torch.nn.Linear)]


def backpack_run(case, extensions, seed=0):
    backpack = pytest.importorskip("backpack")
    sizes, acts, loss, reduction, tloss = case
    params, X, y = problem(sizes, acts, loss, N=9, seed=seed)
    model = backpack.extend(torch_model(params, acts))
    lossf = backpack.extend(torch_loss(tloss))
    L = lossf(model(torch.tensor(X)), torch_target(y, loss))
    with backpack.backpack(*extensions):
        L.backward()
    res = nn.value_and_grad(
        params,
        X,
        y,
        acts,
        loss,
        reduction=reduction,
        extras=("grad_norms", "sum_grad_squared", "variance", "diag_ggn", "kflr")
        + (("diag_hessian",) if all(a in ("relu", "leaky_relu", None) for a in acts) else ()),
    )
    close(res.loss, L.item())
    return res, linears(model)


def pairs(mods, attr):
    return [(getattr(m.weight, attr).numpy(), getattr(m.bias, attr).numpy()) for m in mods]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backpack_first_order(case):
    ext = pytest.importorskip("backpack.extensions")
    res, mods = backpack_run(case, [ext.BatchL2Grad(), ext.SumGradSquared(), ext.Variance()])
    # BatchL2Grad: per parameter, each sample's squared norm; summed over parameters
    l2 = sum(m.weight.batch_l2.numpy() + m.bias.batch_l2.numpy() for m in mods)
    close(res.extras["grad_norms"], np.sqrt(l2), 1e-10)
    close_pairs(res.extras["sum_grad_squared"], pairs(mods, "sum_grad_squared"), 1e-10)
    close_pairs(res.extras["variance"], pairs(mods, "variance"), 1e-10)
    close_pairs(res.grads, pairs(mods, "grad"), 1e-10)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backpack_diag_ggn_and_kflr(case):
    ext = pytest.importorskip("backpack.extensions")
    res, mods = backpack_run(case, [ext.DiagGGNExact(), ext.KFLR()])
    close_pairs(res.extras["diag_ggn"], pairs(mods, "diag_ggn_exact"), 1e-10)
    for (KW, Kb), m in zip(res.extras["kflr"], mods):
        Gf, Af = (t.numpy() for t in m.weight.kflr)
        close(KW.A.to_dense(), Gf, 1e-10), close(KW.B.to_dense(), Af, 1e-10)
        close(Kb.to_dense(), m.bias.kflr[0].numpy(), 1e-10)


@pytest.mark.parametrize("case", [CASES[0], CASES[2]], ids=[IDS[0], IDS[2]])
def test_backpack_diag_hessian(case):
    ext = pytest.importorskip("backpack.extensions")
    sizes, acts, *rest = case
    case = (sizes, ["relu" if a else None for a in acts], *rest)
    res, mods = backpack_run(case, [ext.DiagHessian()])
    close_pairs(res.extras["diag_hessian"], pairs(mods, "diag_h"), 1e-10)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backpack_monte_carlo_matches_in_the_mean(case):
    """BackPACK's DiagGGNMC and KFAC draw their own random numbers: their mean over many
    seeds and structjac's both converge to the exact values."""
    ext = pytest.importorskip("backpack.extensions")
    res, mods = backpack_run(case, [ext.DiagGGNMC(mc_samples=4000), ext.KFAC(mc_samples=4000)])
    ours = nn.value_and_grad(
        *problem(case[0], case[1], case[2], N=9),
        case[1],
        case[2],
        reduction=case[3],
        extras=("diag_ggn_mc", "kfac"),
        mc_samples=4000,
        seed=0,
    ).extras
    exact = ref.flat(res.extras["diag_ggn"])
    scale = np.abs(exact).max()
    assert np.abs(ref.flat(pairs(mods, "diag_ggn_mc")) - exact).max() < 0.1 * scale
    assert np.abs(ref.flat(ours["diag_ggn_mc"]) - exact).max() < 0.1 * scale
    for (KW, _), (EW, _), m in zip(ours["kfac"], res.extras["kflr"], mods):
        e = EW.A.to_dense()
        assert np.abs(KW.A.to_dense() - e).max() < 0.1 * np.abs(e).max()
        assert np.abs(m.weight.kfac[0].numpy() - e).max() < 0.1 * np.abs(e).max()
        close(KW.B.to_dense(), m.weight.kfac[1].numpy(), 1e-10)  # input factor: exact


@pytest.mark.parametrize("max_norm", [0.05, 0.5, 1e3])
@pytest.mark.parametrize("case", [CASES[0], CASES[1]], ids=[IDS[0], IDS[1]])
def test_opacus_clipped_grad(case, max_norm):
    pytest.importorskip("opacus")
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    sizes, acts, loss, _, tloss = case
    params, X, y = problem(sizes, acts, loss, N=9)
    N = X.shape[0]
    model = GradSampleModule(torch_model(params, acts), loss_reduction="mean")
    opt = DPOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.0),
        noise_multiplier=0.0,
        max_grad_norm=max_norm,
        expected_batch_size=N,
        loss_reduction="mean",
    )
    opt.zero_grad()
    # Opacus' "mean": the per-sample gradients are of J_0^(k) = the sum over the sample's
    # entries, so the torch loss is the sum over entries divided by N (structjac's "mean")
    L = torch_loss(tloss if tloss == "CrossEntropyLoss" else "MSELoss-sum")(
        model(torch.tensor(X)), torch_target(y, loss)
    )
    if tloss != "CrossEntropyLoss":
        L = L / N
    L.backward()
    opt.pre_step()
    got = [(m.weight.grad.numpy(), m.bias.grad.numpy()) for m in linears(model._module)]
    res = nn.value_and_grad(
        params,
        X,
        y,
        acts,
        loss,
        reduction="mean",
        extras=("clipped_grad", "grad_norms"),
        max_norm=max_norm,
    )
    # Opacus divides by (norm + 1e-6): equal up to that shift of the clipping factor
    close_pairs(res.extras["clipped_grad"], got, 1e-5)
    n0 = res.extras["grad_norms"] * N
    assert (n0 > max_norm).any() == (max_norm < 1e3)  # the cases clip some samples
