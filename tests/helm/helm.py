"""Helm's own Go SDK (PyPI helm-python-sdk) for tests/helm.rs.

    helm.py render CHART NAMESPACE [VALUES_FILE]  -> {"template path": "rendered YAML"}
    helm.py lint CHART NAMESPACE [VALUES_FILE]    -> {"messages": [...], "errors": [...]}

Prints JSON on stdout; a render error exits 1 with Helm's message on stderr.
"""
import json
import sys

import helm_python as helm


def main() -> int:
    command, chart, namespace = sys.argv[1:4]
    values = {}
    if len(sys.argv) > 4:
        with open(sys.argv[4], encoding="utf-8") as f:
            values = helm.values_from_yaml(f.read()) or {}
    if command == "render":
        out = helm.Chart.load(chart).render(
            values=values, name="palisade", namespace=namespace, is_install=True
        )
    elif command == "lint":
        out = helm.lint(chart, values=values, namespace=namespace, strict=True)
    else:
        print(f"unknown command {command}", file=sys.stderr)
        return 2
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except helm.HelmError as e:
        print(f"helm: {e}", file=sys.stderr)
        sys.exit(1)
