"""What test modules share (test modules never import each other): ``templates`` for synthesized
templates, ``events`` for CloudFormation's events to the handler, ``upkeep`` for rotation and renewal
through the upkeep function, ``lifecycle`` for stacks deployed with LocalCloudFormation, ``data_plane``
for raw protocol clients of the emulator's data plane, ``interleaving`` for two writers forced to
interleave, ``processes`` for reading a server subprocess's output with a deadline.
"""
