"""The Lambda functions that run the ``tunnel_lambda`` package, and the asset that carries it."""

from pathlib import Path

import tunnel_lambda
from aws_cdk import Duration, RemovalPolicy, aws_lambda
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs

from constructs import Construct

# The directory that holds the handler package, and nothing else, is the asset's root: lambda_src/ in a
# checkout, cdk_secure_tunnel/lambda_src/ in an installed wheel (README, "Layout").
ASSET_ROOT = Path(tunnel_lambda.__file__).resolve().parent.parent


def handler_code() -> aws_lambda.Code:
    # Byte-code caches would change the asset hash on every test run and mean nothing to Lambda.
    return aws_lambda.Code.from_asset(str(ASSET_ROOT), exclude=["__pycache__", "*.pyc"])


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
