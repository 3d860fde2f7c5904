"""Where the Lambda code lives: inside the installed package, or beside it in a source checkout."""

from pathlib import Path

from aws_cdk import aws_lambda

_PACKAGE = Path(__file__).resolve().parent
# A wheel carries the code in the package (see pyproject.toml); an editable install reads the repository.
_CANDIDATES = (_PACKAGE / "lambda_src", _PACKAGE.parent.parent / "lambda_src")


def lambda_source() -> Path:
    for candidate in _CANDIDATES:
        if (candidate / "tunnel_lambda").is_dir():
            return candidate
    raise FileNotFoundError(f"the Lambda code of cdk-secure-tunnel is missing: looked in {_CANDIDATES}")


def handler_code() -> aws_lambda.Code:
    # Byte-code caches would change the asset hash on every test run and mean nothing to Lambda.
    return aws_lambda.Code.from_asset(str(lambda_source()), exclude=["__pycache__", "*.pyc"])
