"""The Python blocks of docs/models.md run (in order, one namespace) and print what they say."""

import contextlib
import io
import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "models.md"


def test_models_page_blocks_run_and_print_their_comments():
    text = PAGE.read_text()
    out = io.StringIO()
    namespace = {"__name__": "__docs__"}
    with contextlib.redirect_stdout(out):
        for block in re.findall(r"```python\n(.*?)```", text, re.S):
            exec(compile(block, str(PAGE), "exec"), namespace)
    printed = out.getvalue().splitlines()
    expected = re.findall(r"^print\(.*\)\s+# (.+)$", text, re.M)
    assert len(expected) == len(printed) >= 6
    assert printed == expected
