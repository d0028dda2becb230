"""The bench's memory figure belongs to the measurement's own process: a child started by a parent that once held a
lot of memory must not report the parent's peak as its own."""

from __future__ import annotations

import subprocess
import sys

from bench import harness

PARENT_MIB = 200


def test_a_childs_peak_rss_is_its_own_not_the_parent_it_was_started_from():
    held = bytearray(PARENT_MIB * 2**20)  # touched (zeroed) pages: the parent's resident set grows by them
    assert harness.peak_rss_kib() >= PARENT_MIB * 1024
    child = subprocess.run(
        [sys.executable, "-c", "from bench import harness; print(harness.peak_rss_kib() - harness.rss_now_kib())"],
        cwd=harness.ROOT, env=harness.child_env(), capture_output=True, text=True, check=True)
    del held
    assert int(child.stdout) < PARENT_MIB * 1024 // 2  # a fresh interpreter's own peak is tens of MiB above now


def test_the_peak_follows_what_this_process_holds():
    before = harness.peak_rss_kib()
    held = bytearray(64 * 2**20)
    assert harness.peak_rss_kib() >= max(before, harness.rss_now_kib()) and len(held)
