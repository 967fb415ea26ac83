#!/usr/bin/env python3
"""Validates a CycloneDX SBOM with CycloneDX's own library and prints what it lists.

Usage: check.py SBOM.json
Exit 1 (with the validator's message on stderr) when the document does not validate against
the CycloneDX 1.5 JSON schema in strict mode (cyclonedx-python-lib's JsonStrictValidator).
Otherwise prints one tab-separated line per component: for packages, parsed from the package
URL by packageurl-python: "pkg NAME VERSION ARCH SOURCE SOURCE_VERSION DISTRO LICENSES";
for files: "file PATH SHA256".
"""
import json
import sys

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

text = open(sys.argv[1], encoding="utf-8").read()
error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
if error is not None:
    print(f"{sys.argv[1]}: not valid CycloneDX 1.5: {error}", file=sys.stderr)
    sys.exit(1)
bom = json.loads(text)
for c in bom.get("components", []):
    if c["type"] == "file":
        (h,) = [h["content"] for h in c["hashes"] if h["alg"] == "SHA-256"]
        print(f"file\t{c['name']}\t{h}")
        continue
    p = PackageURL.from_string(c["purl"])
    assert p.type == "deb" and p.name == c["name"] and p.version == c["version"], c
    q = p.qualifiers
    upstream = q.get("upstream", p.name)
    source, _, source_version = upstream.partition("@")
    licenses = ",".join(l["license"]["name"] for l in c.get("licenses", []))
    print(
        "\t".join(
            [
                "pkg",
                p.name,
                p.version,
                q["arch"],
                source,
                source_version or p.version,
                f"{p.namespace}/{q.get('distro', '')}",
                licenses,
            ]
        )
    )
