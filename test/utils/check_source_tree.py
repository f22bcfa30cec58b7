#!/usr/bin/python3
"""Fails when running the tests wrote into the source tree.

    check_source_tree.py snapshot SRC STATE
    check_source_tree.py compare SRC STATE

`snapshot` records the files of SRC that are not ignored, with their sizes
and modification times, in STATE (a file in the build tree); `compare` lists
what appeared, disappeared or changed since then and exits 1 if anything
did. ctest runs the two around every other test (a fixture), so a test or a
fuzzer writing into the source tree (a corpus directory, a stray output)
fails CI. In a git checkout the files are those git does not ignore
(`.gitignore` covers the build trees and __pycache__); elsewhere every
file outside .git and top-level build* directories.
"""

import json
import os
import subprocess
import sys


def git_toplevel(src):
    try:
        out = subprocess.run(["git", "-C", src, "rev-parse", "--show-toplevel"],
                             check=True, capture_output=True, text=True)
        return os.path.realpath(out.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return None


def source_files(src):
    # git's view only where SRC is a checkout's root: inside another
    # checkout's ignored build tree git would see nothing at all.
    if git_toplevel(src) == os.path.realpath(src):
        out = subprocess.run(
            ["git", "-C", src, "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"],
            check=True, capture_output=True).stdout
        return sorted(p for p in out.decode().split("\0") if p)
    files = []
    for root, dirs, names in os.walk(src):
        rel = os.path.relpath(root, src)
        if rel == ".":
            dirs[:] = [d for d in dirs
                       if d != ".git" and not d.startswith("build")]
        files += [os.path.normpath(os.path.join(rel, n)) for n in names]
    return sorted(files)


def snapshot(src):
    state = {}
    for path in source_files(src):
        try:
            st = os.lstat(os.path.join(src, path))
        except FileNotFoundError:  # deleted but still in git's index
            continue
        state[path] = [st.st_size, st.st_mtime_ns]
    return state


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("snapshot", "compare"):
        sys.exit(__doc__)
    mode, src, state_path = sys.argv[1:]
    now = snapshot(src)
    if mode == "snapshot":
        with open(state_path, "w") as f:
            json.dump(now, f)
        print("source tree: %d files recorded" % len(now))
        return
    with open(state_path) as f:
        before = json.load(f)
    added = sorted(set(now) - set(before))
    removed = sorted(set(before) - set(now))
    changed = sorted(p for p in set(now) & set(before) if now[p] != before[p])
    for label, paths in (("new", added), ("removed", removed),
                         ("modified", changed)):
        for p in paths[:20]:
            print("source tree: %s during the tests: %s" % (label, p))
        if len(paths) > 20:
            print("source tree: ... and %d more %s" % (len(paths) - 20, label))
    if added or removed or changed:
        sys.exit("source tree: the tests wrote into %s (%d new, %d removed, "
                 "%d modified files); tests must write only under the build "
                 "tree" % (src, len(added), len(removed), len(changed)))
    print("source tree: unchanged (%d files)" % len(now))


if __name__ == "__main__":
    main()
