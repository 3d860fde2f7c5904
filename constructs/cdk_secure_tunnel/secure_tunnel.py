"""The SecureTunnel construct: an AWS IoT secure tunnel that lives and dies with the stack."""

from collections.abc import Mapping, Sequence
from functools import cached_property

import jsii
from aws_cdk import (
    Acknowledgment,
    CfnResource,
    Duration,
    IResolvable,
    ITaggable,
    RemovalPolicy,
    Stack,
    TagManager,
    Tags,
    TagType,
    Token,
    Validations,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from tunnel_lambda.contract import (
    OWNER_STACK_TAG,
    RENEW_TAG,
    RESOURCE_TYPE,
)

from constructs import Construct, IValidation

from . import policies, validation
from .connect_recipe import SourceConnection
from .per_stack import STACK_ID, arn, per_stack, stack_of
from .tunnel_provider import TunnelProvider
from .tunnel_settings import TunnelSettings
from .tunnel_upkeep import TunnelUpkeep


@jsii.implements(ITaggable)
class SecureTunnel(Construct):
    """An AWS IoT secure tunnel opened on deploy and closed on destroy, its tokens in Secrets Manager.

    >>> from aws_cdk import App
    >>> stack = Stack(App(), "Pumps")
    >>> tunnel = SecureTunnel(stack, "Maintenance", thing="pump-7", services=["SSH"],
    ...                       max_lifetime=Duration.hours(2))
    >>> operator_role = iam.Role(stack, "Operator", assumed_by=iam.AccountRootPrincipal())
    >>> grant = tunnel.grant_read_source_token(operator_role)

    The source token (for the operator's local proxy) is always written to ``source_token_secret``.
    With a ``thing``, AWS IoT delivers the destination token to the device over MQTT, so no secret holds
    it unless ``store_destination_token=True``; without a thing, ``destination_token_secret`` holds it.
    Each secret stores JSON: the token and what is needed to connect with it (tunnel id and ARN, region,
    client mode, services, thing, expiry).

    A token connects only once. With ``rotate_on_demand=True`` (or ``rotate_every``), Secrets Manager
    issues a fresh one: ``aws secretsmanager rotate-secret --secret-id <source_token_secret ARN>``. With
    ``renew=True`` the tunnel outlives the service's 12-hour limit: a new one is opened before each ends,
    so ``tunnel_id`` stays the first tunnel's id while the secrets always name the current one:

    >>> support = SecureTunnel(stack, "Support", thing="pump-7", rotate_every=Duration.hours(8), renew=True)
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        thing: "str | iot.CfnThing | None" = None,
        services: Sequence[str] | None = None,
        max_lifetime: Duration | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        encryption_key: kms.IKey | None = None,
        store_destination_token: bool | None = None,
        rotate_on_demand: bool | None = None,
        rotate_every: Duration | None = None,
        renew: bool | None = None,
    ) -> None:
        """Open a secure tunnel with the stack.

        :param thing: The IoT thing (a name, or a ``CfnThing`` of this app, which the tunnel then depends on)
            whose device AWS IoT notifies with the destination token. Default: no thing; the destination
            token goes to ``destination_token_secret`` for you to deliver.
        :param services: 1 to 3 distinct service names the tunnel carries, each 1-128 characters of
            ``[a-zA-Z0-9:_-]``. Default: ``["SSH"]``.
        :param max_lifetime: How long the tunnel stays open, in whole minutes from 1 minute to 12 hours.
            Changing it replaces the tunnel. Default: 12 hours, the service's maximum.
        :param description: 1 to 2048 characters without control characters. Changing it replaces the
            tunnel. Default: names the stack and this construct's path.
        :param tags: Tags for the tunnel; ``Tags.of(scope).add(...)`` reaches it too. Keys starting with
            ``aws:`` or ``cdk-secure-tunnel:`` are reserved. Default: no tags of yours.
        :param encryption_key: The KMS key that encrypts the token secrets: a key, or an alias whose key
            CDK knows (``kms.Alias``, ``kms.Alias.from_alias_attributes``); an alias imported by name alone
            is refused, because no grant reaches its key. Default: the account's ``aws/secretsmanager`` key.
        :param store_destination_token: Whether a secret also holds the destination token. Default: true
            without a ``thing``, false with one (the device already gets its token, and every extra copy of
            a token is exposure). False without a ``thing`` is refused: nothing would deliver the token.
        :param rotate_on_demand: Whether Secrets Manager can rotate the token secrets, so that
            ``aws secretsmanager rotate-secret`` (or "Rotate secret immediately" in the console) gives a
            fresh token: a token connects only once. Adds a rotation schedule without rules to each
            secret (one more resource per secret; turn it off to fit more thing-less tunnels in one
            stack). Default: true.
        :param rotate_every: Rotate the tokens on this schedule too: whole hours from 4 to 23, or whole
            days from 1 to 1000 (Secrets Manager's limits). Default: no scheduled rotation.
        :param renew: Keep a tunnel open for as long as the stack exists: shortly before each tunnel's
            lifetime ends (or once it is found closed), a new one with the same configuration replaces
            it and the secrets get its tokens. Needs a ``max_lifetime`` of at least 15 minutes.
            Default: false; the tunnel closes when its lifetime ends.
        """
        super().__init__(scope, construct_id)
        # Each call into aws-cdk-lib is a round trip to Node.js, and a stack may hold hundreds of tunnels:
        # what its tunnels share is looked up once per stack (see per_stack), and no value twice.
        stack = stack_of(scope)
        settings = TunnelSettings.from_props(
            default_description=lambda: _default_description(stack, self.node.path),
            thing=thing,
            services=services,
            max_lifetime=max_lifetime,
            description=description,
            tags=tags,
            encryption_key=encryption_key,
            store_destination_token=store_destination_token,
            rotate_on_demand=rotate_on_demand,
            rotate_every=rotate_every,
            renew=renew,
        )
        self._tags = TagManager(TagType.KEY_VALUE, RESOURCE_TYPE)
        for key, value in settings.tags.items():
            self._tags.set_tag(key, value)
        provider = TunnelProvider.of(stack)
        rendered_tags = self._tags.rendered_tags
        per_stack(stack, _RenderedTagsCheck.__name__, lambda: _RenderedTagsCheck(provider)).add(
            self, rendered_tags
        )

        secrets = self._token_secrets(settings)
        self.source_token_secret: secretsmanager.ISecret = secrets["SourceToken"]
        self.destination_token_secret: secretsmanager.ISecret | None = secrets.get("DestinationToken")
        self._services = list(settings.services)
        secret_arns = {secret_id: secret.secret_arn for secret_id, secret in secrets.items()}
        properties = settings.to_properties(
            source_secret_arn=secret_arns["SourceToken"],
            destination_secret_arn=secret_arns.get("DestinationToken"),
            tags=rendered_tags,
        )
        # A custom resource without DeletionPolicy: CloudFormation's default, Delete, closes the tunnel.
        # The handler's rights need no DependsOn: the service token leads through the provider framework's
        # function to the handler, which depends on its role and policy.
        self._resource = CfnResource(
            self,
            "Resource",
            type=RESOURCE_TYPE,
            properties={"ServiceToken": provider.service_token, **properties},
        )
        if isinstance(thing, iot.CfnThing):
            self._resource.add_resource_dependency(thing)
        upkeep = TunnelUpkeep.of(stack) if settings.rotates or settings.renew else None
        # The rotation function, which RotateSecret needs the caller to be allowed to invoke (grant_connect).
        self._rotation_function_arn = upkeep.function_arn if upkeep is not None and settings.rotates else None
        if settings.encryption_key is not None:
            # Every function that reads or writes the token secrets may use their key.
            for function in (provider, upkeep):
                if function is not None:
                    function.allow_key(settings.encryption_key)
        if upkeep is not None and settings.rotates:
            for secret_id, secret_arn in secret_arns.items():
                upkeep.rotate(
                    self, secret_id, secret_arn, after=self._resource, schedule=settings.rotation_schedule
                )
        if upkeep is not None and settings.renew:
            upkeep.renew(self._resource, settings.max_lifetime_minutes)
            Tags.of(self.source_token_secret).add(RENEW_TAG, "true")

    @cached_property
    def tunnel_id(self) -> str:
        """The tunnel's id (the resource's ``Ref``); with ``renew``, the first tunnel's."""
        return self._resource.ref

    @cached_property
    def tunnel_arn(self) -> str:
        """The tunnel's ARN; with ``renew``, the first tunnel's."""
        return Token.as_string(self._resource.get_att("TunnelArn"))

    @property
    def tags(self) -> TagManager:
        """The tunnel's tags, which ``Tags.of(...)`` also writes to."""
        return self._tags

    def grant_read_source_token(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` read the source token (and decrypt it with the secrets' key)."""
        return self.source_token_secret.grant_read(grantee)

    def grant_connect(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` run ``cdk-secure-tunnel connect`` for this tunnel, by ``--secret`` or by
        ``--stack``/``--tunnel``.

        - read the source token (``grant_read_source_token``: ``secretsmanager:GetSecretValue`` and
          ``DescribeSecret``, and ``kms:Decrypt`` with an ``encryption_key``);
        - rotate it once when the service refuses a spent token: ``secretsmanager:RotateSecret`` on the
          source secret, and ``lambda:InvokeFunction`` on the stack's rotation function, which Secrets
          Manager's RotateSecret requires of its caller (only when the tunnel rotates: ``rotate_on_demand``
          or ``rotate_every``);
        - say whether the device is connected, and whether the tunnel closed: ``iot:DescribeTunnel`` on
          tunnels tagged with this stack's id (renewals get new tunnel ids, all with that tag);
        - find the secret from ``--stack``/``--tunnel``: ``secretsmanager:ListSecrets`` (on ``"*"``: it
          takes no resource and no condition key) and ``cloudformation:DescribeStackResource`` on this stack.

        >>> from aws_cdk import App
        >>> stack = Stack(App(), "Plant")
        >>> tunnel = SecureTunnel(stack, "Maintenance", thing="pump-7")
        >>> grant = tunnel.grant_connect(iam.Role(stack, "Operator", assumed_by=iam.AccountRootPrincipal()))
        """
        needs: list[tuple[list[str], list[str], Mapping[str, Mapping[str, str]] | None]] = [
            (["iot:DescribeTunnel"], [arn("iot", "tunnel/*")], policies.TAGGED_WITH_THIS_STACK),
            (["secretsmanager:ListSecrets"], ["*"], None),
            (["cloudformation:DescribeStackResource"], [STACK_ID], None),
        ]
        if self._rotation_function_arn is not None:
            needs += [
                (["secretsmanager:RotateSecret"], [self.source_token_secret.secret_arn], None),
                (["lambda:InvokeFunction"], [self._rotation_function_arn], None),
            ]
        grant = self.grant_read_source_token(grantee)
        for actions, resources, conditions in needs:
            grant = grant.combine(
                iam.Grant.add_to_principal(
                    grantee=grantee, actions=actions, resource_arns=resources, conditions=conditions
                )
            )
        # The policy these statements went into (a role's, user's or group's DefaultPolicy; an imported role's
        # Policy): cdk-nag's findings on the two wildcards connect needs, acknowledged there and not on the
        # whole grantee.
        # An imported role is a jsii proxy, not a Construct subclass: its node is found by attribute.
        node = getattr(grantee.grant_principal, "node", None)
        found = (
            (node.try_find_child(name) for name in ("DefaultPolicy", "Policy")) if node is not None else ()
        )
        policy = next((child for child in found if child is not None), None)
        if policy is not None:
            Validations.of(policy).acknowledge(
                *(Acknowledgment(id=rule, reason=reason) for rule, reason in _CONNECT_ACKNOWLEDGMENTS.items())
            )
        return grant

    def grant_read_destination_token(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` read the destination token; only for tunnels whose secret keeps it."""
        if self.destination_token_secret is None:
            raise ValueError(
                f"grant_read_destination_token: SecureTunnel {self.node.path!r} stores no destination token, "
                "because AWS IoT delivers it to the thing; pass store_destination_token=True to keep a copy"
            )
        return self.destination_token_secret.grant_read(grantee)

    def connect_command(
        self, *, local_ports: Mapping[str, int] | None = None, destination_client_type: str | None = None
    ) -> str:
        """The ``cdk-secure-tunnel connect`` command an operator runs to reach the device, for a stack output.

        It names the stack's region and ``source_token_secret``; the command reads the token itself, and
        rotates the secret once if the token was spent::

            CfnOutput(self, "ConnectCommand", value=tunnel.connect_command())
            # cdk-secure-tunnel connect --region eu-west-1 --secret arn:... --services SSH=5555

        :param local_ports: The local port for each service. Default: 5555, 5556 and 5557 in the order
            of ``services``.
        :param destination_client_type: ``"V1"`` when the device runs AWS IoT Device Client or the
            Greengrass secure tunneling component (they speak only protocol V1: one service per tunnel),
            ``"V2"`` for a 2.x local proxy. Default: a V3 destination, such as the reference local proxy 3.x.
        """
        return self._source_connection(local_ports, destination_client_type).cli_command()

    def localproxy_command(
        self, *, local_ports: Mapping[str, int] | None = None, destination_client_type: str | None = None
    ) -> str:
        """The same for the reference local proxy (``localproxy``), for those who run it.

        The token goes from the secret into the proxy's ``AWSIOT_TUNNEL_ACCESS_TOKEN``, never onto its
        command line, where ``ps`` would show it to every local user::

            # AWSIOT_TUNNEL_ACCESS_TOKEN="$(aws secretsmanager get-secret-value --region eu-west-1
            #   --secret-id arn:... --query SecretString --output text | jq -r .clientAccessToken)"
            #   localproxy -r eu-west-1 -s SSH=5555

        Parameters as for ``connect_command``.
        """
        return self._source_connection(local_ports, destination_client_type).localproxy_command()

    def _source_connection(
        self, local_ports: Mapping[str, int] | None, destination_client_type: str | None
    ) -> SourceConnection:
        services = None if validation.is_unresolved(self._services) else self._services
        connection = SourceConnection(
            stack_of(self).region,
            self.source_token_secret.secret_arn,
            services,
            local_ports=local_ports,
            destination_client_type=destination_client_type,
        )
        connection.cli_command()  # checks the options now, at synth, whichever command is asked for
        return connection

    def _token_secrets(self, settings: TunnelSettings) -> dict[str, secretsmanager.Secret]:
        """The token secrets by construct id: ``SourceToken``, and ``DestinationToken`` if kept."""
        kept = {"DestinationToken": "destination"} if settings.store_destination_token else {}
        modes = {"SourceToken": "source", **kept}
        secrets = {
            secret_id: secretsmanager.Secret(
                self,
                secret_id,
                # The secret's name, made from its logical id, already names the tunnel.
                description=f"cdk-secure-tunnel: {client_mode} token",
                encryption_key=settings.encryption_key,
                # A closed tunnel's token is useless: nothing is lost when the stack goes.
                removal_policy=RemovalPolicy.DESTROY,
            )
            for secret_id, client_mode in modes.items()
        }
        for secret in secrets.values():
            # The handler may write only secrets carrying this tag (see TunnelProvider). Tagged one by one:
            # Tags.of(self) would also visit the tunnel, a call from Node.js into Python at synth.
            Tags.of(secret).add(OWNER_STACK_TAG, STACK_ID)
        if settings.rotation_schedule is None:  # a rotation schedule with a rule satisfies cdk-nag's SMG4
            Validations.of(self).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-SMG4",
                    reason="The token is issued by IoT Secure Tunneling, not generated by Secrets Manager; "
                    "the handler writes a new one whenever the tunnel is rotated or replaced.",
                )
            )
        return secrets


# grant_connect's wildcards (cdk-nag AwsSolutions-IAM5), with the reasons they cannot be narrower.
_CONNECT_ACKNOWLEDGMENTS = {
    "AwsSolutions-IAM5[Resource::*]": (
        "cdk-secure-tunnel connect --stack/--tunnel finds the token secret with secretsmanager:ListSecrets, "
        "which takes no resource and no condition key."
    ),
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:tunnel/*]": (
        "Tunnel ids are chosen by the service and change with every renewal; iot:DescribeTunnel is limited "
        "to tunnels tagged with this stack's id."
    ),
}


def _default_description(stack: Stack, path: str) -> str:
    """Names the construct path, and the stack unless the path starts with its name (as it usually does)."""
    stack_name = per_stack(stack, "stack_name", lambda: stack.stack_name)
    if path.startswith(f"{stack_name}/"):
        return f"cdk-secure-tunnel {path}"
    return f"cdk-secure-tunnel {path} in stack {stack_name}"


@jsii.implements(IValidation)
class _RenderedTagsCheck:
    """Checks the tags of a stack's tunnels as rendered at synth, when ``Tags.of(...)`` has added its own.

    One check per stack, resolving every tunnel's tags in one call: a validation is a call from Node.js
    into Python, and each call back into aws-cdk-lib a round trip.
    """

    def __init__(self, scope: Construct) -> None:
        self._stack = stack_of(scope)
        self._tunnels: list[tuple[Construct, IResolvable]] = []
        scope.node.add_validation(self)

    def add(self, tunnel: Construct, rendered_tags: IResolvable) -> None:
        self._tunnels.append((tunnel, rendered_tags))

    def validate(self) -> list[str]:
        # Keyed by position: a tunnel without tags resolves to nothing, which resolve() leaves out.
        resolved = self._stack.resolve({str(index): tags for index, (_, tags) in enumerate(self._tunnels)})
        errors = []
        for index, (tunnel, _) in enumerate(self._tunnels):
            try:
                validation.check_tags(
                    {_text(tag["Key"]): _text(tag["Value"]) for tag in resolved.get(str(index), ())},
                    parameter="Tags.of(...)",
                )
            except ValueError as error:
                errors.append(f"{tunnel.node.path}: {error}")
        return errors


def _text(resolved: object) -> str:
    """A resolved tag key or value; one from a token is an intrinsic, a token again for the checks."""
    return resolved if isinstance(resolved, str) else Token.as_string(resolved)
