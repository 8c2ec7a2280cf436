"""Tools around the pipeline that never ship in the Lambda layer: the CLI, the deployed-stack
client, the model-queue emulator, the local run and the docs generator."""
