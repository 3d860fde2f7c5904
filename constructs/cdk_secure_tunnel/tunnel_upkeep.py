"""Token rotation and tunnel renewal, shared by every SecureTunnel of a stack.

One Lambda function (``tunnel_lambda.upkeep.handle``, the same code asset as the custom resource
handler) serves both:

- Secrets Manager invokes it to rotate a token secret, through one ``AWS::SecretsManager::RotationSchedule``
  per secret: ``aws secretsmanager rotate-secret --secret-id <secret>`` gives a fresh token at any time,
  and a rotation rule adds a schedule.
- One EventBridge Scheduler schedule per stack invokes it to renew tunnels before their lifetime ends.

Like the handler's, its IAM policy is scoped by the stack's tag and does not grow with the number of
tunnels, and renewal adds three resources per stack rather than any per tunnel (see ``renew``).

>>> upkeep = TunnelUpkeep.of(scope)  # doctest: +SKIP
>>> upkeep.rotate(tunnel, secret, after=tunnel_resource, schedule="rate(8 hours)")  # doctest: +SKIP
>>> upkeep.renew(lifetime_minutes=120)  # doctest: +SKIP
"""

import math

from aws_cdk import Acknowledgment, Aws, Duration, Stack, Token, Validations, aws_lambda
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_secretsmanager as secretsmanager

from constructs import Construct

from .lambda_code import python_function
from .tunnel_provider import STACK_TAG, arn, stack_singleton
from .validation import RESERVED_TAG_PREFIXES

# On the source secret of each renewing tunnel: how the schedule finds them (tunnel_lambda/renewal.py).
RENEW_TAG = f"{RESERVED_TAG_PREFIXES[1]}renew"
# Renewal opens the next tunnel at least this long before the current one ends: room for the schedule's
# jitter and a slow, throttled invocation (the function's timeout is 10 minutes).
RENEWAL_MARGIN_MINUTES = 10
MIN_RENEWED_LIFETIME_MINUTES = RENEWAL_MARGIN_MINUTES + 5
# A tunnel closed by hand (or a failed renewal) is retried within this time, however long tunnels live.
MAX_CHECK_INTERVAL_MINUTES = 60

_ACKNOWLEDGMENTS = {
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:tunnel/*]": (
        "Renewal opens tunnels whose ids the service chooses; OpenTunnel is restricted to requests that tag "
        "the tunnel with this stack's id, DescribeTunnel and CloseTunnel to tunnels carrying that tag."
    ),
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:thing/*]": (
        "Opening and rotating name the destination thing; which things a stack targets is its template's "
        "choice, and the policy must not grow with the number of tunnels."
    ),
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:*]": (  # noqa: E501
        "Access is limited by condition to secrets tagged with this stack's id, which keeps the policy one "
        "statement however many tunnels the stack has."
    ),
    "AwsSolutions-IAM5[Resource::*]": (
        "secretsmanager:ListSecrets has no resource-level permissions; renewal lists the secrets tagged "
        "with this stack's id and reads only those."
    ),
}


class TunnelUpkeep(Construct):
    """The stack's rotation and renewal function, its role and (with renewal) its schedule."""

    CONSTRUCT_ID = "CdkSecureTunnelUpkeep"

    @classmethod
    def of(cls, scope: Construct) -> "TunnelUpkeep":
        return stack_singleton(cls, scope, cls.CONSTRUCT_ID)

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.role, self.function = python_function(
            self,
            "",
            handler="tunnel_lambda.upkeep.handle",
            description="cdk-secure-tunnel: rotates tunnel tokens and renews tunnels",
            role_description="Rotates the tokens and renews the tunnels of this stack's IoT secure tunnels",
            # A renewal run walks every renewing tunnel of the stack, each with retried calls.
            timeout=Duration.minutes(10),
        )
        # One permission for every secret: the stack's own account only, so no other account's secret can
        # name this function as its rotation function.
        self._invoke_permission = aws_lambda.CfnPermission(
            self,
            "SecretsManagerInvoke",
            action="lambda:InvokeFunction",
            function_name=self.function.function_arn,
            principal="secretsmanager.amazonaws.com",
            source_account=Aws.ACCOUNT_ID,
        )
        self._grant_rotation()
        self._schedule: scheduler.CfnSchedule | None = None
        self._renewed_lifetimes: list[float] = []
        self._keys: set[str] = set()
        Validations.of(self).acknowledge(
            *(Acknowledgment(id=rule, reason=reason) for rule, reason in _ACKNOWLEDGMENTS.items())
        )

    def rotate(
        self, scope: Construct, secret: secretsmanager.ISecret, *, after: Construct, schedule: str | None
    ) -> secretsmanager.CfnRotationSchedule:
        """Make this function the secret's rotation function, with a rotation rule if ``schedule`` is set.

        The rotation schedule goes into ``scope`` (the SecureTunnel), named after the secret.

        ``after`` is what writes the secret's first token: rotation is configured only once it exists, and
        configuring it does not rotate at once (the token was just issued).
        """
        rotation = secretsmanager.CfnRotationSchedule(
            scope,
            f"{secret.node.id}Rotation",
            secret_id=secret.secret_arn,
            rotation_lambda_arn=self.function.function_arn,
            rotation_rules=(
                secretsmanager.CfnRotationSchedule.RotationRulesProperty(schedule_expression=schedule)
                if schedule
                else None
            ),
            rotate_immediately_on_update=False,
        )
        # Secrets Manager tests the function when rotation is configured: it needs its rights by then.
        rotation.node.add_dependency(after, self.role, self._invoke_permission)
        return rotation

    def allow_key(self, key: kms.IKey) -> None:
        """Let the function read and write secrets encrypted with ``key``."""
        if key.node.path not in self._keys:
            self._keys.add(key.node.path)
            key.grant(self.role, "kms:Decrypt", "kms:GenerateDataKey")

    def renew(self, lifetime_minutes: float) -> None:
        """Renew a tunnel living ``lifetime_minutes`` (a number token counts as the shortest allowed).

        One schedule serves the stack: it runs every ``interval`` minutes, the shortest renewed lifetime
        less the margin (at most an hour), and each run renews what ends within ``interval + margin``.
        Every tunnel is thus renewed by the last run before its final ``margin`` minutes. A schedule per
        tunnel would be exact, but adds a resource per tunnel: 150 tunnels with a secret and rotation each
        would need 600 resources, past CloudFormation's 500.
        """
        if self._schedule is None:
            self._schedule = self._create_schedule()
        resolved = not Token.is_unresolved(lifetime_minutes)
        self._renewed_lifetimes.append(lifetime_minutes if resolved else MIN_RENEWED_LIFETIME_MINUTES)
        shortest = min(self._renewed_lifetimes)
        interval = max(1, min(MAX_CHECK_INTERVAL_MINUTES, math.floor(shortest) - RENEWAL_MARGIN_MINUTES))
        self._schedule.schedule_expression = f"rate({interval} minutes)"
        self._schedule.target = self._target(within_minutes=interval + RENEWAL_MARGIN_MINUTES)

    def _create_schedule(self) -> scheduler.CfnSchedule:
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="FindRenewingTokenSecrets",
                actions=["secretsmanager:ListSecrets"],
                resources=["*"],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="OpenTunnelsTaggedWithThisStack",
                actions=["iot:OpenTunnel", "iot:TagResource"],
                resources=[arn("iot", "tunnel/*"), arn("iot", "thing/*")],
                conditions={"StringEquals": {f"aws:RequestTag/{STACK_TAG}": Aws.STACK_ID}},
            )
        )
        self._scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
            description="Lets EventBridge Scheduler start this stack's tunnel renewal",
        )
        self._scheduler_role.add_to_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.function.function_arn])
        )
        schedule = scheduler.CfnSchedule(
            self,
            "RenewalSchedule",
            description="cdk-secure-tunnel: renews this stack's IoT secure tunnels before they expire",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            schedule_expression=f"rate({MAX_CHECK_INTERVAL_MINUTES} minutes)",
            target=self._target(within_minutes=MAX_CHECK_INTERVAL_MINUTES + RENEWAL_MARGIN_MINUTES),
        )
        schedule.node.add_dependency(self._scheduler_role, self.role)
        return schedule

    def _target(self, within_minutes: int) -> scheduler.CfnSchedule.TargetProperty:
        return scheduler.CfnSchedule.TargetProperty(
            arn=self.function.function_arn,
            role_arn=self._scheduler_role.role_arn,
            input=Stack.of(self).to_json_string(
                {"stackId": Aws.STACK_ID, "renewWithinMinutes": within_minutes}
            ),
            # A missed run is made up by the next one, which looks at every tunnel again.
            retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(maximum_retry_attempts=2),
        )

    def _grant_rotation(self) -> None:
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="RotateThisStacksTokenSecrets",
                actions=[
                    "secretsmanager:DescribeSecret",
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:PutSecretValue",
                    "secretsmanager:UpdateSecretVersionStage",
                ],
                resources=[arn("secretsmanager", "secret:*")],
                conditions={"StringEquals": {f"aws:ResourceTag/{STACK_TAG}": Aws.STACK_ID}},
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="DescribeAndCloseThisStacksTunnels",
                actions=["iot:DescribeTunnel", "iot:CloseTunnel"],
                resources=[arn("iot", "tunnel/*")],
                conditions={"StringEquals": {f"aws:ResourceTag/{STACK_TAG}": Aws.STACK_ID}},
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="RotateTunnelTokens",
                actions=["iot:RotateTunnelAccessToken"],
                # A destination rotation names the thing that AWS IoT notifies.
                resources=[arn("iot", "tunnel/*"), arn("iot", "thing/*")],
            )
        )
