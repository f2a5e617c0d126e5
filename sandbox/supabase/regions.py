"""Regions and the validation of `POST /v1/projects` (`V1CreateProjectBody`,
`additionalProperties: false`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sandbox.supabase.errors import ApiError, reject_unknown, string_field

REGIONS: dict[str, str] = {
    "us-east-1": "East US (North Virginia)",
    "us-east-2": "East US (Ohio)",
    "us-west-1": "West US (North California)",
    "us-west-2": "West US (Oregon)",
    "ap-east-1": "East Asia (Hong Kong)",
    "ap-southeast-1": "Southeast Asia (Singapore)",
    "ap-northeast-1": "Northeast Asia (Tokyo)",
    "ap-northeast-2": "Northeast Asia (Seoul)",
    "ap-southeast-2": "Oceania (Sydney)",
    "eu-west-1": "West EU (Ireland)",
    "eu-west-2": "West Europe (London)",
    "eu-west-3": "West EU (Paris)",
    "eu-north-1": "North EU (Stockholm)",
    "eu-central-1": "Central EU (Frankfurt)",
    "eu-central-2": "Central Europe (Zurich)",
    "ca-central-1": "Canada (Central)",
    "ap-south-1": "South Asia (Mumbai)",
    "sa-east-1": "South America (São Paulo)",
}

# Smart groups and the region each one lands in.
SMART_GROUPS: dict[str, tuple[str, str]] = {
    "americas": ("Americas", "us-east-1"),
    "emea": ("Europe, Middle East and Africa", "eu-central-1"),
    "apac": ("Asia-Pacific", "ap-southeast-1"),
}
DEFAULT_GROUP = "americas"

INSTANCE_SIZES = [
    "nano",
    "micro",
    "small",
    "medium",
    "large",
    "xlarge",
    "2xlarge",
    "4xlarge",
    "8xlarge",
    "12xlarge",
    "16xlarge",
    "24xlarge",
    "24xlarge_optimized_memory",
    "24xlarge_optimized_cpu",
    "24xlarge_high_memory",
    "48xlarge",
    "48xlarge_optimized_memory",
    "48xlarge_optimized_cpu",
    "48xlarge_high_memory",
]

_SLUG = re.compile(r"^[\w-]+$")
_CREATE_FIELDS = {
    "db_pass",
    "name",
    "organization_id",
    "organization_slug",
    "plan",
    "region",
    "region_selection",
    "kps_enabled",
    "desired_instance_size",
    "template_url",
}


@dataclass(frozen=True)
class CreateRequest:
    name: str
    db_pass: str
    organization_slug: str
    region: str


def _region_selection(raw: object) -> str:
    if not isinstance(raw, dict):
        raise ApiError(400, "region_selection must be an object")
    reject_unknown(raw, {"type", "code"})
    kind, code = raw.get("type"), raw.get("code")
    if kind == "specific":
        if code not in REGIONS:
            raise ApiError(400, f"region_selection.code must be one of: {', '.join(REGIONS)}")
        return str(code)
    if kind == "smartGroup":
        if code not in SMART_GROUPS:
            raise ApiError(400, "region_selection.code must be one of: americas, emea, apac")
        return SMART_GROUPS[str(code)][1]
    raise ApiError(400, "region_selection.type must be one of: specific, smartGroup")


def parse_create(body: dict[str, Any]) -> CreateRequest:
    reject_unknown(body, _CREATE_FIELDS)
    name = string_field(body, "name", required=True, max_len=256)
    db_pass = string_field(body, "db_pass", required=True)
    slug = string_field(body, "organization_slug", required=True)
    if not _SLUG.match(slug):
        raise ApiError(400, "organization_slug must match /^[\\w-]+$/")
    string_field(body, "organization_id", required=False)
    string_field(body, "template_url", required=False)
    if body.get("plan") is not None and body["plan"] not in ("free", "pro"):
        raise ApiError(400, "plan must be one of: free, pro")
    if body.get("kps_enabled") is not None and not isinstance(body["kps_enabled"], bool):
        raise ApiError(400, "kps_enabled must be a boolean value")
    size = body.get("desired_instance_size")
    if size is not None and size not in INSTANCE_SIZES:
        raise ApiError(400, f"desired_instance_size must be one of: {', '.join(INSTANCE_SIZES)}")
    region_raw, selection = body.get("region"), body.get("region_selection")
    if region_raw is not None and selection is not None:
        raise ApiError(400, "Only one of region or region_selection can be specified.")
    if region_raw is not None:
        if region_raw not in REGIONS:
            raise ApiError(400, f"region must be one of: {', '.join(REGIONS)}")
        region = str(region_raw)
    elif selection is not None:
        region = _region_selection(selection)
    else:
        region = SMART_GROUPS[DEFAULT_GROUP][1]
    return CreateRequest(name=name, db_pass=db_pass, organization_slug=slug, region=region)


def available_regions() -> dict[str, Any]:
    """The `RegionsInfo` answer: recommendations first, then everything."""
    specific = [
        {"name": label, "code": code, "type": "specific", "provider": "AWS"}
        for code, label in REGIONS.items()
    ]
    groups = [
        {"name": label, "code": code, "type": "smartGroup"}
        for code, (label, _) in SMART_GROUPS.items()
    ]
    return {
        "recommendations": {"smartGroup": groups[0], "specific": specific[:1]},
        "all": {"smartGroup": groups, "specific": specific},
    }
