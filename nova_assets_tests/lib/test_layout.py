"""Issue 19: lib/ by domain, mirroring defs/, with no import circle and few loose modules."""

import ast
from pathlib import Path

import nova_assets.lib

LIB = Path(nova_assets.lib.__file__).parent


def lib_imports() -> dict[str, set[str]]:
    """Each lib module (dotted, under lib/) and the lib modules it imports."""
    modules = {
        ".".join(p.relative_to(LIB).with_suffix("").parts): p
        for p in LIB.rglob("*.py")
        if p.name != "__init__.py"
    }
    arrows: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "nova_assets.lib"
            ):
                rest = node.module.removeprefix("nova_assets.lib").lstrip(".")
                for alias in node.names:
                    whole = f"{rest}.{alias.name}".lstrip(".")
                    deps.add(whole if whole in modules else rest)
        arrows[name] = {d for d in deps if d in modules and d != name}
    return arrows


def test_no_module_imports_itself_back():
    arrows = lib_imports()

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for dep in arrows[start]:
            if dep == target or (dep not in seen and reaches(dep, target, seen | {dep})):
                return True
        return False

    assert [m for m in arrows if reaches(m, m, set())] == []


def test_packages_import_only_packages_below_them():
    order = ["", "ingest", "warehouse", "publishing", "ml", "evaluation", "drift"]
    package = {m: m.rpartition(".")[0] for m in lib_imports()}
    assert set(package.values()) <= set(order)
    wrong = [
        f"{m} -> {d}"
        for m, deps in lib_imports().items()
        for d in deps
        if order.index(package[d]) > order.index(package[m])
    ]
    assert wrong == []


def test_at_most_ten_modules_directly_under_lib():
    loose = [p.stem for p in LIB.glob("*.py") if p.name != "__init__.py"]
    assert len(loose) <= 10, loose


def test_every_package_says_what_it_holds():
    for init in LIB.glob("*/__init__.py"):
        assert ast.get_docstring(ast.parse(init.read_text())), init
