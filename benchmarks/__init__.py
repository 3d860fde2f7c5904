"""Benchmarks of cdk-secure-tunnel beside the other ways to get a tunnel from a CDK app (issue #5).

``python -m benchmarks`` (or ``make bench``) measures, in one run and on the same work:

- ``synthesis``: stacks of 1, 10 and 100 tunnels built by SecureTunnel, a hand-written AwsCustomResource
  and the L1 CfnTunnel: time, memory, template size and resource count, each synth in its own process;
- ``template_profile``: what each added tunnel puts in the template;
- ``deployment``: Lambda invocations and resources per CloudFormation operation, from the templates;
- ``cold_start``: importing the handler beside a bare ``import boto3``;
- ``api_calls``: the AWS calls each Create, Update and Delete makes, against the local emulator;
- ``create_latency``: a Create through the handler beside the same calls made directly with boto3;
- ``burst``: 100 tunnels created at once against a rate-limited OpenTunnel.

It prints a table with each goal's ratio, PASS or MISS, and writes ``docs/benchmarks.md`` and
``docs/benchmarks.png``. Nothing here calls real AWS, and nothing here is a test.
"""
