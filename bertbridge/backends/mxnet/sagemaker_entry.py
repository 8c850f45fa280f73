"""SageMaker script-mode entry point for the MXNet training container.

Use it as the job's ``entry_point`` (bertbridge installed through the source folder's
requirements.txt); ``bertbridge run-local`` runs it the same way. What it reads and
writes is described in :mod:`bertbridge.core.sagemaker.scriptmode`.
"""

import sys

from bertbridge.core.sagemaker.scriptmode import main

if __name__ == "__main__":
    sys.exit(main(backend="mxnet"))
