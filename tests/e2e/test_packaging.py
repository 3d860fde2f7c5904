"""The wheel carries everything: installed into a clean venv, it synthesizes from any directory.

Slow (it installs aws-cdk-lib into a new venv), so it runs once per test session.
"""

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

APP = """
from aws_cdk import App, Stack
from cdk_secure_tunnel import SecureTunnel

app = App(outdir="cdk.out")
SecureTunnel(Stack(app, "Elsewhere"), "Tunnel", thing="pump-7")
app.synth()
"""


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv with only the built wheel (and its dependencies) installed."""
    work = tmp_path_factory.mktemp("packaging")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(work / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (work / "dist").glob("*.whl")
    venv.create(work / "venv", with_pip=True)
    python = work / "venv" / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--quiet", str(wheel)], check=True, capture_output=True)
    return python


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
    assert "pip install 'cdk-secure-tunnel-proxy[aws]'" in refused.stderr
