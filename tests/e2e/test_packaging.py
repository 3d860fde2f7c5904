"""Installing the library as a user does: the wheel from ``make wheel`` into a clean venv.

The wheel carries everything: installed, it synthesizes from any directory without importing anything
of the ``[testing]`` extra; and with that extra, a user's pytest session has the fixtures,
LocalCloudFormation and the snapshot matcher working with nothing else installed. Slow (the venv installs
aws-cdk-lib and moto), so it is made once per module.
"""

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "constructs" / "cdk_secure_tunnel"

APP = """
from aws_cdk import App, Stack
from cdk_secure_tunnel import SecureTunnel

app = App(outdir="cdk.out")
SecureTunnel(Stack(app, "Elsewhere"), "Tunnel", thing="pump-7")
app.synth()

import sys

# The library itself needs nothing that only the [testing] extra installs.
assert not {"boto3", "moto", "pytest", "syrupy"} & set(sys.modules), sorted(sys.modules)
"""

USER_TEST = """
import boto3
from aws_cdk import App, Stack
from aws_cdk.assertions import Template
from cdk_secure_tunnel import SecureTunnel
from cdk_secure_tunnel.testing.cloudformation import LocalCloudFormation
from cdk_secure_tunnel.testing.snapshots import normalize_assets
from syrupy.extensions.json import JSONSnapshotExtension


def test_my_stack(local_aws, tunnel_emulator, snapshot):
    stack = Stack(App(), "Mine")
    SecureTunnel(stack, "Tunnel", thing="pump-7")
    template = Template.from_stack(stack).to_json()
    assert template == snapshot(extension_class=JSONSnapshotExtension, matcher=normalize_assets)
    cloudformation = LocalCloudFormation("Mine")
    cloudformation.deploy(template)
    (tunnel,) = tunnel_emulator.open_tunnels()
    (secret,) = boto3.client("secretsmanager").list_secrets()["SecretList"]
    cloudformation.destroy()
    assert tunnel_emulator.tunnel(tunnel.tunnel_id).status == "CLOSED"
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel as ``make wheel`` builds it."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(["make", "wheel", f"WHEEL_DIR={dist}"], cwd=ROOT, check=True, capture_output=True)
    (built,) = dist.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def installed_wheel(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv with only the built wheel, its ``[testing]`` extra and their dependencies."""
    work = tmp_path_factory.mktemp("packaging")
    venv.create(work / "venv", with_pip=True)
    python = work / "venv" / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{wheel}[testing]"],
        check=True,
        capture_output=True,
    )
    return python


@pytest.mark.slow
def test_the_wheels_only_pth_file_is_the_checked_one(wheel: Path) -> None:
    """The wheel carries one ``.pth`` file, byte for byte the one tests/unit/test_layout.py checks (one
    plain path line, no ``import`` line that ``site`` would run), and it names where the handler is."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (pth,) = [name for name in names if name.endswith(".pth")]
        content = archive.read(pth)
    assert pth == "cdk_secure_tunnel_lambda.pth"
    assert content == (ROOT / "constructs" / pth).read_bytes()
    assert f"{content.decode().strip()}/tunnel_lambda/__init__.py" in names


@pytest.mark.slow
def test_installed_wheel_synthesizes_outside_the_repository(installed_wheel: Path, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    subprocess.run([installed_wheel, "app.py"], cwd=tmp_path, check=True, capture_output=True, env=os.environ)
    template = json.loads((tmp_path / "cdk.out" / "Elsewhere.template.json").read_text())
    handler = next(
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("Handler", "").startswith("tunnel_lambda.")
    )
    assets = json.loads((tmp_path / "cdk.out" / "Elsewhere.assets.json").read_text())["files"]
    asset_dirs = [tmp_path / "cdk.out" / a["source"]["path"] for a in assets.values()]
    assert any((d / "tunnel_lambda" / "custom_resource.py").is_file() for d in asset_dirs), handler


@pytest.mark.slow
def test_the_testing_extra_is_all_a_users_test_session_needs(installed_wheel: Path, tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text(USER_TEST)
    result = subprocess.run(
        [installed_wheel, "-m", "pytest", "-p", "no:cacheprovider", "--snapshot-update", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=os.environ,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


@pytest.mark.parametrize("target", ["wheel", "proxy-wheel"])
def test_make_wheel_needs_neither_the_dev_environment_nor_node(target: str) -> None:
    # -B: every command of the target's whole chain, as on a fresh clone.
    commands = subprocess.run(
        ["make", "-n", "-B", target], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    assert "npm" not in commands
    assert ".[dev]" not in commands
    assert "pip wheel" in commands


def _closure(requirements: list[str], extras: set[str]) -> set[str]:
    """The normalized names of the distributions these requirements install, transitively."""
    seen: set[str] = set()
    pending = [(Requirement(text), extras) for text in requirements]
    while pending:
        requirement, active = pending.pop()
        if requirement.marker and not any(
            requirement.marker.evaluate({"extra": extra}) for extra in active | {""}
        ):
            continue
        name = _normalized(requirement.name)
        new_extras = set(requirement.extras)
        if name in seen and not new_extras:
            continue
        seen.add(name)
        pending += [(Requirement(text), new_extras) for text in metadata.requires(name) or []]
    return seen


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_imports(node: ast.AST) -> set[str]:
    """Top-level modules imported by absolute imports, leaving out ``if TYPE_CHECKING:`` blocks."""
    if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
        return set().union(*(_runtime_imports(child) for child in node.orelse))
    if isinstance(node, ast.Import):
        return {alias.name.split(".")[0] for alias in node.names}
    if isinstance(node, ast.ImportFrom) and not node.level and node.module:
        return {node.module.split(".")[0]}
    return set().union(*(_runtime_imports(child) for child in ast.iter_child_nodes(node)))


def test_the_testing_extra_installs_every_module_the_testing_kit_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    testing = [
        text for text in project["optional-dependencies"]["testing"] if not text.startswith(project["name"])
    ]
    installed = _closure(project["dependencies"] + testing, set())
    distributions = metadata.packages_distributions()
    kit = [PACKAGE / "testing", PACKAGE / "emulator"]
    imported = {
        module
        for directory in kit
        if directory.is_dir()
        for source in directory.glob("*.py")
        for module in _runtime_imports(ast.parse(source.read_text()))
    }
    third_party = {
        module: {_normalized(name) for name in distributions[module]}
        for module in imported
        if module in distributions and module not in sys.stdlib_module_names and module != "cdk_secure_tunnel"
    }
    missing = {module for module, names in third_party.items() if not names & installed}
    assert not missing, f"imported by the testing kit but not installed by [testing]: {sorted(missing)}"
    assert {"boto3", "moto", "pytest"} <= set(third_party)


@pytest.mark.slow
def test_installed_wheel_has_the_tunnel_command(installed_wheel: Path, tmp_path: Path) -> None:
    script = installed_wheel.parent / "cdk-secure-tunnel"
    completed = subprocess.run(
        [script, "--version"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert completed.stdout.startswith("cdk-secure-tunnel 0.")


@pytest.mark.slow
def test_installed_wheel_imports_the_handler_from_its_asset_root(
    installed_wheel: Path, tmp_path: Path
) -> None:
    code = "import tunnel_lambda.contract, cdk_secure_tunnel as p; print(tunnel_lambda.__file__, p.__file__)"
    result = subprocess.run(
        [installed_wheel, "-c", code], cwd=tmp_path, check=True, capture_output=True, text=True
    )
    handler, package = (Path(path).parent for path in result.stdout.split())
    assert handler == package / "lambda_src" / "tunnel_lambda"
    assert [path.name for path in handler.parent.iterdir()] == ["tunnel_lambda"]


TYPED_APP = """
from aws_cdk import App, Stack
from cdk_secure_tunnel import SecureTunnel

tunnel = SecureTunnel(Stack(App(), "Typed"), "Tunnel", thing="pump-7")
tunnel_id: str = tunnel.tunnel_id
"""
# Only the package itself is analyzed: following aws-cdk-lib's stubs takes minutes, and its types are
# not what is checked here (they become Any).
TYPED_APP_CONFIG = """
[mypy]
strict = True
follow_imports = skip
[mypy-cdk_secure_tunnel.*]
follow_imports = normal
"""


@pytest.mark.slow
def test_mypy_strict_accepts_an_app_importing_the_installed_wheel(
    installed_wheel: Path, tmp_path: Path
) -> None:
    """The wheel carries py.typed: without it mypy --strict rejects every import of the package."""
    (tmp_path / "mypy.ini").write_text(TYPED_APP_CONFIG)
    (tmp_path / "app.py").write_text(TYPED_APP)
    (tmp_path / "wrong.py").write_text(TYPED_APP + "SecureTunnel(Stack(App(), 'S'), 'T', renew='yes')\n")
    mypy = [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--no-incremental"]
    mypy += ["--python-executable", str(installed_wheel)]
    checked = subprocess.run([*mypy, "app.py"], check=False, cwd=tmp_path, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout
    # The package's annotations are read, not skipped: a wrong argument type is caught.
    wrong = subprocess.run([*mypy, "wrong.py"], check=False, cwd=tmp_path, capture_output=True, text=True)
    assert 'Argument "renew" to "SecureTunnel" has incompatible type "str"' in wrong.stdout, wrong.stdout


def test_import_constructs_from_the_repository_root_is_the_library() -> None:
    # constructs/ holds our package and must never shadow the `constructs` library.
    assert not (ROOT / "constructs" / "__init__.py").exists()
    result = subprocess.run(
        [sys.executable, "-c", "import constructs; print(constructs.__file__, constructs.Construct)"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    assert "site-packages" in result.stdout


@pytest.fixture(scope="module")
def installed_proxy_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv with only the device's distribution (packaging/proxy) and its dependencies."""
    work = tmp_path_factory.mktemp("proxy-packaging")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--outdir",
            str(work / "dist"),
            str(ROOT / "packaging" / "proxy"),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (work / "dist").glob("cdk_secure_tunnel_proxy-*.whl")
    venv.create(work / "venv", with_pip=True)
    python = work / "venv" / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--quiet", str(wheel)], check=True, capture_output=True)
    return python


@pytest.mark.slow
def test_the_device_distribution_runs_without_the_cdk(installed_proxy_wheel: Path, tmp_path: Path) -> None:
    script = installed_proxy_wheel.parent / "cdk-secure-tunnel"
    helped = subprocess.run(
        [script, "device", "--help"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert "--notify FILE" in helped.stdout
    probe = (
        "import importlib.util as u, cdk_secure_tunnel.localproxy; "
        "print([u.find_spec(m) for m in ('aws_cdk', 'jsii', 'boto3')])"
    )
    found = subprocess.run(
        [installed_proxy_wheel, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[None, None, None]"
    # Without boto3, what needs it says how to get it.
    refused = subprocess.run(
        [script, "device", "--secret", "arn:aws:secretsmanager:eu-west-1:1:secret:x", "-d", "22"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2
    assert "reading secrets needs boto3: pip install boto3" in refused.stderr
    assert "cdk-secure-tunnel-proxy" not in refused.stderr  # not on PyPI: a name anyone could register
    # Typed like the full distribution: mypy --strict accepts imports of it.
    typed = subprocess.run(
        [
            installed_proxy_wheel,
            "-c",
            "import cdk_secure_tunnel as p, pathlib; "
            "print(pathlib.Path(p.__file__).with_name('py.typed').is_file())",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert typed.stdout.strip() == "True"


def test_the_docs_install_the_device_distribution_by_its_wheel_not_by_name() -> None:
    # The name is not on PyPI: `pip install <name>` would install whatever someone registers under it.
    by_name = re.compile(r"pip install\s+['\"]?cdk-secure-tunnel-proxy\b")
    device_docs = (ROOT / "docs" / "local-proxy.md", ROOT / "packaging" / "proxy" / "README.md")
    for doc in (ROOT / "README.md", *device_docs):
        assert not by_name.search(doc.read_text()), doc
    for doc in device_docs:
        assert "pip install cdk_secure_tunnel_proxy-0.1.0-py3-none-any.whl" in doc.read_text(), doc
