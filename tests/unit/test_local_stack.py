"""The local deployer's reading of a template: intrinsic functions, conditions and the order
resources are created in, as CloudFormation resolves them."""

from __future__ import annotations

import pytest

from kontext_tools.local.stack import LocalStack, TemplateError
from kontext_tools.local.stack.deploy import creation_order
from kontext_tools.local.stack.intrinsics import Resolver, references


def deployed_so_far() -> LocalStack:
    """A stack part-way through its deploy: one bucket and one condition."""
    stack = LocalStack(
        name="kontext-local-test",
        template={"Conditions": {"Webhooks": {"Fn::Equals": [{"Ref": "Mode"}, "webhook"]}}},
    )
    stack.physical_ids["Images"] = "kontext-images-1"
    stack.attributes["Images"] = {"Arn": "arn:aws:s3:::kontext-images-1"}
    return stack


def test_refs_getatts_and_subs_resolve_to_what_was_created_and_the_parameters() -> None:
    # Given a stack with a bucket and a parameter
    resolver = Resolver(deployed_so_far(), {"Prefix": "inputs/"})
    # When values refer to them as the template does
    resolved = resolver.resolve(
        {
            "Bucket": {"Ref": "Images"},
            "Arn": {"Fn::GetAtt": ["Images", "Arn"]},
            "Dotted": {"Fn::GetAtt": "Images.Arn"},
            "Key": {"Fn::Sub": "${Images}/${Prefix}${AWS::Region}"},
            "Named": {"Fn::Sub": ["${Where}-${Images.Arn}", {"Where": {"Ref": "Prefix"}}]},
        }
    )
    # Then each is the physical id, attribute, parameter or pseudo parameter
    assert resolved == {
        "Bucket": "kontext-images-1",
        "Arn": "arn:aws:s3:::kontext-images-1",
        "Dotted": "arn:aws:s3:::kontext-images-1",
        "Key": "kontext-images-1/inputs/us-east-1",
        "Named": "inputs/-arn:aws:s3:::kontext-images-1",
    }


def test_list_functions_and_conditions_resolve_and_no_value_drops_the_property() -> None:
    # Given webhook mode
    resolver = Resolver(deployed_so_far(), {"Mode": "webhook", "Hosts": "a.example,b.example"})
    # When values use Join, Split, Select, If, Not and AWS::NoValue
    resolved = resolver.resolve(
        {
            "Joined": {"Fn::Join": ["-", ["a", {"Ref": "Mode"}]]},
            "Second": {"Fn::Select": [1, {"Fn::Split": [",", {"Ref": "Hosts"}]}]},
            "Chosen": {"Fn::If": ["Webhooks", "await", "poll"]},
            "NotPolling": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Mode"}, "poll"]}]},
            "Gone": {"Ref": "AWS::NoValue"},
            "Kept": [1, {"Ref": "AWS::NoValue"}, 2],
        }
    )
    # Then they are worked out, and NoValue leaves nothing behind
    assert resolved["Joined"] == "a-webhook"
    assert resolved["Second"] == "b.example"
    assert resolved["Chosen"] == "await"
    assert resolved["NotPolling"] is True
    assert "Gone" not in resolved
    assert resolved["Kept"] == [1, 2]
    assert resolver.condition("Webhooks") is True


def test_a_ref_to_nothing_created_is_a_template_error() -> None:
    # Given a stack where nothing is called Missing
    resolver = Resolver(deployed_so_far(), {})
    # When a value refers to it, Then the deploy stops naming it
    with pytest.raises(TemplateError, match="cannot resolve Ref Missing"):
        resolver.resolve({"Ref": "Missing"})
    with pytest.raises(TemplateError, match=r"cannot resolve GetAtt Images\.Name"):
        resolver.resolve({"Fn::GetAtt": ["Images", "Name"]})


def test_references_are_read_from_refs_getatts_and_sub_variables() -> None:
    # Given properties that refer to resources in every way a template can
    properties = {
        "A": {"Ref": "Topic"},
        "B": [{"Fn::GetAtt": "Queue.Arn"}],
        "C": {"Fn::Sub": ["${Table.Arn}/${Name}", {"Name": {"Ref": "Bucket"}}]},
    }
    # When their references are read, Then every target is named once
    assert references(properties) == {"Topic", "Queue", "Table", "Name", "Bucket"}


def test_resources_are_created_after_what_they_refer_to_or_depend_on() -> None:
    # Given a function that refers to a role and depends on a table
    resources = {
        "Function": {"Properties": {"Role": {"Fn::GetAtt": ["Role", "Arn"]}}, "DependsOn": "Table"},
        "Table": {"Properties": {}},
        "Role": {"Properties": {"Name": {"Fn::Sub": "${AWS::StackName}-role"}}},
    }
    # When the creation order is worked out
    order = creation_order(resources)
    # Then the role and the table come before the function
    assert order.index("Role") < order.index("Function")
    assert order.index("Table") < order.index("Function")
    assert sorted(order) == sorted(resources)


def test_a_circular_dependency_is_a_template_error() -> None:
    # Given two resources that refer to each other
    resources = {"A": {"Properties": {"X": {"Ref": "B"}}}, "B": {"Properties": {"Y": {"Ref": "A"}}}}
    # When the creation order is worked out, Then the deploy refuses it
    with pytest.raises(TemplateError, match="circular dependency"):
        creation_order(resources)
