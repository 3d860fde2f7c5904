"""moto's Secrets Manager, made to behave as the real service does across a rotation.

``LocalAws`` serves moto's Secrets Manager, and ``install()`` (called when it starts) corrects two things
moto 5.2 does differently from Secrets Manager, both of which break token rotation (the upstream note
with a reproduction is docs/moto-secretsmanager-rotation.md):

- **Staging labels move the default version.** moto answers a GetSecretValue that names neither a
  version nor a stage from a "default version" that UpdateSecretVersionStage never moves: after a
  rotation's finishSecret moved AWSCURRENT, such a read returned the old value, and the next
  PutSecretValue made the old version AWSPREVIOUS and left two versions AWSCURRENT. Moving AWSCURRENT
  now moves the default with it.
- **RotateSecret runs the rotation function.** moto invokes a rotation function through its Lambda
  emulation, which needs Docker and a function created in it. A function registered here with
  ``register_rotation_function`` (by an ``fnmatch`` pattern of Lambda ARNs; ``LocalAws`` registers the
  stack's upkeep function) runs in this process instead, as Secrets Manager invokes a Lambda:
  ``{"Step", "SecretId", "ClientRequestToken"}`` for createSecret, setSecret, testSecret and
  finishSecret; with ``RotateImmediately=false``, only testSecret, on a pending copy of the current
  version that is removed afterwards. As with Secrets Manager, RotateSecret succeeds even when a step
  fails (the failure is logged here; Secrets Manager would log it in the function's log group), and
  it refuses to start while an earlier rotation's AWSPENDING is still on a version other than
  AWSCURRENT. Functions not registered here are left to moto.

The corrections patch moto's backend class, so they apply to every moto backend in the process
(``moto.mock_aws`` included): they only make it closer to the real service.

>>> ROTATION_STEPS
('createSecret', 'setSecret', 'testSecret', 'finishSecret')
"""

import fnmatch
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"
ROTATION_STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")

RotationFunction = Callable[[Mapping[str, str]], object]

logger = logging.getLogger(__name__)

# (pattern, function), oldest first: several LocalAws may be running, each registered until it stops.
_functions: list[tuple[str, RotationFunction]] = []
_install_lock = threading.Lock()
_installed = False


def register_rotation_function(function_arns: str, function: RotationFunction) -> None:
    """Run ``function`` here whenever Secrets Manager would invoke a Lambda whose ARN matches the pattern.

    >>> register_rotation_function("arn:aws:lambda:*:*:function:Doc-Example*", print)
    >>> rotation_function("arn:aws:lambda:us-east-1:123456789012:function:Doc-ExampleRotation") is print
    True
    >>> unregister_rotation_function("arn:aws:lambda:*:*:function:Doc-Example*", print)
    """
    _functions.append((function_arns, function))


def unregister_rotation_function(function_arns: str, function: RotationFunction) -> None:
    """Undo that registration; others for the same pattern stay."""
    for index in reversed(range(len(_functions))):
        if _functions[index][0] == function_arns and _functions[index][1] is function:
            del _functions[index]
            return


def rotation_function(function_arn: str) -> RotationFunction | None:
    """The function registered for the Lambda ``function_arn``, if any (the latest registration wins)."""
    matching = [function for pattern, function in _functions if fnmatch.fnmatchcase(function_arn, pattern)]
    return matching[-1] if matching else None


def install() -> None:
    """Patch moto's Secrets Manager backend class, once per process."""
    global _installed  # noqa: PLW0603  (one patch per process, as moto's backends are per process)
    with _install_lock:
        if _installed:
            return
        from moto.secretsmanager.models import SecretsManagerBackend  # noqa: PLC0415  (slow to import)

        _patch(SecretsManagerBackend)
        _installed = True


def _patch(backend: Any) -> None:
    moto_update_stage = backend.update_secret_version_stage
    moto_rotate = backend.rotate_secret

    def update_secret_version_stage(
        self: Any, secret_id: str, version_stage: str, remove_from_version_id: str, move_to_version_id: str
    ) -> tuple[str, str]:
        moved = moto_update_stage(self, secret_id, version_stage, remove_from_version_id, move_to_version_id)
        if version_stage == CURRENT and move_to_version_id:
            self.secrets[secret_id].set_default_version_id(move_to_version_id)
        return moved  # type: ignore[no-any-return]

    def rotate_secret(
        self: Any,
        secret_id: str,
        *,
        client_request_token: str | None = None,
        rotation_lambda_arn: str | None = None,
        rotation_rules: dict[str, Any] | None = None,
        rotate_immediately: bool = True,
    ) -> str:
        secret = self.secrets.get(secret_id) if self._is_valid_identifier(secret_id) else None
        function_arn = rotation_lambda_arn or (secret.rotation_lambda_arn if secret is not None else "")
        function = rotation_function(function_arn) if function_arn else None
        if secret is None or function is None or secret.is_deleted():
            return moto_rotate(  # type: ignore[no-any-return]
                self,
                secret_id,
                client_request_token=client_request_token,
                rotation_lambda_arn=rotation_lambda_arn,
                rotation_rules=rotation_rules,
                rotate_immediately=rotate_immediately,
            )
        _refuse_unfinished(secret)
        secret.rotation_requested = secret.rotation_enabled = True
        secret.rotation_lambda_arn = function_arn
        if rotation_rules and "AutomaticallyAfterDays" in rotation_rules:
            secret.auto_rotate_after_days = rotation_rules["AutomaticallyAfterDays"]
        return _rotate(secret, function, client_request_token or str(uuid.uuid4()), rotate_immediately)

    backend.update_secret_version_stage = update_secret_version_stage
    backend.rotate_secret = rotate_secret


def _refuse_unfinished(secret: Any) -> None:
    """Secrets Manager's answer while an earlier rotation left AWSPENDING on a version not yet current."""
    from moto.secretsmanager.exceptions import InvalidRequestException  # noqa: PLC0415

    unfinished = [
        version_id
        for version_id, version in secret.versions.items()
        if PENDING in version["version_stages"] and CURRENT not in version["version_stages"]
    ]
    if unfinished:
        raise InvalidRequestException(
            "A previous rotation isn't complete. That rotation will be reattempted."
        )


def _rotate(secret: Any, function: RotationFunction, token: str, rotate_immediately: bool) -> str:
    """Secrets Manager's RotateSecret, once configured, for a function that runs here."""
    if rotate_immediately:
        _run(function, secret, token, ROTATION_STEPS)
    else:
        # Secrets Manager tests the configuration: testSecret on a pending copy of the current version.
        current = secret.versions.get(secret.default_version_id)
        if current is None:  # nothing to test yet
            return json.dumps({"ARN": secret.arn, "Name": secret.name, "VersionId": token})
        secret.versions[token] = {
            **current,
            "version_id": token,
            "version_stages": [PENDING],
            "createdate": int(time.time()),
        }
        try:
            _run(function, secret, token, ("testSecret",))
        finally:
            secret.versions.pop(token, None)
    secret.last_rotation_date = int(time.time())
    return json.dumps({"ARN": secret.arn, "Name": secret.name, "VersionId": token})


def _run(function: RotationFunction, secret: Any, token: str, steps: tuple[str, ...]) -> None:
    for step in steps:
        try:
            function({"Step": step, "SecretId": secret.arn, "ClientRequestToken": token})
        except Exception as error:  # Secrets Manager reports a failed step only in the function's logs
            logger.warning("Rotation of %s failed in %s: %s", secret.name, step, error)
            return
