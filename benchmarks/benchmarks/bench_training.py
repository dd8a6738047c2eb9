"""Training the lecture's network to a loss: Levenberg-Marquardt against gradient descent.

The lecture's 32-64-64-1 network (sigmoid / tanh / sigmoid, binary cross-entropy, float64)
learns the soft labels :math:`y = f_{\\theta^*}(X)` of a teacher of the same shape, so the
smallest loss is the teacher's, :math:`J(\\theta^*)`, and progress is the *excess loss*
:math:`J(\\theta) - J(\\theta^*)`. Each method runs from the same start until the excess loss
is at most ``TARGET``:

``levenberg_marquardt``
    :func:`structjac.nn.gauss_newton_step` (CG on :func:`structjac.nn.ggn`'s operator, at
    most ``CG_ITERATIONS`` iterations) in the loop of the user guide: accept a step that
    lowers the loss and divide the damping by 3, else multiply it by 3;
``gradient_descent``
    ``W - lr * grad`` with :func:`structjac.nn.value_and_grad`'s gradient, at the best
    learning rate of ``GD_RATES`` (``scripts/perf_levenberg_marquardt.py`` prints both;
    at 3 the sigmoids saturate and the excess loss stays at 1.97).

``time_to_target`` is the time to the target (asv's ratio of the two rows is the speed-up in
seconds), ``track_steps_to_target`` the steps.
"""

from __future__ import annotations

import numpy as np

from .common import limit_threads, structjac_part

ACTS = ["sigmoid", "tanh", "sigmoid"]
SIZES = [32, 64, 64, 1]
N = 1024
TARGET = 1e-2
CG_ITERATIONS = 50
GD_RATES = (0.3, 1.0)
GD_RATE = 1.0
MAX_STEPS = {"levenberg_marquardt": 200, "gradient_descent": 20000}


def teacher_student(n=N, seed=0):
    """``(params0, X, y, best_loss)``: a student's start, inputs, the teacher's soft labels,
    and the teacher's loss (the smallest loss there is)."""
    nn = structjac_part("structjac.nn")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, SIZES[0]))
    teacher = nn.MLP(SIZES, ACTS, dtype=np.float64).init(np.random.default_rng(seed + 1))
    teacher = [(3 * W, b) for W, b in teacher]  # weights large enough to make the task hard
    y = nn.forward(teacher, X, ACTS).ravel()
    best = nn.value_and_grad(teacher, X, y, ACTS, "bce").loss
    return nn.MLP(SIZES, ACTS, dtype=np.float64).init(rng), X, y, best


def levenberg_marquardt_steps(params, X, y, damping=1e-3):
    """Yield ``(parameters, loss)`` after each Levenberg-Marquardt step (accepted or not);
    the loss is the one the acceptance test computed."""
    nn = structjac_part("structjac.nn")
    while True:
        step, info = nn.gauss_newton_step(
            params, X, y, ACTS, "bce", damping=damping, maxiter=CG_ITERATIONS
        )
        new = [(W + dW, b + db) for (W, b), (dW, db) in zip(params, step)]
        new_loss = nn.value_and_grad(new, X, y, ACTS, "bce").loss
        if new_loss < info["loss"]:
            params, loss, damping = new, new_loss, damping / 3
        else:
            loss, damping = info["loss"], damping * 3
        yield params, loss


def gradient_descent_steps(params, X, y, lr=GD_RATE):
    """Yield ``(parameters, loss)`` after each gradient-descent step: one
    ``value_and_grad`` call a step, whose loss is that of the step's result."""
    nn = structjac_part("structjac.nn")
    _, grads = nn.value_and_grad(params, X, y, ACTS, "bce")
    while True:
        params = [(W - lr * gW, b - lr * gb) for (W, b), (gW, gb) in zip(params, grads)]
        loss, grads = nn.value_and_grad(params, X, y, ACTS, "bce")
        yield params, loss


def steps_to_target(method, problem, target=TARGET, lr=GD_RATE):
    """Steps ``method`` takes until the excess loss is at most ``target``, and the excess loss
    then; it stops short at ``MAX_STEPS`` or when the excess loss has grown tenfold from the
    start (diverged)."""
    nn = structjac_part("structjac.nn")
    params0, X, y, best = problem
    if method == "levenberg_marquardt":
        steps = levenberg_marquardt_steps(params0, X, y)
    else:
        steps = gradient_descent_steps(params0, X, y, lr)
    start = nn.value_and_grad(params0, X, y, ACTS, "bce").loss - best
    for k, (_, loss) in enumerate(steps, start=1):
        excess = loss - best
        if excess <= target or k == MAX_STEPS[method] or not excess < 10 * start:
            return k, excess
    raise AssertionError("unreachable")


class TrainToLoss:
    """Time and steps of each method to an excess loss of ``TARGET``."""

    params = [["levenberg_marquardt", "gradient_descent"]]
    param_names = ["method"]
    number = 1
    repeat = (1, 3, 60.0)
    warmup_time = 0
    timeout = 300

    def setup(self, method):
        limit_threads()
        self.problem = teacher_student()
        steps_to_target(method, self.problem, target=np.inf)  # compile the kernels

    def time_to_target(self, method):
        steps_to_target(method, self.problem)

    def track_steps_to_target(self, method):
        return steps_to_target(method, self.problem)[0]

    track_steps_to_target.unit = "steps"
