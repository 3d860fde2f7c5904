"""What each added tunnel puts in the template, by resource type and property.

Taken from the difference between the 10- and 100-tunnel templates: resources only the larger one has
are split into their entries (each property, ``DependsOn``, the deletion policies and the resource's own
frame: its logical id and type), and resources both have count by how much they grew (an IAM policy
gaining a statement per tunnel). The parts add up to the bytes per added tunnel of the synthesis table.
"""

from collections import Counter
from typing import Any

from .measure import Template, minified_size


def _entry_size(key: str, value: Any) -> int:
    """The bytes of ``"key":value,`` inside a minified object."""
    return minified_size(key) + 1 + minified_size(value) + 1


def per_tunnel_parts(small: Template, large: Template, added_tunnels: int) -> dict[str, float]:
    """Bytes per added tunnel, keyed ``Type Property`` (or ``Type (growth)``), largest first."""
    parts: Counter[str] = Counter()
    small_resources, large_resources = small["Resources"], large["Resources"]
    for logical_id, resource in large_resources.items():
        kind = resource["Type"]
        if logical_id in small_resources:
            grown = minified_size(resource) - minified_size(small_resources[logical_id])
            if grown:
                parts[f"{kind} (growth of {logical_id})"] += grown
            continue
        frame = _entry_size(logical_id, {}) + _entry_size("Type", kind) - 1
        parts[f"{kind} logical id and type"] += frame
        for key, value in resource.items():
            if key == "Type":
                continue
            if key == "Properties":
                parts[f"{kind} Properties frame"] += _entry_size(key, {}) - 1
                for name, property_value in value.items():
                    parts[f"{kind} {name}"] += _entry_size(name, property_value)
            else:
                parts[f"{kind} {key}"] += _entry_size(key, value)
    return {
        part: size / added_tunnels for part, size in sorted(parts.items(), key=lambda item: -item[1]) if size
    }
