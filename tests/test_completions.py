"""The shipped completion scripts are the ones the CLI generates today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_committed_completion_scripts_are_current():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_completions.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr


def test_zsh_script_starts_with_compdef():
    assert (ROOT / "completions" / "_dora").read_text().startswith("#compdef dora\n")


def test_bash_completion_completes_subcommands(tmp_path):
    script = ROOT / "completions" / "dora.bash"
    bin_dir = Path(sys.executable).parent
    done = subprocess.run(
        [
            "bash",
            "-c",
            f'PATH="{bin_dir}:$PATH"; source "{script}"; '
            "COMP_WORDS=(dora incident r); COMP_CWORD=2; _dora_completion dora; "
            'echo "${COMPREPLY[@]}"',
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.stdout.split() == ["resolve"]
