"""Write completions/ from the CLI itself, or with --check fail when they are stale.

python scripts/generate_completions.py          # regenerate
python scripts/generate_completions.py --check  # exit 1 if a committed script differs
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {"bash": "dora.bash", "zsh": "_dora", "fish": "dora.fish"}


def render(shell: str) -> str:
    """The completion script Typer generates for ``shell``, without leading blank lines
    (zsh needs ``#compdef`` on the first line)."""
    env = {**os.environ, "_DORA_COMPLETE": f"source_{shell}"}
    done = subprocess.run(
        [sys.executable, "-m", "dora"], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.lstrip("\n").rstrip() + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for shell, name in SCRIPTS.items():
        path = ROOT / "completions" / name
        text = render(shell)
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.write_text(text)
    if stale:
        print(
            f"stale completion scripts: {', '.join(stale)}; "
            "run: python scripts/generate_completions.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
