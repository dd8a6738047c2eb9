"""Time building Diagonal @ Diagonal at n = 1000: structjac's closed form against the lazy
products of CoLA and lineax (when installed), in one run.

    python scripts/perf_algebra.py [--n 1000]

structjac returns the product as a Diagonal (one multiply of the two diagonals); CoLA and
lineax build a lazy product operator. Each is timed as "build the product", then as
"build and apply it to a vector" so that the lazy forms pay for their work.
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np


def best(stmt, number):
    return min(timeit.repeat(stmt, number=number, repeat=5)) / number


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    n = parser.parse_args().n
    rng = np.random.default_rng(0)
    d1, d2, x = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n)

    import structjac as sj

    A, B = sj.Diagonal(d1), sj.Diagonal(d2)
    rows = [
        (
            "structjac Diagonal @ Diagonal",
            best(lambda: A @ B, 20000),
            best(lambda: (A @ B) @ x, 20000),
        )
    ]
    rows.append(("numpy d1 * d2 (the arithmetic alone)", best(lambda: d1 * d2, 20000), None))
    try:
        import cola

        CA, CB = cola.ops.Diagonal(d1), cola.ops.Diagonal(d2)
        rows.append(
            (
                "CoLA Diagonal @ Diagonal",
                best(lambda: CA @ CB, 200),
                best(lambda: (CA @ CB) @ x, 200),
            )
        )
    except Exception as err:  # optional comparison
        print(f"CoLA skipped: {err}")
    try:
        import jax
        import jax.numpy as jnp
        import lineax as lx

        jax.config.update("jax_enable_x64", True)
        LA, LB = (
            lx.DiagonalLinearOperator(jnp.asarray(d1)),
            lx.DiagonalLinearOperator(jnp.asarray(d2)),
        )
        jx = jnp.asarray(x)
        rows.append(
            (
                "lineax Diagonal @ Diagonal",
                best(lambda: LA @ LB, 200),
                best(lambda: (LA @ LB).mv(jx).block_until_ready(), 200),
            )
        )
    except Exception as err:  # optional comparison
        print(f"lineax skipped: {err}")

    base = rows[0][1]
    print(f"n = {n}, float64; best of 5 repeats")
    print(f"{'':40s} {'build':>12s} {'vs structjac':>13s} {'build + apply':>14s}")
    for name, build, apply in rows:
        applied = f"{apply * 1e6:11.2f} us" if apply is not None else ""
        print(f"{name:40s} {build * 1e6:9.2f} us {build / base:12.1f}x {applied:>14s}")


if __name__ == "__main__":
    main()
