#!/usr/bin/env python3
"""Proves, from any machine with PyPI, that a Jetson (JetPack 6: aarch64, Python 3.10) can install
what ishowtts needs beside NVIDIA's torch and torchaudio.

pip's resolver runs on ``requirements/jetson.in`` for the Jetson's platform and interpreter
(``--platform ... --python-version 3.10 --only-binary=:all: --dry-run --report``), constrained
by ``requirements/lock-jetson.txt`` (the x86-64 lock's versions, less torch, torchaudio and the
CUDA packages; made by tools/lock.sh), so it proves those very pins install there. torch and
torchaudio are what JetPack provides (NVIDIA's wheels, installed first): the resolver is given
metadata-only placeholders of them with the dependencies NVIDIA's wheels declare (pip evaluates
environment markers on the machine it runs on, so PyPI's torch would drag in its x86-64-only
CUDA packages here). Binary-only resolution cannot take a package that has no wheel there; such
a package is built here from its sdist, only to learn its dependencies, and offered to the
resolver as a placeholder too, so the rest of the tree is still resolved. Those are what a
Jetson builds from source: listed at the end.

    python tools/check_jetson_deps.py            # table + summary; exit 0 when all resolve
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements" / "jetson.in"
PINS = ROOT / "requirements" / "lock-jetson.txt"  # the lock's versions, less JetPack's part
# JetPack 6 is Ubuntu 22.04 (glibc 2.35): every manylinux tag up to 2.35 installs there.
PLATFORMS = ["manylinux2014_aarch64"] + [f"manylinux_2_{n}_aarch64" for n in range(17, 36)]
PYTHON = "3.10"
# JetPack 6.1/6.2's NVIDIA wheels (torch 2.5.0a0+872d972e41.nv24.08 and the matching
# torchaudio) as the resolver sees them: the release and what they declare. The local label
# keeps PyPI's own torch 2.5.0 (and the x86-64 CUDA wheels its markers name here) out.
JETPACK = {
    "torch": (
        "2.5.0+jetpack",
        ["filelock", "typing-extensions>=4.8.0", "sympy", "networkx", "jinja2", "fsspec"],
    ),
    "torchaudio": ("2.5.0+jetpack", ["torch==2.5.0"]),
}  # fmt: skip
# How pip names a package it found no wheel for: plainly, or (the version being pinned) as
# the constraint that conflicts with what depends on it.
MISSING = re.compile(
    r"No matching distribution found for ([A-Za-z0-9_.\-]+)"
    r"|The user requested \(constraint\) ([A-Za-z0-9_.\-]+)=="
)


def requirements() -> list[str]:
    lines = (line.split("#")[0].strip() for line in REQUIREMENTS.read_text().splitlines())
    return [line for line in lines if line]


def resolve(reqs: list[str], find_links: Path, work: Path) -> tuple[int, str, dict]:
    report = work / "report.json"
    cmd = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
        "--target", str(work / "target"), "--report", str(report),
        "--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp",
        "--abi", "cp310", "--abi", "abi3", "--abi", "none",
        *(f"--platform={p}" for p in PLATFORMS),
        "--find-links", str(find_links), "--constraint", str(PINS), *reqs,
    ]  # fmt: skip
    env = {"PIP_CONSTRAINT": "", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(env), check=False)
    data = json.loads(report.read_text()) if proc.returncode == 0 else {}
    return proc.returncode, proc.stdout + proc.stderr, data  # pip explains conflicts on stdout


def _env(extra: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **extra}


def pinned(name: str) -> str:
    """``name==version`` as the Jetson pins have it, else just ``name`` (the newest)."""
    canon = re.sub(r"[-_.]+", "-", name).lower()
    for line in PINS.read_text().splitlines():
        dist, _, version = line.partition("==")
        if version and re.sub(r"[-_.]+", "-", dist).lower() == canon:
            return f"{name}=={version.strip()}"
    return name


def from_sdist(name: str, find_links: Path, work: Path) -> str:
    """Builds ``name``'s sdist (the pinned version) here, only to read its metadata, and offers
    it to the resolver as a placeholder wheel. Returns the version."""
    build = work / f"build-{name}"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-binary", ":all:", "--quiet",
         "-w", str(build), pinned(name)],
        check=True, capture_output=True, text=True, env=_env({"PIP_CONSTRAINT": ""}),
    )  # fmt: skip
    (built,) = build.glob("*.whl")
    with zipfile.ZipFile(built) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(meta_name)
    headers = Parser().parsestr(metadata.decode())
    write_placeholder(find_links, headers["Name"], headers["Version"], metadata)
    return headers["Version"]


def write_placeholder(find_links: Path, dist: str, version: str, metadata: bytes) -> None:
    """A py3-none-any wheel holding only ``metadata``: enough for the resolver, never installed."""
    stem = f"{re.sub(r'[-_.]+', '_', dist)}-{version}"
    files = {
        f"{stem}.dist-info/METADATA": metadata,
        f"{stem}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: check_jetson_deps\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = (
        "".join(f"{path},sha256={_digest(data)},{len(data)}\n" for path, data in files.items())
        + f"{stem}.dist-info/RECORD,,\n"
    )
    with zipfile.ZipFile(find_links / f"{stem}-py3-none-any.whl", "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        zf.writestr(f"{stem}.dist-info/RECORD", record)


def jetpack_metadata(name: str, version: str, requires: list[str]) -> bytes:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    return ("\n".join(lines) + "\n").encode()


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    reqs = [*requirements(), *(f"{n}=={v}" for n, (v, _) in JETPACK.items())]
    from_source: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="jetson-deps-") as tmp:
        work, find_links = Path(tmp), Path(tmp) / "placeholders"
        find_links.mkdir()
        for name, (version, requires) in JETPACK.items():
            write_placeholder(find_links, name, version, jetpack_metadata(name, version, requires))
        while True:
            status, output, report = resolve(reqs, find_links, work)
            if status == 0:
                break
            match = MISSING.search(output)
            name = (match.group(1) or match.group(2)).lower() if match else ""
            if not name or name in from_source:
                print(output.strip()[-4000:], file=sys.stderr)
                print("the resolver failed, not for want of a wheel", file=sys.stderr)
                return 1
            from_source[name] = from_sdist(name, find_links, work)
    installs = []
    for item in report["install"]:
        meta, url = item["metadata"], item["download_info"]["url"]
        name = meta["name"].lower()
        wheel = url.rsplit("/", 1)[-1]
        kind = (
            "JetPack (NVIDIA's wheel)" if name in JETPACK
            else "sdist (build)" if name in from_source
            else "pure wheel" if wheel.endswith("-none-any.whl")
            else "aarch64 wheel"
        )  # fmt: skip
        installs.append({"name": name, "version": meta["version"], "kind": kind})
    installs.sort(key=lambda i: i["name"])
    if args.json:
        print(json.dumps({"install": installs, "from_source": from_source}, indent=1))
        return 0
    for i in installs:
        print(f"{i['name']:<28} {i['version']:<14} {i['kind']}")
    jetpack = ", ".join(f"{n} {v}" for n, (v, _) in JETPACK.items())
    print(
        f"\n{len(installs)} distributions resolve for aarch64 / CPython {PYTHON} beside "
        f"JetPack's {jetpack}; {len(installs) - len(from_source) - len(JETPACK)} as wheels, "
        f"{len(from_source)} built from source: "
        + (", ".join(f"{n} {v}" for n, v in sorted(from_source.items())) or "none")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
