"""The SecureTunnel construct: an AWS IoT secure tunnel that lives and dies with the stack."""

from collections.abc import Mapping, Sequence

import jsii
from aws_cdk import (
    Acknowledgment,
    CustomResource,
    Duration,
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

from constructs import Construct, IValidation

from . import validation
from .tunnel_provider import STACK_TAG, TunnelProvider
from .tunnel_upkeep import MIN_RENEWED_LIFETIME_MINUTES, RENEW_TAG, TunnelUpkeep

RESOURCE_TYPE = "Custom::SecureTunnel"


@jsii.implements(ITaggable)
class SecureTunnel(Construct):
    """An AWS IoT secure tunnel opened on deploy and closed on destroy, its tokens in Secrets Manager.

    Example::

        tunnel = SecureTunnel(self, "Maintenance", thing="pump-7", services=["SSH"],
                              max_lifetime=Duration.hours(2))
        tunnel.grant_read_source_token(operator_role)

    The source token (for the operator's local proxy) is always written to ``source_token_secret``.
    With a ``thing``, AWS IoT delivers the destination token to the device over MQTT, so no secret holds
    it unless ``store_destination_token=True``; without a thing, ``destination_token_secret`` holds it.
    Each secret stores JSON: the token and what is needed to connect with it (tunnel id and ARN, region,
    client mode, services, thing, expiry).

    A token connects only once. With ``rotate_on_demand=True`` (or ``rotate_every``), Secrets Manager
    issues a fresh one: ``aws secretsmanager rotate-secret --secret-id <source_token_secret ARN>``. With
    ``renew=True`` the tunnel outlives the service's 12-hour limit: a new one is opened before each ends,
    so ``tunnel_id`` stays the first tunnel's id while the secrets always name the current one::

        SecureTunnel(self, "Support", thing="pump-7", rotate_every=Duration.hours(8), renew=True)
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
        :param description: Up to 2048 characters without control characters. Changing it replaces the
            tunnel. Default: names the stack and this construct's path.
        :param tags: Tags for the tunnel; ``Tags.of(scope).add(...)`` reaches it too. Keys starting with
            ``aws:`` or ``cdk-secure-tunnel:`` are reserved. Default: no tags of yours.
        :param encryption_key: The KMS key that encrypts the token secrets. Default: the account's
            ``aws/secretsmanager`` key.
        :param store_destination_token: Whether a secret also holds the destination token. Default: true
            without a ``thing``, false with one (the device already gets its token, and every extra copy of
            a token is exposure).
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
        stack = Stack.of(self)
        thing_name = self._thing_name(thing)
        service_names = validation.check_services(list(services) if services is not None else ["SSH"])
        lifetime_minutes = validation.check_max_lifetime(max_lifetime or Duration.hours(12))
        rotation_schedule = None
        if rotate_every is not None:
            rotation_schedule = validation.check_rotate_every(rotate_every)
            if rotate_on_demand is False:
                raise ValueError(
                    f"rotate_on_demand: got False with rotate_every={rotate_every.to_human_string()!r}; "
                    "scheduled rotation uses the same rotation function, so leave rotate_on_demand unset"
                )
        if renew:
            validation.check_renewed_lifetime(lifetime_minutes, MIN_RENEWED_LIFETIME_MINUTES)
        description = validation.check_description(
            description
            if description is not None
            else f"cdk-secure-tunnel {self.node.path} in stack {stack.stack_name}"
        )
        self._tags = TagManager(TagType.KEY_VALUE, RESOURCE_TYPE)
        for key, value in validation.check_tags(tags or {}).items():
            self._tags.set_tag(key, value)
        self.node.add_validation(_RenderedTagsCheck(self._tags))

        scheduled = rotation_schedule is not None
        self.source_token_secret: secretsmanager.ISecret = self._token_secret(
            "SourceToken", "source", encryption_key, scheduled
        )
        keep_destination = store_destination_token if store_destination_token is not None else thing is None
        self.destination_token_secret: secretsmanager.ISecret | None = (
            self._token_secret("DestinationToken", "destination", encryption_key, scheduled)
            if keep_destination
            else None
        )

        provider = TunnelProvider.of(self)
        if encryption_key is not None:
            # PutSecretValue with a customer managed key needs exactly this (grant_encrypt adds wildcards).
            encryption_key.grant(provider.handler_role, "kms:GenerateDataKey")
        properties: dict[str, object] = {
            "Services": service_names,
            "MaxLifetimeMinutes": lifetime_minutes,
            "Description": description,
            "SourceTokenSecretArn": self.source_token_secret.secret_arn,
            "Tags": self._tags.rendered_tags,
        }
        if thing_name is not None:
            properties["ThingName"] = thing_name
        if self.destination_token_secret is not None:
            properties["DestinationTokenSecretArn"] = self.destination_token_secret.secret_arn
        if renew:
            properties["Renew"] = True
        self._resource = CustomResource(
            self,
            "Resource",
            service_token=provider.service_token,
            resource_type=RESOURCE_TYPE,
            properties=properties,
        )
        if isinstance(thing, iot.CfnThing):
            self._resource.node.add_dependency(thing)
        # The handler's secret writes and key use are granted by policies that must exist before it runs.
        self._resource.node.add_dependency(provider.handler_role)
        if rotate_on_demand is not False or scheduled:
            self._rotate(rotation_schedule, encryption_key)
        if renew:
            self._renew(provider, encryption_key, lifetime_minutes)

        self.tunnel_id: str = self._resource.ref
        self.tunnel_arn: str = self._resource.get_att_string("TunnelArn")

    @property
    def tags(self) -> TagManager:
        """The tunnel's tags, which ``Tags.of(...)`` also writes to."""
        return self._tags

    def grant_read_source_token(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` read the source token (and decrypt it with the secrets' key)."""
        return self.source_token_secret.grant_read(grantee)

    def grant_read_destination_token(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` read the destination token; only for tunnels whose secret keeps it."""
        if self.destination_token_secret is None:
            raise ValueError(
                f"grant_read_destination_token: SecureTunnel {self.node.path!r} stores no destination token, "
                "because AWS IoT delivers it to the thing; pass store_destination_token=True to keep a copy"
            )
        return self.destination_token_secret.grant_read(grantee)

    def _token_secrets(self) -> list[secretsmanager.ISecret]:
        return [s for s in (self.source_token_secret, self.destination_token_secret) if s is not None]

    def _rotate(self, rotation_schedule: str | None, encryption_key: kms.IKey | None) -> None:
        upkeep = TunnelUpkeep.of(self)
        if encryption_key is not None:
            upkeep.allow_key(encryption_key)
        for secret in self._token_secrets():
            upkeep.rotate(self, secret, after=self._resource, schedule=rotation_schedule)

    def _renew(self, provider: TunnelProvider, encryption_key: kms.IKey | None, lifetime: float) -> None:
        upkeep = TunnelUpkeep.of(self)
        upkeep.renew(lifetime)
        provider.allow_renewal()
        if encryption_key is not None:
            upkeep.allow_key(encryption_key)
            # Update reads the current tunnel's id from the source secret.
            encryption_key.grant(provider.handler_role, "kms:Decrypt")
        Tags.of(self.source_token_secret).add(RENEW_TAG, "true")

    @staticmethod
    def _thing_name(thing: "str | iot.CfnThing | None") -> str | None:
        if thing is None:
            return None
        if isinstance(thing, iot.CfnThing):
            return thing.ref  # a CfnThing's Ref is its name
        if not isinstance(thing, str):
            raise TypeError(f"thing: got {thing!r}; expected a thing name or an aws_iot.CfnThing")
        return validation.check_name("thing", thing)

    def _token_secret(
        self, construct_id: str, client_mode: str, encryption_key: kms.IKey | None, scheduled: bool
    ) -> secretsmanager.Secret:
        secret = secretsmanager.Secret(
            self,
            construct_id,
            description=f"{client_mode.capitalize()} access token of IoT secure tunnel {self.node.path}",
            encryption_key=encryption_key,
            # A closed tunnel's token is useless: nothing is lost when the stack goes.
            removal_policy=RemovalPolicy.DESTROY,
        )
        # The handler may write only secrets carrying this tag (see TunnelProvider).
        Tags.of(secret).add(STACK_TAG, Stack.of(self).stack_id)
        if scheduled:
            return secret  # a rotation schedule satisfies cdk-nag's SMG4
        Validations.of(secret).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SMG4",
                reason="The token is issued by IoT Secure Tunneling, not generated by Secrets Manager; the "
                "handler writes a new one whenever the tunnel is rotated or replaced.",
            )
        )
        return secret


@jsii.implements(IValidation)
class _RenderedTagsCheck:
    """Checks the tags as rendered at synth, when ``Tags.of(...)`` has added its own."""

    def __init__(self, tags: TagManager) -> None:
        self._tags = tags

    def validate(self) -> list[str]:
        rendered = self._tags.render_tags() or []
        if Token.is_unresolved(rendered):
            return []
        try:
            validation.check_tags({tag["Key"]: tag["Value"] for tag in rendered}, parameter="Tags.of(...)")
        except ValueError as error:
            return [str(error)]
        return []
