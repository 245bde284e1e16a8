#!/usr/bin/env python3
"""make lint: no module of src/ imports a module that imports it, directly or through others.

A module's imports are the `crate::` paths in its file (in `use` lines, their groups, and
inline paths), each resolved to the longest module path it names."""
import glob
import os
import re
import sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(path):
    name = os.path.relpath(path, root)[:-3].replace(os.sep, "::")
    return name[: -len("::mod")] if name.endswith("::mod") else name


files = glob.glob(os.path.join(root, "**", "*.rs"), recursive=True)
modules = {module_of(f): f for f in files}
imports = {}
for module, path in modules.items():
    text = open(path).read()
    paths = re.findall(r"crate::([a-z_:]+)", text)
    for group in re.findall(r"use crate::\{([^;]*)\};", text, re.S):
        paths += re.findall(r"([a-z_]+(?:::[a-z_]+)*)", group)
    found = set()
    for p in paths:
        parts = p.split("::")
        for n in range(len(parts), 0, -1):
            candidate = "::".join(parts[:n])
            if candidate in modules:
                found.add(candidate)
                break
    # A folder's mod.rs only declares its modules; lib.rs declares the folders.
    imports[module] = {d for d in found if d != module and not module.startswith(d + "::") and d != "lib"}


def reachable(start):
    seen, stack = set(), [start]
    while stack:
        for d in imports.get(stack.pop(), ()):
            if d not in seen:
                seen.add(d)
                stack.append(d)
    return seen


loops = sorted((a, b) for a in imports for b in imports[a] if a in reachable(b))
for a, b in loops:
    print(f"import loop: {a} imports {b}, which imports {a} (directly or through others)")
print(f"{len(modules)} modules, {sum(map(len, imports.values()))} imports, {len(loops)} in loops")
sys.exit(1 if loops else 0)
