"""What the construct, the handler and the emulator agree on: the service's limits, the resource's
properties and defaults, and the tags the handler owns. Standard library only: it ships in the Lambda
asset and the construct imports it at synth.

The limits are AWS IoT Secure Tunneling's (tests/unit/test_contract.py holds them against botocore's model
of the service, except the three services a tunnel carries, a service quota the model does not state:
see ``MAX_SERVICES``).

>>> Property.SERVICES, DEFAULT_SERVICES, DEFAULT_LIFETIME_MINUTES
('Services', ('SSH',), 720)
>>> [tag for tag in (OWNER_STACK_TAG, "env") if tag.startswith(RESERVED_TAG_PREFIXES)]
['cdk-secure-tunnel:stack-id']
"""

from typing import Final

# -- the service's limits ------------------------------------------------------------------------------------

MAX_LIFETIME_MINUTES: Final = 720
MIN_SERVICES: Final = 1
# At most three services per tunnel, a quota the service applies when a tunnel is created: "A maximum of 3
# service IDs can be configured while creating a Secure Tunnel" (the reference local proxy's
# docs/MULTIPLEXING.md, which points at the quota "Maximum services per tunnel" of AWS IoT Device
# Management's service quotas, raised only on request to AWS support). botocore's model sets no maximum.
# The emulator refuses a fourth service at OpenTunnel (and RotateTunnelAccessToken) with a
# ValidationException: which error the service answers is not documented, so that part is the emulator's
# choice, made so that a test sees the refusal where the service makes it, at the call.
MAX_SERVICES: Final = 3
# Thing and service names: the model's ThingName and Service shapes.
NAME_PATTERN: Final = "[a-zA-Z0-9:_-]+"
MAX_NAME_LENGTH: Final = 128
MAX_DESCRIPTION_LENGTH: Final = 2048
MAX_TAGS: Final = 200
MAX_TAG_KEY_LENGTH: Final = 128
MAX_TAG_VALUE_LENGTH: Final = 256

# -- the Custom::SecureTunnel resource -----------------------------------------------------------------------

RESOURCE_TYPE: Final = "Custom::SecureTunnel"

# -- the stack's upkeep function -----------------------------------------------------------------------------

# The construct id of the stack's rotation and renewal function, at the stack's root: its logical id, and so
# its deployed name, start with it. The local Secrets Manager (cdk_secure_tunnel.emulator) runs the rotation
# function of a secret whose function this names, as Secrets Manager would invoke the Lambda.
UPKEEP_CONSTRUCT_ID: Final = "CdkSecureTunnelUpkeep"
UPKEEP_HANDLER: Final = "tunnel_lambda.upkeep.handle"


class Property:
    """The resource's property names, as the construct writes them and the handler reads them."""

    SERVICES: Final = "Services"
    MAX_LIFETIME_MINUTES: Final = "MaxLifetimeMinutes"
    THING_NAME: Final = "ThingName"
    DESCRIPTION: Final = "Description"
    TAGS: Final = "Tags"
    SOURCE_TOKEN_SECRET_ARN: Final = "SourceTokenSecretArn"  # noqa: S105  (a property name, not a secret)
    DESTINATION_TOKEN_SECRET_ARN: Final = "DestinationTokenSecretArn"  # noqa: S105
    RENEW: Final = "Renew"


# What the handler assumes for a property the template leaves out. The construct writes both properties
# into every template, but construct versions before it did left them out when they equalled these
# defaults, and those properties still arrive (a rollback Update, or OldResourceProperties): so these
# values keep their meaning. An Update from such properties to the same tunnel with the defaults written
# is a no-op (tests/functional/test_handler.py).
DEFAULT_SERVICES: Final = ("SSH",)
# The service's own default too: a tunnel opened without a timeoutConfig lives this long.
DEFAULT_LIFETIME_MINUTES: Final = MAX_LIFETIME_MINUTES

# Which changed fields replace the tunnel (README, "What each change does"): the API changes neither a
# tunnel's lifetime nor its description, so a change opens a new tunnel and CloudFormation deletes the old
# one. A new destination (thing or services) rotates both tokens in place; tags are retagged in place.
FIELDS_THAT_REPLACE_THE_TUNNEL: Final = ("max_lifetime_minutes", "description")
FIELDS_THAT_ROTATE_BOTH_TOKENS: Final = ("thing_name", "services")

# -- tags ----------------------------------------------------------------------------------------------------

# Tag keys with this prefix are the handler's own; templates may not use it (nor AWS's).
HANDLER_TAG_PREFIX: Final = "cdk-secure-tunnel:"
RESERVED_TAG_PREFIXES: Final = ("aws:", HANDLER_TAG_PREFIX)
# On every tunnel, and on the token secrets: the stack that owns it. IAM policies are scoped by it.
OWNER_STACK_TAG: Final = f"{HANDLER_TAG_PREFIX}stack-id"
# On every tunnel: the logical id of the resource that opened it.
OWNER_RESOURCE_TAG: Final = f"{HANDLER_TAG_PREFIX}logical-id"
# On a tunnel opened to replace another: lets the Delete of a rolled-back replacement find the tunnel
# CloudFormation keeps, whose tokens the secrets no longer hold.
REPLACES_TAG: Final = f"{HANDLER_TAG_PREFIX}replaces"
# On a tunnel opened by renewal: the resource's physical id (its first tunnel). Update and Delete act on
# the tunnel the source secret names only when it carries this link.
RENEWS_TAG: Final = f"{HANDLER_TAG_PREFIX}renews"
# On a tunnel opened by a custom resource request: its RequestId. A request delivered twice (the provider
# framework's invocation retried) finds the tunnel the first delivery opened instead of opening another.
REQUEST_TAG: Final = f"{HANDLER_TAG_PREFIX}request-id"
# On every tunnel: the SHA-256 of the resource's binding nonce, which only its token secrets hold. Rotation
# and renewal act on a tunnel only for a secret that holds the nonce, so a secret someone else tagged with
# this stack's id cannot have this stack's tunnel rotated into it. Set at OpenTunnel only, like every tag
# with the handler's prefix: the IAM policy refuses TagResource and UntagResource on them.
BINDING_TAG: Final = f"{HANDLER_TAG_PREFIX}binding"
# On the source secret of each renewing tunnel: how the renewal schedule finds them.
RENEW_TAG: Final = f"{HANDLER_TAG_PREFIX}renew"
# The most tags the handler adds to a tunnel: stack id, logical id, replaces or renews, binding, request id.
OWNER_TAG_COUNT: Final = 5

# -- the renewal schedule's event ----------------------------------------------------------------------------


class ScheduleInput:
    """The keys of the event the renewal schedule sends the upkeep function."""

    STACK_ID: Final = "stackId"
    # Renew what ends within this many minutes.
    RENEW_WITHIN_MINUTES: Final = "renewWithinMinutes"
    # The schedule's rate: a tunnel opened less than this ago is left alone if it outlives the next run.
    INTERVAL_MINUTES: Final = "intervalMinutes"
    # When this run was scheduled (ISO 8601, e.g. 2026-01-01T10:50:00Z): EventBridge Scheduler substitutes
    # SCHEDULED_TIME_ATTRIBUTE in the target's Input on every attempt, and a retry or a second delivery
    # of a run keeps its scheduled time. A tunnel created at or after it was opened by this very run.
    SCHEDULED_TIME: Final = "scheduledTime"
    SCHEDULED_TIME_ATTRIBUTE: Final = "<aws.scheduler.scheduled-time>"
