"""Wait until the API has settled: every model loaded (or failed), for ``make app``. Standard library only.

Usage: ``python -m aiclassify.page.wait_api http://127.0.0.1:8000 [--timeout 180] [--pid PID]``.
Exits 0 when ``/readyz`` reports no model still loading, 1 when the server process ``PID`` died or
the time ran out. Prints each model's state.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request


def readyz(url: str) -> dict | None:
    """The ``/readyz`` body (it answers 503 while loading), or None when the API does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        try:
            return json.load(error)
        except ValueError:
            return None
    except (OSError, ValueError):
        return None


def alive(pid: int | None) -> bool:
    """Whether process ``pid`` (when given) still runs."""
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait(url: str, timeout_s: float, pid: int | None = None) -> bool:
    """Poll ``url``'s ``/readyz`` until no model is loading; False on timeout or when ``pid`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid):
            print(f"The API process ({pid}) exited: is the port of {url} already in use?", file=sys.stderr)
            return False
        body = readyz(url)
        models = (body or {}).get("models") or {}
        if models and all(m.get("state") in ("AVAILABLE", "END") for m in models.values()):
            for name, model in models.items():
                detail = f" ({model.get('error')})" if model.get("error") else ""
                print(f"  model {name}: {model.get('state')}{detail}")
            return True
        time.sleep(1)
    print(f"The API at {url} was not ready within {timeout_s:g} s.", file=sys.stderr)
    return False


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--pid", type=int, default=None)
    args = parser.parse_args(argv)
    return 0 if wait(args.url.rstrip("/"), args.timeout, args.pid) else 1


if __name__ == "__main__":
    sys.exit(main())
