"""Build-time pieces of the structjac documentation.

At ``config-inited`` this extension writes, into the git-ignored
``docs/_generated/`` directory:

``rules_table.rst``
    the rule table, one row per entry of :func:`structjac.rules`
    (operation, left type, right type, result type);
``figures/*.png``
    the sparsity pattern of each Jacobian of the lecture: the dense matrix that
    JAX or PyTorch would hold (``matplotlib.pyplot.spy`` of ``J.to_dense()``)
    beside what structjac stores (see :mod:`sparsity_figures`);
``benchmarks.rst``
    the benchmark plots written by ``benchmarks/plot_results.py`` (copied into
    ``_generated/bench/``), or, when there are none, how to produce them.

At ``builder-inited`` it checks that every name of ``structjac.__all__`` (and
of the ``__all__`` of ``structjac.ops``, ``.layers``, ``.nn`` and ``.chain``)
appears in the API reference (``api/index.rst``) and warns otherwise, so a
``-W`` build fails when the API page falls behind the package.
"""

from __future__ import annotations

import shutil
import re
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

DOCS = Path(__file__).resolve().parent.parent
ROOT = DOCS.parent
GENERATED = DOCS / "_generated"


def _write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it already holds exactly that."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.write_text(text, encoding="utf-8")


# -- the rule table ------------------------------------------------------------


def _type_name(t) -> str:
    if t is None:
        return "—"
    if isinstance(t, str):
        return t
    return getattr(t, "__name__", str(t))


def _type_cell(t, public: set[str]) -> str:
    if isinstance(t, tuple):  # a rule that may return one of several types
        return " or ".join(_type_cell(x, public) for x in t)
    name = _type_name(t)
    if name in public:
        return f":class:`~structjac.{name}`"
    if name in ("—", ""):
        return "—"
    if " " in name:  # "same as left", "same as right"
        return name
    return f"``{name}``"


def _row_fields(row):
    """(operation, left, right, result) from a tuple, a namedtuple or an object."""
    if isinstance(row, dict):
        return (
            row.get("operation", row.get("op")),
            row.get("left"),
            row.get("right"),
            row.get("result"),
        )
    for names in (("operation", "left", "right", "result"), ("op", "left", "right", "result")):
        if all(hasattr(row, n) for n in names):
            return tuple(getattr(row, n) for n in names)
    return tuple(row)[:4]


def _text_of(row, attrs) -> str:
    for attr in attrs:
        val = row.get(attr) if isinstance(row, dict) else getattr(row, attr, None)
        if isinstance(val, str) and val.strip():
            return val.strip().splitlines()[0]
    return ""


def _literal(text: str) -> str:
    text = text.replace("`", "'")
    return f"``{text}``" if text else "\\ "


# The rules' docstrings write their mathematics in plain text ("diag(a) diag(b) =
# diag(a * b)", "(A (x) B)(C (x) D)"); the table shows it as maths. A clause is maths up
# to its first English word; the rest is prose.
_MATH_WORDS = {"diag", "sum", "sparse"}
_WORD = re.compile(r"\b[a-z]{2,}\b")


def _prose(text: str) -> str:
    text = text.replace("(x)", "\u2297")
    for ch in "\\`*_|":
        text = text.replace(ch, "\\" + ch)
    return text


def _tex(text: str) -> str:
    text = text.replace("...", r"\dots").replace("(x)", r"\otimes").replace("//", r"\mathbin{//}")
    text = text.replace("%", r"\bmod").replace(" * ", r" \odot ")
    text = re.sub(r"\^\((\w+)\)T", r"^{(\1)T}", text)
    text = re.sub(r"_([A-Za-z0-9]{2,})", r"_{\1}", text)
    text = re.sub(r"(?<![A-Za-z\\])sum(?=[_\s{(])", r"\\sum", text)
    text = re.sub(r"(?<![A-Za-z\\])diag(?=\()", r"\\diag", text)
    text = re.sub(r"(?<![A-Za-z\\])sparse(?=\()", r"\\operatorname{sparse}", text)
    text = re.sub(r"\b(RowScaled|Dense)\b", r"\\mathrm{\1}", text)
    return text


def _first_word(text: str) -> int:
    for m in _WORD.finditer(text):
        if m.group(0) not in _MATH_WORDS:
            return m.start()
    return len(text)


def _clause(clause: str) -> str:
    """One clause: maths up to its first English word, then prose (recursively)."""
    if not clause:
        return ""
    cut = _first_word(clause)
    if cut == 0:  # leading prose words ("else ..."): keep, go on
        m = re.match(r"(?:[a-z]{2,}\s+)+", clause)
        if m is None or m.end() >= len(clause):
            return _prose(clause)
        return _prose(m.group(0)) + _clause(clause[m.end() :])
    math, prose = clause[:cut], clause[cut:]
    colon = math.find(": ")
    if colon >= 0:
        math, prose = math[: colon + 1], math[colon + 2 :] + prose
    # an unmatched "(" starts the prose (a parenthetical remark)
    depth, start = 0, None
    for i, ch in enumerate(math):
        if ch == "(":
            if depth == 0:
                start = i
            depth += 1
        elif ch == ")":
            depth -= 1
    if depth > 0 and start is not None:
        math, prose = math[:start], math[start:] + prose
    m = re.search(r"(?:,\s*an?)?[\s,:;]*$", math)  # trailing punctuation and "a"/"an"
    math, tail = math[: m.start()], math[m.start() :]
    sep = tail.strip()
    if sep.startswith(","):
        sep, prose = ",", tail.strip()[1:].strip() + " " + prose
    out = f":math:`{_tex(math)}`{sep}" if math else _prose(tail)
    prose = prose.strip()
    return f"{out} {_prose(prose)}" if prose else out


def _maths_cell(text: str) -> str:
    """The rule's mathematics as inline maths, with its prose as text."""
    parts = [_clause(c.strip()) for c in re.split(r";\s+", text)]
    return "; ".join(p for p in parts if p) or "\\ "


def write_rules_table() -> int:
    import structjac

    public = set(getattr(structjac, "__all__", ()))
    rows = list(structjac.rules())
    maths = [_text_of(r, ("math", "doc", "description")) for r in rows]
    conditions = [_text_of(r, ("condition",)) for r in rows]
    header = ["operation", "left type", "right type", "result type"]
    if any(maths):
        header.append("mathematics")
    if any(conditions):
        header.append("applies when")
    lines = [
        f".. list-table:: The rule table: {len(rows)} rules, generated from ``structjac.rules()``",
        "   :header-rows: 1",
        "   :class: rule-table",
        "",
        "   * - " + "\n     - ".join(header),
    ]
    for row, math, cond in zip(rows, maths, conditions):
        op, left, right, result = _row_fields(row)
        cells = [
            f"``{op}``",
            _type_cell(left, public),
            _type_cell(right, public),
            _type_cell(result, public),
        ]
        if any(maths):
            cells.append(_maths_cell(math) if math else "\\ ")
        if any(conditions):
            cells.append(_prose(cond) if cond else "always")
        lines.append("   * - " + "\n     - ".join(cells))
    lines.append("")
    _write_if_changed(GENERATED / "rules_table.rst", "\n".join(lines))
    return len(rows)


# -- benchmark plots -------------------------------------------------------------


def _no_plots_note() -> str:
    """How to produce the plots, naming only the scripts that exist."""
    lines = [
        ".. note::",
        "",
        "   No benchmark plots were found under ``benchmarks/`` when these pages",
        "   were built. To produce them, from the repository root:",
        "",
        "   .. code-block:: console",
        "",
        '      $ python -m pip install -e ".[bench]"',
    ]
    if (ROOT / "benchmarks" / "asv.conf.json").exists():
        lines.append(
            "      $ (cd benchmarks && asv machine --yes && "
            'asv run -E existing:same --set-commit-hash "$(git rev-parse HEAD)")'
        )
    if (ROOT / "benchmarks" / "plot_results.py").exists():
        lines.append(
            "      $ python benchmarks/plot_results.py  # writes docs/_static/benchmarks/*.png"
        )
    if (ROOT / "structjac" / "__main__.py").exists():
        lines.append("      $ python -m structjac bench --plot benchmarks/structjac_bench.png")
    lines += [
        "",
        "   then rebuild the documentation: every PNG in ``docs/_static/benchmarks/``",
        "   and under ``benchmarks/`` (outside asv's ``env/`` and ``html/``",
        "   directories) is shown on this page.",
        "",
    ]
    return "\n".join(lines)


#: The benchmark plots in reading order, each with what it shows. Plots not named here
#: follow in alphabetical order with their file name as caption.
BENCHMARK_CAPTIONS = {
    "summary": "Structured against dense at the largest size both ran, one bar per benchmark: "
    "left, how many times fewer bytes the structure stores; right, how many times "
    "faster it is (higher is better; 1 means no gain).",
    "rules_matmul": "Every closed-form product of the rule table against the dense matmul of "
    "the same matrices (time against size, log-log).",
    "rules_matmul_bytes": "What the product of each rule stores, against the dense matrix.",
    "rules_apply": "A structure applied to a vector or a block of vectors (Kronecker by the "
    "reshape identity) against the dense matrix-vector product.",
    "rules_add": "Sums of the rule table against dense sums.",
    "ops_jacobian": "The Jacobian of each element-wise op as a Diagonal, against materialising "
    "it densely (what jacrev does).",
    "ops_vjp": "The fused vector-Jacobian product g * f'(x) against the numpy expression.",
    "vjp_floor": "The fused vjp as a multiple of the memory-bandwidth floor "
    "np.multiply(a, g, out=o) on the same arrays (1 is the floor).",
    "losses": "Loss gradients: the fused kernel against numpy and against the dense chain.",
    "layers": "Dense-layer and neuron Jacobians over a mini-batch, structured against dense.",
    "network": "value_and_grad of a 32-64-64-1 network against a numpy backprop, PyTorch "
    "and JAX (where installed).",
    "chain": "chain() in the order it chooses, against left-to-right, right-to-left and dense.",
    "threads": "The parallel kernels on one and two threads.",
    "coldstart": "Import and first call, with an empty and a warm Numba cache.",
    "blocks": "Block-diagonal and block-matrix structures (the rules of BlockDiagonal and "
    "BlockMatrix) against the dense products.",
    "blocks_bytes": "What the block structures' products store, against the dense matrix.",
}


def _reading_order(paths):
    known = list(BENCHMARK_CAPTIONS)
    return sorted(
        paths, key=lambda p: (known.index(p.stem) if p.stem in known else len(known), p.stem)
    )


def _png_width(path) -> int:
    """The pixel width in a PNG's header (0 when it is not a PNG)."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return 0
    return int.from_bytes(head[16:20], "big")


def write_benchmark_section() -> int:
    bench = ROOT / "benchmarks"
    static = DOCS / "_static" / "benchmarks"
    # Plots that benchmarks/plot_results.py writes into docs/_static/benchmarks
    # (its default) are referenced in place; PNGs under benchmarks/ are copied.
    in_static = sorted(static.glob("*.png")) if static.is_dir() else []
    pngs = []
    if bench.is_dir():
        for p in sorted(bench.rglob("*.png")):
            parts = set(p.relative_to(bench).parts)
            if parts & {".asv", "env", "html"}:
                continue
            pngs.append(p)
    out = GENERATED / "bench"
    if out.exists():
        shutil.rmtree(out)
    if not pngs and not in_static:
        _write_if_changed(GENERATED / "benchmarks.rst", _no_plots_note())
        return 0
    lines = []

    def figure(target, label, stem, path):
        title = stem.replace("_", " ")
        caption = BENCHMARK_CAPTIONS.get(stem)
        # plot_results.py renders at 144 px per inch; shown at 96 CSS px per inch (a
        # point of its text is a CSS pixel and a third), so a PNG is never scaled up;
        # the stylesheet caps it at the text width
        width = _png_width(path)
        return [
            f".. figure:: {target}",
            f"   :width: {max(1, width * 2 // 3)}px" if width else "   :width: 100%",
            "   :class: benchmark-plot",
            f"   :alt: benchmark plot: {title}",
            "",
            f"   {caption} (``{label}``)" if caption else f"   ``{label}``",
            "",
        ]

    for p in _reading_order(in_static):
        lines += figure(
            f"/_static/benchmarks/{p.name}", f"docs/_static/benchmarks/{p.name}", p.stem, p
        )
    if pngs:
        out.mkdir(parents=True)
    for p in pngs:
        rel = p.relative_to(bench)
        flat = "__".join(rel.parts)
        shutil.copy2(p, out / flat)
        lines += figure(f"/_generated/bench/{flat}", f"benchmarks/{rel.as_posix()}", p.stem, p)
    return_count = len(pngs) + len(in_static)
    _write_if_changed(GENERATED / "benchmarks.rst", "\n".join(lines))
    return return_count


# -- API completeness --------------------------------------------------------------


#: Modules whose ``__all__`` the API page must cover (those that exist).
API_MODULES = ("structjac", "structjac.ops", "structjac.layers", "structjac.nn", "structjac.chain")


def check_api_page(app: Sphinx) -> None:
    import importlib
    import re
    import types

    text = (DOCS / "api" / "index.rst").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\s{3,}~?(?:structjac\.)?([A-Za-z_][\w.]*)\s*$", text, flags=re.M))
    for name in API_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        missing = []
        for n in getattr(module, "__all__", ()):
            if n in listed:
                continue
            value = getattr(module, n, None)
            # A submodule in __all__ is covered by its own section of the page.
            if isinstance(value, types.ModuleType) and f".. module:: {value.__name__}" in text:
                continue
            missing.append(n)
        if missing:
            logger.warning(
                "api/index.rst does not list these names of %s.__all__: %s",
                name,
                ", ".join(missing),
                type="structjac",
                subtype="api",
            )


# -- hooks -------------------------------------------------------------------------


def on_config_inited(app: Sphinx, config) -> None:
    GENERATED.mkdir(exist_ok=True)
    n_rules = write_rules_table()
    import sparsity_figures

    n_figs = sparsity_figures.make_all(GENERATED / "figures")
    n_bench = write_benchmark_section()
    logger.info(
        "structjac_docs: %d rules, %d sparsity figures, %d benchmark plots",
        n_rules,
        n_figs,
        n_bench,
    )


def show_public_bases(app, name, obj, options, bases):
    """Show a private base class (e.g. ``Blocks``) as the public class it derives from."""
    for i, base in enumerate(bases):
        while base.__name__.startswith("_") or base.__module__.split(".")[-1].startswith("_"):
            base = base.__mro__[1]
        bases[i] = base


def setup(app: Sphinx):
    app.connect("config-inited", on_config_inited)
    app.connect("autodoc-process-bases", show_public_bases)
    app.connect("builder-inited", check_api_page)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
