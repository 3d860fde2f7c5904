"""Where code lives: the CDK-free layers import no CDK, no module edits sys.path, no import circles."""

import ast
import subprocess
import sys
from pathlib import Path, PurePosixPath

import cdk_secure_tunnel
import pytest
import tunnel_lambda

PACKAGE = Path(cdk_secure_tunnel.__file__).parent
HANDLER = Path(tunnel_lambda.__file__).parent
CONSTRUCT_MODULES = {"secure_tunnel", "tunnel_provider", "tunnel_upkeep", "lambda_code", "validation"}
CDK_MODULES = ("aws_cdk", "jsii", "constructs", "cdk_secure_tunnel.secure_tunnel")


@pytest.mark.parametrize(
    "module",
    [
        "cdk_secure_tunnel.emulator",
        "cdk_secure_tunnel.protocol",
        "cdk_secure_tunnel.testing",
        "cdk_secure_tunnel.localproxy",
        "cdk_secure_tunnel.cli",
    ],
)
def test_cdk_free_layers_import_no_cdk(module: str) -> None:
    code = f"import sys, {module}; loaded = [m for m in {CDK_MODULES!r} if m in sys.modules]; print(loaded)"
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("layer", ["emulator", "localproxy", "cli"])
def test_cdk_free_modules_import_nothing_of_cdk_or_the_construct(layer: str) -> None:
    # Also what a lazy import inside a function would bring in, which the subprocess check cannot see.
    for path in (PACKAGE / layer).glob("*.py"):
        for imported in _imports(path):
            assert not imported.startswith(("aws_cdk", "jsii", "constructs", "cdk_nag")), (path, imported)
            assert imported.lstrip(".").split(".")[0] not in {
                "secure_tunnel",
                "tunnel_provider",
                "tunnel_upkeep",
            }


def test_shipped_code_never_edits_sys_path() -> None:
    for path in [*PACKAGE.rglob("*.py"), *HANDLER.rglob("*.py")]:
        assert "sys.path" not in path.read_text(), path


def test_the_handler_asset_is_the_directory_holding_the_handler_package_alone() -> None:
    from cdk_secure_tunnel.lambda_code import ASSET_ROOT  # noqa: PLC0415  (starts Node.js)

    assert HANDLER.parent == ASSET_ROOT
    assert sorted(p.name for p in ASSET_ROOT.iterdir() if p.name != "__pycache__") == ["tunnel_lambda"]


@pytest.mark.parametrize("root", [PACKAGE, HANDLER], ids=["cdk_secure_tunnel", "tunnel_lambda"])
def test_no_import_circles(root: Path) -> None:
    graph = {_module_name(path): _package_imports(path) for path in root.rglob("*.py")}
    for start, imported in graph.items():
        seen: set[str] = set()
        stack = list(imported)
        while stack:
            module = stack.pop()
            assert module != start, f"{start} imports itself through {sorted(seen)}"
            if module not in seen:
                seen.add(module)
                stack.extend(graph.get(module, ()))


def _module_name(path: Path) -> str:
    root = PACKAGE if path.is_relative_to(PACKAGE) else HANDLER
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
    return names


def _package_imports(path: Path) -> set[str]:
    """The package's modules ``path`` imports anywhere (for type checking and in functions too)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        target = f"{base}.{node.module}" if node.module else base
        if node.module:
            found.add(target)
        # `from .x import y` may import the module x.y; names that are not modules add no edges.
        found.update(f"{target}.{alias.name}" for alias in node.names)
    return found - {module}


def test_test_modules_never_import_each_other() -> None:
    # What they share lives in tests/support/ (or in a conftest.py, as fixtures).
    for path in Path(__file__).resolve().parents[1].rglob("*.py"):
        for imported in _imports(path):
            top = imported.lstrip(".").split(".")[0]
            assert not top.startswith("test_"), (path, imported)
            assert top not in {"conftest", "lifecycle", "upkeep_support"}, (path, imported)


@pytest.mark.parametrize("variable", ["CDK_SECURE_TUNNEL_DATA_ENDPOINT", "CDK_SECURE_TUNNEL_DATA_CA_FILE"])
def test_the_data_plane_variables_are_defined_once_in_the_protocol(variable: str) -> None:
    # The emulator sets them and the local proxy reads them: both import protocol.handshake, which the
    # device's distribution carries too.
    defined_in = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and isinstance(node.value, ast.Constant)
        and node.value.value == variable
    ]
    assert defined_in == ["protocol/handshake.py"]


def test_the_only_pth_file_adds_one_plain_path() -> None:
    """Python's ``site`` executes a ``.pth`` line that starts with ``import``: the one the wheel ships
    (README, "Layout") may only name a directory inside the package, on a line of its own."""
    root = Path(__file__).resolve().parents[2]
    shipped = sorted(
        path.relative_to(root).as_posix()
        for tree in ("constructs", "lambda_src")
        for path in (root / tree).rglob("*.pth")
    )
    assert shipped == ["constructs/cdk_secure_tunnel_lambda.pth"]
    assert _pth_paths((root / shipped[0]).read_text()) == ["cdk_secure_tunnel/lambda_src"]


def _pth_paths(text: str) -> list[str]:
    """The directories a ``.pth`` file adds, failing on anything ``site`` would run or resolve outside."""
    lines = text.splitlines()
    assert len(lines) == 1, lines
    for line in lines:
        assert not line.startswith(("import ", "import\t")), line
        path = PurePosixPath(line)
        assert line == line.strip(), line
        assert not path.is_absolute(), line
        assert ".." not in path.parts, line
        assert path.parts[0] == "cdk_secure_tunnel", line
    return lines
