"""The Lambda code (inside the installed package, or beside it in a source checkout) and its functions."""

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, aws_lambda
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs

from constructs import Construct

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


def python_function(
    scope: Construct,
    id_prefix: str,
    *,
    handler: str,
    description: str,
    role_description: str,
    timeout: Duration,
) -> tuple[iam.Role, aws_lambda.Function]:
    """A function running ``handler`` from the packaged code, with a role and a log group of its own.

    The role starts with no permissions but writing that log group (a role we pass in gets no managed
    logging policy from CDK, and needs none broader); callers add what the function calls.
    """
    role = iam.Role(
        scope,
        f"{id_prefix}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=role_description,
    )
    log_group = logs.LogGroup(
        scope, f"{id_prefix}Logs", retention=logs.RetentionDays.ONE_YEAR, removal_policy=RemovalPolicy.DESTROY
    )
    log_group.grant_write(role)
    return role, aws_lambda.Function(
        scope,
        f"{id_prefix}Function",
        runtime=aws_lambda.Runtime.PYTHON_3_14,
        architecture=aws_lambda.Architecture.ARM_64,
        handler=handler,
        code=handler_code(),
        role=role,
        log_group=log_group,
        memory_size=256,
        timeout=timeout,
        description=description,
    )
