#!/usr/bin/env python3
"""Translate a SAM template into the CloudFormation template AWS deploys.

Usage: sam-translate.py TEMPLATE [Name=Value ...] > transformed.json

It does what `sam package` and the AWS::Serverless-2016-10-31 transform do,
offline: local CodeUri and Application Location paths are replaced by
placeholder S3 locations (as `sam package` would after uploading them),
then samtranslator (the library CloudFormation runs) expands the template.
Parameter values given as Name=Value override the defaults, so a test can
translate the template as a given deploy would see it. Functions name no
AWS-managed policies by name, so the policy loader needs no IAM access.
Used by `make lint` and functions/template_test.go.
"""
import json
import os
import sys

try:
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse
except ImportError:
    sys.exit("sam-translate: the SAM translator is not installed: pip install aws-sam-translator")

PLACEHOLDER_BUCKET = "tasker-sam-translate"


class _NoManagedPolicies:
    def load(self):
        return {}


def package(tpl):
    """Replace local paths the way `sam package` does."""
    for name, res in (tpl.get("Resources") or {}).items():
        props = res.get("Properties") or {}
        typ = res.get("Type")
        if typ == "AWS::Serverless::Function" and "ImageUri" not in props:
            props["CodeUri"] = "s3://%s/%s.zip" % (PLACEHOLDER_BUCKET, name)
        elif typ == "AWS::Serverless::Application" and isinstance(props.get("Location"), str):
            props["Location"] = "https://s3.amazonaws.com/%s/%s" % (
                PLACEHOLDER_BUCKET, os.path.basename(props["Location"]))
    glob = (tpl.get("Globals") or {}).get("Function") or {}
    glob.pop("CodeUri", None)
    return tpl


def main(argv):
    if len(argv) < 2:
        sys.exit("usage: sam-translate.py TEMPLATE [Name=Value ...]")
    params = {}
    for kv in argv[2:]:
        k, sep, v = kv.partition("=")
        if not sep:
            sys.exit("sam-translate: parameter %r is not Name=Value" % kv)
        params[k] = v
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(argv[1]) as f:
        tpl = yaml_parse(f.read())
    try:
        out = transform(package(tpl), params, _NoManagedPolicies())
    except Exception as e:  # the translator's errors list every problem
        sys.exit("sam-translate: %s: %s" % (argv[1], e))
    json.dump(out, sys.stdout, indent=1, sort_keys=True, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
