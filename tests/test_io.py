"""Every write is atomic, output paths are checked before the work, and stale temporary files are cleaned."""

import os
import subprocess
import sys

import pytest
import torch

from invviz import io
from invviz.errors import CheckpointError, OutputPathError
from invviz.plotting import save_grid


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "grid.png"
    save_grid(torch.rand(2, 3, 8, 8), target)
    before = target.read_bytes()

    def boom(f):
        f.write(b"half a file")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        io.atomic_write(target, boom)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]  # no temporary left behind
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~io._umask())  # what a plain open() gives


def test_stale_temporaries_of_dead_writers_are_cleaned_at_the_next_write(tmp_path):
    target = tmp_path / "ckpt.pt"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".ckpt.pt.tmp-{dead}-abc"
    stale.write_bytes(b"killed mid-write")
    alive = tmp_path / f".ckpt.pt.tmp-{os.getppid()}-xyz"  # a writer that still runs: left alone
    alive.write_bytes(b"in progress")
    io.save_checkpoint(target, {"modules": {}, "step": 0})
    assert not stale.exists() and alive.exists() and target.exists()


def test_a_killed_checkpoint_write_leaves_the_last_good_one(tmp_path):
    target = tmp_path / "ckpt.pt"
    io.save_checkpoint(target, {"modules": {"m": {"w": torch.zeros(2)}}, "step": 1})
    code = (f"import torch, os, signal\nfrom invviz import io\n"
            f"def w(f):\n    f.write(b'x' * 1000)\n    os.kill(os.getpid(), signal.SIGKILL)\n"
            f"io.atomic_write({str(target)!r}, w)\n")
    subprocess.run([sys.executable, "-c", code])
    assert io.load_checkpoint_state(target)["step"] == 1
    io.save_checkpoint(target, {"modules": {}, "step": 2})  # the next write cleans the killed one's temporary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_output_paths_are_checked(tmp_path):
    (tmp_path / "file").write_text("x")
    for bad, fragment in [(tmp_path / "file" / "out.png", "is a file"), (tmp_path, "is a folder"), ("", "non-empty")]:
        with pytest.raises(OutputPathError, match=fragment):
            io.check_writable(bad)
    assert io.check_writable(tmp_path / "new" / "deeper" / "out.png").endswith("out.png")


def test_partial_and_foreign_files_are_checkpoint_errors(tmp_path):
    path = tmp_path / "a.pt"
    io.save_state_dict(path, {"w": torch.ones(3)})
    assert torch.equal(io.read_state_dict(path)["w"], torch.ones(3))
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:60])
    (tmp_path / "text.pt").write_text("hello")
    for name in ("cut.pt", "text.pt", "missing.pt"):
        with pytest.raises(CheckpointError):
            io.read_state_dict(tmp_path / name)
    with pytest.raises(CheckpointError, match="not an invviz training checkpoint"):
        io.load_checkpoint_state(path)
