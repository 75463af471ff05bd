"""The README's two set-up commands stay true: .ci/run runs the test one verbatim, and the main job's CLI parses."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)[:2]


def test_ci_runs_the_readme_test_command():
    main_job, tests = readme_commands()
    assert "pytest" in tests and "invviz visualize" in main_job
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith("#")]
    assert tests in ci


def test_main_job_arguments_parse():
    from invviz.cli import build_parser

    main_job = readme_commands()[0]
    argv = main_job.split("&&")[-1].split()[1:]
    args = build_parser().parse_args(argv)
    assert args.model == "tf_efficientnet_lite0" and args.out.endswith(".png")
