"""What test modules share (test modules never import each other): ``templates`` for synthesized
templates, ``events`` for CloudFormation's events to the handler, ``upkeep`` for rotation and renewal
through the upkeep function, ``lifecycle`` for stacks deployed with LocalCloudFormation, ``interleaving``
for two writers forced to interleave.
"""
