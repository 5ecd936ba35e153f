"""`edgeprune` command line: one file per command (this one assembles them), each building the
same configs as the Python API and calling it. Methods come from the registry (the command line
names none). Exit codes: 0 ok, 1 verification failed, 2 bad input."""
from __future__ import annotations

import errno
import json
import sys

from edgeprune.cli import demo, export, federated, fit, inspect, methods, prune, sparsify, train
from edgeprune.cli.common import Parser, UsageError
from edgeprune.cli.options import apply_config_file
from edgeprune.errors import ConfigError, EdgePruneError, VerificationError

COMMANDS = (train, prune, sparsify, inspect, export, demo, fit, federated, methods)


def build_parser() -> Parser:
    p = Parser(prog="edgeprune", description="Prune PyTorch models to fit IoT devices.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add(sub)
    return p


def _report(kind: str, message: str, code: int, as_json: bool) -> int:
    """Errors as one line (plus a help line) on stderr, or as JSON on stdout with --json."""
    if as_json:
        print(json.dumps({"error": kind, "message": message, "exit_code": code}))
    else:
        print(f"edgeprune: {kind}: {message}", file=sys.stderr)
    return code


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"edgeprune: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    as_json = "--json" in argv[:1] or ("--json" in argv and argv.index("--json") < next(
        (i for i, t in enumerate(argv) if not t.startswith("-")), len(argv)))
    import warnings
    warnings.showwarning = _warning_line
    try:
        parser = build_parser()
        apply_config_file(parser, argv)
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _report("error", str(exc), 2, as_json)
    except (EdgePruneError, ConfigError) as exc:
        return _report("error", str(exc), 2, as_json)
    try:
        return args.fn(args)
    except VerificationError as exc:
        return _report("verification failed", str(exc), 1, args.json)
    except (EdgePruneError, ConfigError, FileNotFoundError) as exc:
        return _report("error", str(exc), 2, args.json)
    except PermissionError as exc:
        return _report("error", f"permission denied: {exc.filename or exc}", 2, args.json)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            return _report("error", f"cannot write {exc.filename or ''}: {exc.strerror}", 2, args.json)
        raise


if __name__ == "__main__":
    sys.exit(main())
