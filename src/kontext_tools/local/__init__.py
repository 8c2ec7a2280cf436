"""The local run: the built template on moto, each function in Python 3.12 processes of its
own, the model emulator on 127.0.0.1. Imported by the CLI, the integration tests and the
benchmarks only; the Lambda functions never import it (its dependencies are not in the
layer).

    build.py           sam build for this machine, and the runtime's boto3
    stand_up.py        standing a local run up (LocalRunOptions)
    pipeline.py        LocalPipeline: the run, stood up and used
    account.py         the emulated account: id, region, credentials, typed clients
    moto_server.py     moto on 127.0.0.1 running real ASL
    moto_fixes.py      where moto differs from AWS, corrected
    stack/             the built template deployed onto moto, as CloudFormation would
    rules.py           parameter constraints and Rules, checked before anything is created
    lambdas.py         each function's warm sandboxes; async retries, on-failure destination
    sandbox.py         one warm execution environment (runs lambda_runtime.py)
    lambda_routing.py  moto's invocations and EventBridge targets routed to the sandboxes
    gateway.py         function URLs on 127.0.0.1
"""
