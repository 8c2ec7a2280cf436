"""Deploy the built template onto AWS emulation (moto), the way CloudFormation would.

The template `sam build` wrote (template.yaml with each CodeUri and ContentUri pointing at
its built folder) is translated by SAM's own translator (what `sam deploy` uses) into
plain CloudFormation; the deploy then creates each resource through the ordinary boto3
APIs, in dependency order, resolving the intrinsic functions the template uses. Functions
and layers are published with their built code. So the local run exercises the very
resources, names, environment, code and state machine definition that AWS gets, and
nothing is described twice.

Resource types with no meaning in a single-process emulation are listed in
`LocalStack.not_emulated` rather than silently dropped. Bucket policies are among them:
the template's only statement denies non-TLS access, and in-process calls carry no
transport for moto to judge.

    template.py         the template as a document (CloudFormation's short-form tags)
    sam_translation.py  SAM -> CloudFormation; where each built folder lives, zipped for Lambda
    intrinsics.py       Ref, Fn::GetAtt, Fn::Sub, ... and conditions, resolved
    asl_checks.py       each state machine definition checked as Step Functions would
    resources.py        each resource type created through boto3
    local_stack.py      what the deploy created
    deploy.py           the deploy, in dependency order
"""

from kontext_tools.local.stack.deploy import deploy_stack
from kontext_tools.local.stack.local_stack import LocalStack
from kontext_tools.local.stack.resources import LocalOverrides
from kontext_tools.local.stack.sam_translation import FunctionSource
from kontext_tools.local.stack.template import TemplateError, load_template

__all__ = [
    "FunctionSource",
    "LocalOverrides",
    "LocalStack",
    "TemplateError",
    "deploy_stack",
    "load_template",
]
