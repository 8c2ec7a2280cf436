"""The deploy: parameters checked, template translated, every resource created in
dependency order, the outputs resolved and readable through CloudFormation."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kontext_tools.local.rules import check_parameters
from kontext_tools.local.stack.intrinsics import Resolver, references
from kontext_tools.local.stack.local_stack import LocalStack
from kontext_tools.local.stack.resources import LocalOverrides, ResourceCreator
from kontext_tools.local.stack.sam_translation import translate_template
from kontext_tools.local.stack.template import TemplateError, load_template
from kontext_tools.session_clients import SessionClients


def deploy_stack(
    template_path: Path,
    *,
    clients: SessionClients,
    stack_name: str = "kontext-local",
    parameters: Mapping[str, str] | None = None,
    overrides: LocalOverrides | None = None,
) -> LocalStack:
    """Create every resource of the template through the (moto-backed) clients."""
    sam = load_template(template_path)
    given = dict(parameters or {})
    # Refused as CloudFormation refuses them: before anything is created.
    values = check_parameters(sam, given)
    translation = translate_template(sam, template_path.parent, given)
    cfn = translation.cfn
    stack = LocalStack(name=stack_name, template=cfn)
    resolver = Resolver(stack, values)
    creator = ResourceCreator(clients, stack, resolver, translation, overrides or LocalOverrides())
    for logical_id in creation_order(cfn["Resources"]):
        creator.create(logical_id, cfn["Resources"][logical_id])
    for name, output in cfn.get("Outputs", {}).items():
        if "Condition" not in output or resolver.condition(output["Condition"]):
            stack.outputs[name] = str(resolver.resolve(output["Value"]))
    _register_stack(clients, stack)
    return stack


def _register_stack(clients: SessionClients, stack: LocalStack) -> None:
    """Make the stack's outputs readable through CloudFormation, as after `sam deploy`."""
    summary = {
        "Resources": {"Deployed": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {name: {"Value": value} for name, value in stack.outputs.items()},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moto notes it does not model the placeholder
        clients.cloudformation.create_stack(StackName=stack.name, TemplateBody=json.dumps(summary))


def creation_order(resources: Mapping[str, Any]) -> list[str]:
    """Logical ids, each after every resource it refers to or depends on."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(logical_id: str) -> None:
        if logical_id in order:
            return
        if logical_id in visiting:
            raise TemplateError(f"circular dependency through {logical_id}")
        visiting.add(logical_id)
        resource = resources[logical_id]
        depends = resource.get("DependsOn", [])
        needs = references(resource.get("Properties", {})) | set(
            [depends] if isinstance(depends, str) else depends
        )
        for dependency in sorted(needs & set(resources)):
            visit(dependency)
        visiting.discard(logical_id)
        order.append(logical_id)

    for logical_id in resources:
        visit(logical_id)
    return order
