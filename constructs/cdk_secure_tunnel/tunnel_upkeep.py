"""Token rotation and tunnel renewal, shared by every SecureTunnel of a stack.

One Lambda function (``tunnel_lambda.upkeep.handle``, the same code asset as the custom resource
handler) serves both:

- Secrets Manager invokes it to rotate a token secret, through one ``AWS::SecretsManager::RotationSchedule``
  per secret: ``aws secretsmanager rotate-secret --secret-id <secret>`` gives a fresh token at any time,
  and a rotation rule adds a schedule.
- One EventBridge Scheduler schedule per stack invokes it to renew tunnels before their lifetime ends.

Like the handler's, its IAM policy is scoped by the stack's tag and does not grow with the number of
tunnels, and renewal adds three resources per stack rather than any per tunnel (see ``renew``).

>>> from aws_cdk import App
>>> stack = Stack(App(), "Pumps")
>>> upkeep = TunnelUpkeep.of(stack)
>>> upkeep is TunnelUpkeep.of(stack)
True
>>> tunnel = CfnResource(stack, "Tunnel", type="Custom::SecureTunnel")
>>> arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:token-AbCdEf"
>>> rotation = upkeep.rotate(stack, "SourceToken", arn, after=tunnel, schedule="rate(8 hours)")
>>> upkeep.renew(tunnel, lifetime_minutes=120)
"""

import math

from aws_cdk import Aws, CfnResource, Duration, Stack, aws_lambda
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_secretsmanager as secretsmanager
from tunnel_lambda.contract import UPKEEP_CONSTRUCT_ID, UPKEEP_HANDLER, ScheduleInput

from constructs import Construct

from .lambda_code import python_function
from .per_stack import STACK_ID, stack_singleton
from .policies import (
    acknowledge,
    allow_key_once,
    notify_things_statement,
    open_tunnels_statement,
    this_stacks_secrets_statement,
    this_stacks_tunnels_statement,
)
from .tunnel_provider import TunnelProvider
from .validation import is_unresolved

# Renewal opens the next tunnel at least this long before the current one ends: room for the schedule's
# jitter and a slow, throttled invocation (the function's timeout is 10 minutes).
RENEWAL_MARGIN_MINUTES = 10
MIN_RENEWED_LIFETIME_MINUTES = RENEWAL_MARGIN_MINUTES + 5
# A tunnel closed by hand (or a failed renewal) is retried within this time, however long tunnels live.
MAX_CHECK_INTERVAL_MINUTES = 60

_ACKNOWLEDGMENTS = {
    "AwsSolutions-IAM5[Resource::*]": (
        "secretsmanager:ListSecrets has no resource-level permissions; renewal lists the secrets tagged "
        "with this stack's id and reads only those. OpenTunnel has no resource type in the service "
        "authorization reference, so only '*' matches it; renewal may open tunnels only when the request "
        "tags them with this stack's id."
    ),
}


def _rate(interval_minutes: int) -> str:
    return f"rate({interval_minutes} minutes)"


class TunnelUpkeep(Construct):
    """The stack's rotation and renewal function, its role and (with renewal) its schedule."""

    CONSTRUCT_ID = UPKEEP_CONSTRUCT_ID

    @classmethod
    def of(cls, scope: Construct) -> "TunnelUpkeep":
        return stack_singleton(cls, scope, cls.CONSTRUCT_ID)

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.role, self.function = python_function(
            self,
            "",
            handler=UPKEEP_HANDLER,
            description="cdk-secure-tunnel: rotates tunnel tokens and renews tunnels",
            role_description="Rotates the tokens and renews the tunnels of this stack's IoT secure tunnels",
            # A renewal run walks every renewing tunnel of the stack, each with retried calls.
            timeout=Duration.minutes(10),
        )
        self.function_arn = self.function.function_arn
        # One permission for every secret: the stack's own account only, so no other account's secret can
        # name this function as its rotation function.
        invoke_permission = aws_lambda.CfnPermission(
            self,
            "SecretsManagerInvoke",
            action="lambda:InvokeFunction",
            function_name=self.function_arn,
            principal="secretsmanager.amazonaws.com",
            source_account=Aws.ACCOUNT_ID,
        )
        # Configuring rotation makes Secrets Manager test the function at once, so the permission must
        # exist before any rotation schedule. Every schedule waits for its tunnel (see rotate), every
        # tunnel for the handler, through its service token and the provider framework: one dependency of
        # the handler orders them all, instead of one in each schedule.
        TunnelProvider.of(self).handler.node.add_dependency(invoke_permission)
        self._grant_rotation()
        self._schedule: scheduler.CfnSchedule | None = None
        # Minutes between renewal runs: the shortest renewed lifetime so far, less the margin.
        self._interval = MAX_CHECK_INTERVAL_MINUTES
        self._keys: set[kms.IKey] = set()
        acknowledge(self, _ACKNOWLEDGMENTS)

    def rotate(
        self,
        scope: Construct,
        secret_id: str,
        secret_arn: str,
        *,
        after: CfnResource,
        schedule: str | None,
    ) -> secretsmanager.CfnRotationSchedule:
        """Make this function the secret's rotation function, with a rotation rule if ``schedule`` is set.

        The rotation schedule goes into ``scope`` (the SecureTunnel), named after the secret's construct
        id ``secret_id``.

        ``after`` is the tunnel that writes the secret's first token: rotation is configured only once it
        exists, and configuring it does not rotate at once (the token was just issued).
        """
        rotation = secretsmanager.CfnRotationSchedule(
            scope,
            f"{secret_id}Rotation",
            secret_id=secret_arn,
            rotation_lambda_arn=self.function_arn,
            rotation_rules=(
                secretsmanager.CfnRotationSchedule.RotationRulesProperty(schedule_expression=schedule)
                if schedule
                else None
            ),
            rotate_immediately_on_update=False,
        )
        # Secrets Manager tests the function when rotation is configured: the function's role and policy
        # come first through RotationLambdaARN (a function depends on its role), the invoke permission
        # through ``after`` (see __init__).
        rotation.add_resource_dependency(after)
        return rotation

    def allow_key(self, key: kms.IKey) -> None:
        """Let the function read and write secrets encrypted with ``key``."""
        allow_key_once(self.role, key, self._keys)

    def renew(self, resource: CfnResource, lifetime_minutes: float) -> None:
        """Renew the tunnel ``resource`` living ``lifetime_minutes`` (a number token counts as the shortest
        allowed).

        One schedule serves the stack: it runs every ``interval`` minutes, the shortest renewed lifetime
        less the margin (at most an hour), and each run renews what ends within ``interval + margin``.
        Every tunnel is thus renewed by the last run before its final ``margin`` minutes. A schedule per
        tunnel would be exact, but adds a resource per tunnel: 150 tunnels with a secret and rotation each
        would need 600 resources, past CloudFormation's 500.
        """
        lifetime = MIN_RENEWED_LIFETIME_MINUTES if is_unresolved(lifetime_minutes) else lifetime_minutes
        interval = max(1, min(self._interval, math.floor(lifetime) - RENEWAL_MARGIN_MINUTES))
        if self._schedule is None:
            self._schedule = self._create_schedule(interval)
        elif interval != self._interval:
            self._schedule.schedule_expression = _rate(interval)
            self._schedule.target = self._target(interval)
        self._interval = interval
        # CloudFormation deletes a resource before what it depends on: the schedule depends on every
        # renewing tunnel, so on destroy it goes first and no run starts while the tunnels are deleted.
        # (A run already under way loses its secret writes to each Delete and closes what it opened.)
        self._schedule.add_resource_dependency(resource)

    def _create_schedule(self, interval: int) -> scheduler.CfnSchedule:
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="FindRenewingTokenSecrets",
                actions=["secretsmanager:ListSecrets"],
                resources=["*"],
            )
        )
        self.role.add_to_policy(open_tunnels_statement())
        self._scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
            description="Lets EventBridge Scheduler start this stack's tunnel renewal",
        )
        self._scheduler_role.add_to_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.function_arn])
        )
        schedule = scheduler.CfnSchedule(
            self,
            "RenewalSchedule",
            description="cdk-secure-tunnel: renews this stack's IoT secure tunnels before they expire",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            schedule_expression=_rate(interval),
            target=self._target(interval),
        )
        schedule.node.add_dependency(self._scheduler_role, self.role)
        return schedule

    def _target(self, interval: int) -> scheduler.CfnSchedule.TargetProperty:
        """Each run renews what ends before the next run's margin: within ``interval + margin`` minutes,
        and leaves alone a tunnel opened at or after its own scheduled time (a retry or a second delivery
        of the run that opened it), and one opened less than ``interval`` ago that outlives the next run
        (see tunnel_lambda/renewal.py ``is_due``).

        Scheduler replaces its context attributes in any target's input, a Lambda function's included
        (EventBridge Scheduler User Guide, "Adding context attributes"; aws-cdk-lib's
        ``aws_scheduler.ContextAttribute`` is meant for the same input).
        """
        return scheduler.CfnSchedule.TargetProperty(
            arn=self.function_arn,
            role_arn=self._scheduler_role.role_arn,
            input=Stack.of(self).to_json_string(
                {
                    ScheduleInput.STACK_ID: STACK_ID,
                    ScheduleInput.RENEW_WITHIN_MINUTES: interval + RENEWAL_MARGIN_MINUTES,
                    ScheduleInput.INTERVAL_MINUTES: interval,
                    ScheduleInput.SCHEDULED_TIME: ScheduleInput.SCHEDULED_TIME_ATTRIBUTE,
                }
            ),
            # A missed run is made up by the next one, which looks at every tunnel again.
            retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(maximum_retry_attempts=2),
        )

    def _grant_rotation(self) -> None:
        self.role.add_to_policy(
            this_stacks_secrets_statement(
                "RotateThisStacksTokenSecrets",
                [
                    "secretsmanager:DescribeSecret",
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:PutSecretValue",
                    "secretsmanager:UpdateSecretVersionStage",
                ],
            )
        )
        self.role.add_to_policy(this_stacks_tunnels_statement())
        self.role.add_to_policy(notify_things_statement())
