#!/usr/bin/env python3
"""Replay the README's quick start as a newcomer would: a fresh clone, a fresh shell, command by command.

    python3 scripts/check_quickstart.py [--keep] [--only SECTION ...]

Every ```bash and ```python block of README.md is run in order, in a clone of the committed HEAD, in a
fresh shell's environment (the user's PATH and HOME only: no venv active, no OMP_NUM_THREADS unless
the README sets it). A block preceded
by ``<!-- quickstart: skip (why) -->`` is listed and not run. Lines such as ``source …`` and
``export …`` carry over to later commands, as they would in the newcomer's one shell. A command that
starts a server (``foundry serve`` with no sub-command) runs in the background — the README says to
use a second shell — and is stopped with Ctrl-C (SIGINT) at the end, which must exit cleanly.

A command fails the replay on a non-zero exit, a Python traceback in its output, or a file it leaves
in the clone that git neither tracks nor ignores (or a tracked file it changes). Prints each command's
time; exits 1 at the first failure.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

SKIP = re.compile(r"<!--\s*quickstart:\s*skip\s*(.*?)-->")
FENCE = re.compile(r"^```(\w*)\s*$")
STATE = re.compile(r"^(source|\.|export|cd)\s")
SERVER = re.compile(r"^foundry serve(?!\s+(bench|profile)\b)(\s|$)")
PORT = re.compile(r"--port\s+(\d+)")


@dataclass
class Block:
    lang: str
    text: str
    section: str
    skip: str | None


def readme_blocks(readme: str) -> list[Block]:
    blocks, section, skip, lines = [], "", None, readme.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        if m := SKIP.search(line):
            skip = m.group(1).strip().removeprefix("(").removesuffix(")") or "marked skip"
        if m := FENCE.match(line):
            body = []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            if m.group(1) in ("bash", "python"):
                blocks.append(Block(m.group(1), "\n".join(body), section, skip))
            skip = None
        i += 1
    return blocks


def bash_commands(text: str) -> list[str]:
    """Logical lines: continuations joined; blank lines and whole-line comments dropped."""
    out, cur = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        out.append((cur + line).strip())
        cur = ""
    return out


def fresh_shell_env() -> dict[str, str]:
    """A new login shell's environment: the user's PATH and HOME, no venv active, nothing else set."""
    path = [p for p in os.environ["PATH"].split(":") if "/.venv/" not in p + "/" and "VIRTUAL_ENV" not in p]
    return {"HOME": os.environ["HOME"], "PATH": ":".join(path), "LANG": "C.UTF-8", "TERM": "dumb",
            "COLUMNS": "100"}


def changed_files(clone: Path) -> set[str]:
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone,
                         capture_output=True, text=True, check=True).stdout
    return {line[3:] for line in out.splitlines()}


def wait_for_health(port: int, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before it answered")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"no answer on port {port} within {timeout:.0f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", action="store_true", help="keep the temporary clone")
    ap.add_argument("--only", nargs="*", help="run only blocks whose section title contains one of these "
                    "(plus the set-up lines before them)")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows as it happens, also into a log file

    repo = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=Path(__file__).parent,
                               capture_output=True, text=True, check=True).stdout.strip())
    work = Path(tempfile.mkdtemp(prefix="foundry-quickstart."))
    clone = work / "foundry"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True,
                          text=True).stdout.strip()
    print(f"fresh clone of {head} in {clone}; a fresh shell's environment (no venv active)")
    env = fresh_shell_env()
    state: list[str] = []  # the one shell's carried-over lines (source, export, cd)
    servers: list[tuple[str, subprocess.Popen, Path]] = []
    timings: list[tuple[float, str]] = []
    failed = None
    baseline = changed_files(clone)

    def check_tree(what: str) -> str | None:
        new = changed_files(clone) - baseline
        return f"{what} left files git neither tracks nor ignores (or changed tracked ones): {sorted(new)}" \
            if new else None

    try:
        for block in readme_blocks((clone / "README.md").read_text()):
            if block.skip:
                print(f"-- skipped ({block.skip}) [{block.section}]: {block.text.splitlines()[0][:70]} …")
                continue
            if args.only and not any(s.lower() in block.section.lower() for s in args.only):
                if block.lang == "bash":
                    state += [c for c in bash_commands(block.text) if STATE.match(c)]
                continue
            if block.lang == "python":
                commands = [f"python - <<'FOUNDRY_QUICKSTART_EOF'\n{block.text}\nFOUNDRY_QUICKSTART_EOF"]
            else:
                commands = bash_commands(block.text)
            for cmd in commands:
                shown = cmd.splitlines()[0] if block.lang == "bash" else f"python <<{block.section}>>"
                script = "\n".join([*state, cmd])
                if block.lang == "bash" and STATE.match(cmd):
                    state.append(cmd)
                if block.lang == "bash" and SERVER.match(cmd):
                    port = int(m.group(1)) if (m := PORT.search(cmd)) else 8000
                    log = work / f"server-{port}.log"
                    proc = subprocess.Popen(["bash", "-c", "\n".join([*state, f"exec {cmd}"])], cwd=clone,
                                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                            start_new_session=True)
                    t0 = time.monotonic()
                    try:
                        wait_for_health(port, proc)
                    except RuntimeError as e:
                        failed = f"{shown}: {e}; log {log}"
                        break
                    servers.append((shown, proc, log))
                    timings.append((time.monotonic() - t0, f"{shown}   (background; up)"))
                    print(f"ok  {timings[-1][0]:7.1f} s  {shown}   (in the background, as in a second shell)")
                    continue
                t0 = time.monotonic()
                r = subprocess.run(["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True)
                dt = time.monotonic() - t0
                timings.append((dt, shown))
                output = r.stdout + r.stderr
                if r.returncode != 0:
                    failed = f"{shown}: exit {r.returncode}\n{output[-3000:]}"
                elif "Traceback (most recent call last)" in output:
                    failed = f"{shown}: a traceback\n{output[-3000:]}"
                else:
                    failed = check_tree(shown)
                if failed:
                    break
                print(f"ok  {dt:7.1f} s  {shown}")
            if failed:
                break
    finally:
        for shown, proc, log in servers:  # Ctrl-C, as the newcomer would
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    failed = failed or f"{shown}: did not stop within 30 s of Ctrl-C"
            text = log.read_text()
            if not failed and "Traceback (most recent call last)" in text:
                failed = f"{shown}: a traceback in the server's output (log {log})"
            elif not failed and proc.returncode not in (0, -signal.SIGINT, 130):
                failed = f"{shown}: exited {proc.returncode} after Ctrl-C (log {log})"
        if not failed:
            failed = check_tree("the servers")

    total = sum(t for t, _ in timings)
    print(f"{len(timings)} commands, {total:.0f} s in all")
    if failed:
        print(f"FAIL: {failed}", file=sys.stderr)
        print(f"the clone is kept at {clone}", file=sys.stderr)
        return 1
    print("OK: the README's quick start runs as written")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
