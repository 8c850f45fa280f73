"""bertbridge's framework-neutral core: everything that must behave the same on every framework.

Nothing under ``bertbridge.core`` imports a deep-learning framework (a test checks every module).
Imports flow one way, from the entry points down to the foundations (a test checks that too)::

    cli, forwarding, sagemaker/, serving/server+handlers   entry points (command line, containers, HTTP)
    api                                                  the facade: train, load, evaluate, export
    tasks/classification, tasks/qa                       task plugins: data, features, metrics, predictor, training glue
    training/, debugger/                                 the shared training loop and run, debugger capture
    distributed/                                         data-parallel roles, collectives, the process launcher
    plugins/                                             plugin manager, task/backend/model registries, core's own plugin
    hookspecs, task, backend                             the plugin contracts (what a third-party package implements)
    data/, text/, io/, serving/protocol                  readers and TFRecords, tokenizing and batching, artifacts
    errors, spec                                         the error types and the task spec

See ARCHITECTURE.md at the repository root for the data flow of a training run.
"""
