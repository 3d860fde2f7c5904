"""What a SecureTunnel's props ask for: checked, with defaults applied, and rendered to the resource's
properties. The construct's side of the handler's ``TunnelSpec`` (lambda_src/tunnel_lambda/tunnel_spec.py),
field for field; both take names and defaults from ``tunnel_lambda.contract``.

>>> settings = TunnelSettings.from_props(thing="pump-7", default_description=lambda: "Maintenance")
>>> settings.services, settings.max_lifetime_minutes, settings.store_destination_token, settings.rotates
(('SSH',), 720, False, True)
>>> settings.to_properties(source_secret_arn="arn:src", destination_secret_arn=None, tags=[])
{'Services': ['SSH'], 'MaxLifetimeMinutes': 720, 'Description': 'Maintenance',
 'SourceTokenSecretArn': 'arn:src', 'Tags': [], 'ThingName': 'pump-7'}
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aws_cdk import Duration
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kms as kms
from tunnel_lambda.contract import DEFAULT_LIFETIME_MINUTES, DEFAULT_SERVICES, Property

from . import validation
from .tunnel_upkeep import MIN_RENEWED_LIFETIME_MINUTES


@dataclass(frozen=True)
class TunnelSettings:
    """One tunnel's settings. ``max_lifetime_minutes`` may be a number token; the rest are known at synth
    except where a token was passed in (a thing name or a service, say).
    """

    services: tuple[str, ...]
    max_lifetime_minutes: float
    description: str
    thing_name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    store_destination_token: bool = False
    # The Secrets Manager rotation rule, or None for rotation on demand only (or none at all).
    rotation_schedule: str | None = None
    rotate_on_demand: bool = True
    renew: bool = False
    # The key that encrypts the token secrets; None for the account's aws/secretsmanager key.
    encryption_key: kms.IKey | None = None

    @classmethod
    def from_props(
        cls,
        *,
        default_description: Callable[[], str],
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
    ) -> "TunnelSettings":
        """Check the props (in the order SecureTunnel documents them) and apply the defaults.

        ``thing`` is a name or a ``CfnThing`` (whose ``Ref``, its name, becomes ``thing_name``);
        ``default_description`` is called only when no ``description`` is given.
        """
        thing_name = _thing_name(thing)
        checked_services = validation.check_services(services) if services is not None else None
        lifetime = (
            validation.check_max_lifetime(max_lifetime)
            if max_lifetime is not None
            else DEFAULT_LIFETIME_MINUTES
        )
        if encryption_key is not None:
            validation.check_encryption_key(encryption_key)
        store_destination_token = validation.check_flag("store_destination_token", store_destination_token)
        validation.check_destination_token_kept(store_destination_token, thing_name)
        rotate_on_demand = validation.check_flag("rotate_on_demand", rotate_on_demand)
        renew = validation.check_flag("renew", renew)
        rotation_schedule = _rotation_schedule(rotate_every, rotate_on_demand)
        if renew:
            validation.check_renewed_lifetime(lifetime, MIN_RENEWED_LIFETIME_MINUTES)
        return cls(
            services=tuple(checked_services) if checked_services is not None else DEFAULT_SERVICES,
            max_lifetime_minutes=lifetime,
            description=validation.check_description(
                description if description is not None else default_description()
            ),
            thing_name=thing_name,
            tags=validation.check_tags(tags if tags is not None else {}),
            store_destination_token=(
                store_destination_token if store_destination_token is not None else thing_name is None
            ),
            rotation_schedule=rotation_schedule,
            rotate_on_demand=rotate_on_demand is not False,
            renew=bool(renew),
            encryption_key=encryption_key,
        )

    @property
    def rotates(self) -> bool:
        """Whether the token secrets get a rotation schedule (on demand, on a rule, or both)."""
        return self.rotate_on_demand or self.rotation_schedule is not None

    def to_properties(
        self, *, source_secret_arn: str, destination_secret_arn: str | None, tags: object
    ) -> dict[str, object]:
        """The resource's properties (but the service token) that ``TunnelSpec.from_properties`` reads.

        ``tags`` are the rendered tags, which ``Tags.of(...)`` adds to. The services and the lifetime are
        written even when they equal the handler's defaults: the template then says what the tunnel is,
        and the defaults matter only for properties written before (see ``contract.DEFAULT_SERVICES``).
        """
        properties: dict[str, object] = {
            Property.SERVICES: list(self.services),
            Property.MAX_LIFETIME_MINUTES: self.max_lifetime_minutes,
            Property.DESCRIPTION: self.description,
            Property.SOURCE_TOKEN_SECRET_ARN: source_secret_arn,
            Property.TAGS: tags,
        }
        optional: dict[str, object | None] = {
            Property.THING_NAME: self.thing_name,
            Property.DESTINATION_TOKEN_SECRET_ARN: destination_secret_arn,
            Property.RENEW: True if self.renew else None,
        }
        return properties | {name: value for name, value in optional.items() if value is not None}


def _thing_name(thing: "str | iot.CfnThing | None") -> str | None:
    if thing is None:
        return None
    if isinstance(thing, iot.CfnThing):
        return thing.ref  # a CfnThing's Ref is its name
    if not isinstance(thing, str):
        raise TypeError(f"thing: got {thing!r}; expected a thing name or an aws_iot.CfnThing")
    return validation.check_name("thing", thing)


def _rotation_schedule(rotate_every: Duration | None, rotate_on_demand: bool | None) -> str | None:
    if rotate_every is None:
        return None
    schedule = validation.check_rotate_every(rotate_every)
    if rotate_on_demand is False:
        raise ValueError(
            f"rotate_on_demand: got False with rotate_every={rotate_every.to_human_string()!r}; "
            "scheduled rotation uses the same rotation function, so leave rotate_on_demand unset"
        )
    return schedule
