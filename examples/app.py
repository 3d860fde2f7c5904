"""The example app that ``cdk synth`` at the repository root runs, checked by cdk-nag's AwsSolutions rules."""

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks
from services_with_kms_key import ServicesWithKmsKeyStack
from ssh_to_existing_thing import SshToExistingThingStack
from thing_with_operator_role import ThingWithOperatorRoleStack
from tunnel_without_thing import TunnelWithoutThingStack

EXAMPLE_STACKS = {
    "SshToExistingThing": SshToExistingThingStack,
    "ThingWithOperatorRole": ThingWithOperatorRoleStack,
    "ServicesWithKmsKey": ServicesWithKmsKeyStack,
    "TunnelWithoutThing": TunnelWithoutThingStack,
}


def build_app() -> App:
    app = App()
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    for name, stack_class in EXAMPLE_STACKS.items():
        stack_class(app, name)
    return app


if __name__ == "__main__":
    build_app().synth()
