"""Every public function and method of structjac carries type hints (py.typed promises it)."""

import importlib
import inspect

import pytest

MODULES = [
    "structjac",
    "structjac.nn",
    "structjac.ops",
    "structjac.layers",
    "structjac.kernels",
    "structjac.transforms",
    "structjac.linear_operator",
]
PUBLIC_DUNDERS = ("__init__", "__call__", "__matmul__")


def _public_callables():
    seen = set()
    for modname in MODULES:
        module = importlib.import_module(modname)
        names = getattr(module, "__all__", [n for n in dir(module) if not n.startswith("_")])
        for name in names:
            obj = getattr(module, name, None)
            if inspect.isclass(obj) and obj.__module__.startswith("structjac"):
                for attr, value in vars(obj).items():
                    if attr.startswith("_") and attr not in PUBLIC_DUNDERS:
                        continue
                    fn = (
                        value.fget
                        if isinstance(value, property)
                        else getattr(value, "__func__", value)
                    )
                    if callable(fn) and id(fn) not in seen:
                        seen.add(id(fn))
                        yield f"{modname}.{name}.{attr}", fn
            elif (
                callable(obj)
                and getattr(obj, "__module__", "").startswith("structjac")
                and id(obj) not in seen
            ):
                seen.add(id(obj))
                yield f"{modname}.{name}", obj


CASES = list(_public_callables())


def test_the_walk_finds_the_api():
    names = {name for name, _ in CASES}
    assert "structjac.jacobian" in names and "structjac.Diagonal.__init__" in names
    assert len(CASES) > 150


@pytest.mark.parametrize("name,fn", CASES, ids=[name for name, _ in CASES])
def test_public_callable_is_annotated(name, fn):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        pytest.skip(f"{name}: no signature to inspect (a builtin or compiled callable)")
    missing = [
        p.name
        for p in sig.parameters.values()
        if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty
    ]
    assert not missing, f"{name}: parameters without a type hint: {missing}"
    if not name.endswith("__init__"):
        assert sig.return_annotation is not inspect.Signature.empty, f"{name}: no return hint"
