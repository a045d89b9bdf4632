"""The device wheel: the ``endcap`` package from ``services/`` only, without the dev-only modules.

``endcap_ota`` and ``endcap_models`` (NOC/dev tools), ``endcap.sim`` (the store simulator; it imports
``endcap_models``), ``endcap.devrun`` and ``endcap.launcher`` (`endcap run` on a dev host) never go
on a gateway. The wheel is built from a staged copy of the tree that lacks them, with the
``endcap-model``/``endcap-ota`` console scripts dropped from the staged pyproject.toml.
"""
from __future__ import annotations

import ast
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

DEV_ONLY = ("endcap/sim", "endcap/devrun.py", "endcap/launcher.py")
DEV_ONLY_MODULES = ("endcap.sim", "endcap.devrun", "endcap.launcher", "endcap_models", "endcap_ota")
DEV_SCRIPTS = ("endcap-model", "endcap-ota")


def is_dev_only(rel: str) -> bool:
    """True for a path (relative to services/) that must not reach the device."""
    rel = rel.replace("\\", "/")
    return any(rel == d or rel.startswith(d + "/") for d in DEV_ONLY) or "__pycache__" in rel.split("/")


def device_pyproject(text: str) -> str:
    """pyproject.toml with the dev-only console scripts removed (the rest unchanged)."""
    out = []
    for line in text.splitlines():
        m = re.match(r"\s*([A-Za-z0-9_-]+)\s*=", line)
        if m and m.group(1) in DEV_SCRIPTS:
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def stage(repo: Path, dest: Path) -> Path:
    """Copy what the device wheel is built from into ``dest``; return it."""
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "services").mkdir(parents=True)
    src = repo / "services"
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if path.is_dir() or is_dev_only(rel) or path.suffix == ".pyc":
            continue
        target = dest / "services" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    (dest / "pyproject.toml").write_text(device_pyproject((repo / "pyproject.toml").read_text()))
    shutil.copy2(repo / "README.md", dest / "README.md")
    return dest


def build(repo: Path, work: Path, pip: Path) -> Path:
    """Build the device wheel into ``work/dist``; return the wheel's path. Raises RuntimeError on pip failure."""
    src = stage(repo, work / "src")
    dist = work / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    r = subprocess.run([str(pip), "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"pip wheel of {src} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    wheels = sorted(dist.glob("endcap-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"{dist}: expected one endcap wheel, found {[w.name for w in wheels]}")
    return wheels[0]


def imported_modules(source: str, module: str, *, lazy: bool = False) -> set[str]:
    """Absolute names of the modules ``source`` (the code of ``module``) imports, relative imports resolved.

    ``lazy=False``: imports that run when the module is imported (module level, incl. if/try blocks);
    ``lazy=True``: imports inside functions, which run only when that function is called.
    """
    names: set[str] = set()
    package = module.split(".")
    tree = ast.parse(source)
    funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    in_funcs = {id(x) for f in funcs for x in ast.walk(f) if x is not f}
    for node in ast.walk(tree):
        if (id(node) in in_funcs) != lazy:
            continue
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{a.name}" for a in node.names)
    return names


def check_wheel(wheel: Path) -> list[str]:
    """Problems with a device wheel: dev-only files, dev-only scripts, module-level imports of dev-only modules.

    Lazy imports (inside a function, e.g. ``endcap run`` in cli.py) are listed by ``lazy_dev_imports``.
    """
    problems = []
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            top = name.split("/", 1)[0]
            if top in ("endcap_ota", "endcap_models", "provisioning") or is_dev_only(name):
                problems.append(f"{name}: dev-only file in the device wheel")
            if name.endswith("entry_points.txt"):
                for script in DEV_SCRIPTS:
                    if re.search(rf"^{script}\s*=", z.read(name).decode(), re.M):
                        problems.append(f"{name}: dev-only console script {script}")
            if name.endswith(".py") and name.startswith("endcap/"):
                module = name[:-3].replace("/", ".").removesuffix(".__init__")
                if name.endswith("__init__.py"):
                    module += ".__init__"
                for imp in imported_modules(z.read(name).decode(), module):
                    if any(imp == d or imp.startswith(d + ".") for d in DEV_ONLY_MODULES):
                        problems.append(f"{name}: imports dev-only module {imp}")
    return problems


def lazy_dev_imports(wheel: Path) -> dict[str, set[str]]:
    """Per file of the wheel, the dev-only modules it imports inside functions (fail only when called)."""
    out: dict[str, set[str]] = {}
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.endswith(".py") and name.startswith("endcap/"):
                module = name[:-3].replace("/", ".")
                found = {imp for imp in imported_modules(z.read(name).decode(), module, lazy=True)
                         if any(imp == d or imp.startswith(d + ".") for d in DEV_ONLY_MODULES)}
                if found:
                    out[name] = found
    return out
