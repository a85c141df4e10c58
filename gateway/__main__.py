"""``python -m gateway ...``: the container's entry point, the same options as ``pacs-kit gateway``.

The container carries only the gateway's own dependencies (no Pulumi), so it does not go through
the ``pacs-kit`` console script.
"""

from __future__ import annotations

import argparse
import sys

from gateway.cli import add_command


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway")
    add_command(parser.add_subparsers(dest="command", required=True))
    argv = sys.argv[1:]
    if argv[:1] == ["gateway"]:  # the task definition's command names the sub-command
        argv = argv[1:]
    args = parser.parse_args(["gateway", *argv])
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
