"""The embedded local run: template.yaml on moto in-process, handlers in-process, the model
emulator on 127.0.0.1. Imported by the CLI, the integration tests and the benchmarks only;
the Lambda functions never import it (its dependencies are not in the layer).
"""
