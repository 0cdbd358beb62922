"""The plugin's hooks: tiny reference checkpoints on a test Hub, and ``beats tiny-hello``.

The checkpoints are the tiny reference files of the test data
(``tests/reference``), served by the tests' fake Hub from the dataset
repository ``beats-test/tiny-checkpoints``. The pre-trained one is pinned by SHA-256 and
size, the fine-tuned one is not, so both validation paths are exercised.
"""

from beats_core import ModelInfo, hookimpl

REPO = {"repo_id": "beats-test/tiny-checkpoints", "repo_type": "dataset"}


@hookimpl
def beats_models():
    return {
        "test_tiny_pretrained": ModelInfo(
            **REPO,
            filename="tiny_pretrained.pt",
            sha256="c0a6cf1e3773413f4ff43f0e9d118d6ca3dbe79141186a574e8601ea45e4fd71",
            size=401032,
            description="tiny pre-trained BEATs (2 layers, 64-d) for tests",
            licence="mit",
        ),
        "test_tiny_finetuned": ModelInfo(
            **REPO,
            filename="tiny_finetuned.pt",
            description="tiny fine-tuned BEATs (5 AudioSet classes) for tests",
            licence="mit",
            finetuned=True,
            num_classes=5,
        ),
    }


@hookimpl
def beats_cli_commands(subparsers):
    parser = subparsers.add_parser("tiny-hello", help="say hello (added by beats-plugin-model)")
    parser.set_defaults(func=lambda args: print("hello from beats-plugin-model"))
