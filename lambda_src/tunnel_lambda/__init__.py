"""Lambda code behind the SecureTunnel construct: standard library and boto3 only.

- ``custom_resource``: the CloudFormation custom resource's ``on_event`` (create, update, delete).
- ``upkeep``: the upkeep function's ``handle``, which routes rotation and schedule events.
- ``rotation``: Secrets Manager's four rotation steps for a token secret.
- ``renewal``: the scheduled renewal of tunnels before their lifetime ends.
- ``tunnel_spec``: what the template asks for, parsed from the resource properties.
- ``tunnels``: the IoT Secure Tunneling calls.
- ``token_secrets``: the token documents written to Secrets Manager, each write a compare-and-set.
- ``aws_clients``: the shared boto3 clients, their retries and the invocation's deadline.
- ``contract``: what the construct, the handler and the emulator share (limits, names, defaults, tags).
"""
