"""The README as a user meets it: the two set-up commands stay true (.ci/run runs the test one verbatim; the main
job's CLI parses), and every other code block runs as written — the Python blocks in order in one interpreter, the
shell blocks one by one — in a scratch folder, with only what the README's first command installs (invviz and its
dependencies, not the test extras: `helpers/main_install.py`)."""

import pathlib
import re
import subprocess

import pytest
from helpers.main_install import environment

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(bash|python)\n(.+?)\n```", README, flags=re.S)


def setup_commands() -> list[str]:
    return [code for kind, code in BLOCKS if kind == "bash"][:2]


def test_ci_runs_the_readme_test_command():
    main_job, tests = setup_commands()
    assert "pytest" in tests and "invviz visualize" in main_job
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith("#")]
    assert tests in ci


def test_main_job_arguments_parse():
    from invviz.cli import build_parser

    main_job = setup_commands()[0]
    argv = main_job.split("&&")[-1].split()[1:]
    args = build_parser().parse_args(argv)
    assert args.model == "tf_efficientnet_lite0" and args.out.endswith(".png")


@pytest.mark.slow
def test_every_python_block_runs_as_written(tmp_path):
    code = "\n\n".join(c for kind, c in BLOCKS if kind == "python")
    assert "photo" in code and code.count("import invviz") >= 1
    script = tmp_path / "readme_blocks.py"
    script.write_text("import matplotlib\nmatplotlib.use('Agg')\n" + code + "\nprint('README OK')\n")
    out = subprocess.run(["python", str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                         env=environment(tmp_path / "env", ROOT))
    assert out.returncode == 0 and "README OK" in out.stdout, out.stderr[-3000:]


@pytest.mark.slow
def test_every_shell_block_runs_as_written(tmp_path):
    setup = setup_commands()
    blocks = [c for kind, c in BLOCKS if kind == "bash" and c not in setup]
    assert blocks, "the README shows no command-line examples"
    env = {**environment(tmp_path / "env", ROOT), "OMP_NUM_THREADS": "1"}
    for block in blocks:
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, capture_output=True, text=True,
                             timeout=900, env=env)
        assert out.returncode == 0, f"{block}\n{out.stderr[-3000:]}"


@pytest.mark.slow
def test_blocks_see_only_the_first_commands_install(tmp_path):
    """The check itself: a block that needs a test extra fails (scikit-image, pytest are in `[test]` only), what
    the first command installs imports."""
    env = environment(tmp_path / "env", ROOT)
    code = ("import importlib.util, invviz, timm, torchvision, sklearn, matplotlib\n"
            "assert importlib.util.find_spec('pytest') is None and importlib.util.find_spec('selenium') is None\n"
            "print('only main')")
    out = subprocess.run(["python", "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and "only main" in out.stdout, out.stderr[-2000:]
