"""What every SecureTunnel of a stack shares, looked up or created once per stack.

Each call into aws-cdk-lib is a round trip to its Node.js process, and those round trips are most of a
Python app's synth time: a stack with hundreds of tunnels must not pay them per tunnel.

>>> from aws_cdk import App
>>> stack = Stack(App(), "Pumps")
>>> per_stack(stack, "answer", lambda: 42), per_stack(stack, "answer", lambda: 0)
(42, 42)
>>> arn("iot", "tunnel/*")
'arn:${Token[AWS.Partition...]}:iot:${Token[AWS.Region...]}:${Token[AWS.AccountId...]}:tunnel/*'
"""

from collections.abc import Callable
from typing import Any, TypeVar, cast
from weakref import WeakKeyDictionary

from aws_cdk import Aws, Stack

from constructs import Construct

# Pseudo parameters are the same tokens in every stack: read from aws-cdk-lib once, not at every use.
STACK_ID = Aws.STACK_ID
_PARTITION, _REGION, _ACCOUNT_ID = Aws.PARTITION, Aws.REGION, Aws.ACCOUNT_ID

_Shared = TypeVar("_Shared", bound=Construct)
_T = TypeVar("_T")

# jsii hands back the same Python object for the same construct, so the stack is a key.
_PER_STACK: "WeakKeyDictionary[Stack, dict[str, Any]]" = WeakKeyDictionary()


def stack_of(scope: Construct) -> Stack:
    """``Stack.of(scope)``, without a round trip when ``scope`` is the stack itself."""
    return scope if isinstance(scope, Stack) else Stack.of(scope)


def per_stack(stack: Stack, key: str, make: Callable[[], _T]) -> _T:
    """``make()``, called once per stack and ``key``."""
    shared = _PER_STACK.setdefault(stack, {})
    if key not in shared:
        shared[key] = make()
    return cast(_T, shared[key])


def stack_singleton(cls: type[_Shared], scope: Construct, construct_id: str) -> _Shared:
    """The stack's one ``cls`` construct under ``construct_id``, created on first use.

    The id is a contract: CloudFormation refuses a new ServiceToken for an existing custom resource.
    """
    stack = stack_of(scope)

    def find_or_create() -> _Shared:
        existing = stack.node.try_find_child(construct_id)
        return existing if isinstance(existing, cls) else cls(stack, construct_id)

    return per_stack(stack, construct_id, find_or_create)


def arn(service: str, resource: str) -> str:
    """An ARN in this stack's partition, region and account."""
    return f"arn:{_PARTITION}:{service}:{_REGION}:{_ACCOUNT_ID}:{resource}"
