"""Lambda code behind the SecureTunnel construct: standard library and boto3 only.

- ``custom_resource.on_event``: the CloudFormation custom resource (create, update, delete).
- ``tunnel_spec``: what the template asks for, parsed from the resource properties.
- ``tunnels``: the IoT Secure Tunneling calls.
- ``token_secrets``: the token documents written to Secrets Manager.
"""
