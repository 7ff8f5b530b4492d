"""The documentation is executable: every example in README.md and docs/*.md runs.

Each page's fenced blocks run in order, in one temporary folder per page, so a page reads
like a session: a run trained in one block is analyzed in the next.

- ```python blocks are executed (one namespace per page).
- ```bash / ```sh / ```shell blocks: every command line (``\\`` continuations joined,
  ``# comments`` dropped) runs. ``interp ...`` lines without shell syntax run in-process
  through the typer app (``CliRunner``), which spares a ~5 s interpreter and torch start
  per line; ``make TARGET`` is checked with ``make -n TARGET`` in the repository (it
  installs, which a test must not do); anything else runs under ``bash`` with the
  venv's ``bin/`` first on PATH. A non-zero exit fails the test.
- ```console blocks: lines starting with ``$ `` are commands as above, the rest output.
- Other fences (text, json, toml, csv, none) are output or file contents: not run.

HTML comments on the lines just above a fence qualify it:

- ``<!-- slow -->``: paper-scale; runs only in the slow test (``pytest -m slow``).
- ``<!-- not-run: REASON -->``: never run; the reason is required.
- ``<!-- uses: PATH ... -->``: inputs the block treats as the reader's own files; the
  test creates small stand-ins (see ``FIXTURES``) unless an earlier block made them.

A runnable block that is neither run nor marked fails the test, so new pages (whoever
writes them) are picked up automatically. The other tests here keep the CLI reference
(docs/cli.md) and the API reference (docs/api.md) complete, and every relative link and
page reachable.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import interp
from interp.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
RUN_LANGS = {"python", "bash", "sh", "shell", "console"}
#: Pages another author is writing; links to them may dangle until they land.
PENDING = {"reproductions.md", "performance.md"}

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
MARKER = re.compile(r"^<!--\s*(slow|not-run|uses)\s*(?::\s*(.*?))?\s*-->\s*$")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    markers: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.lang in RUN_LANGS


def parse_blocks(page: Path) -> list[Block]:
    """Fenced code blocks of a markdown page, with the markers just above each."""
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m["fence"], (m["info"].strip().split() or [""])[0].lower()
        start = i
        markers: dict[str, str] = {}
        j = i - 1
        while j >= 0 and (not lines[j].strip() or MARKER.match(lines[j].strip())):
            mk = MARKER.match(lines[j].strip())
            if mk:
                markers[mk[1]] = (mk[2] or "").strip()
            j -= 1
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(m["indent"]):])
            i += 1
        blocks.append(Block(page, start + 1, lang, "\n".join(body) + "\n", markers))
        i += 1
    return blocks


def command_lines(block: Block) -> list[str]:
    """The commands of a shell block: continuations joined, comments and output dropped."""
    raw = block.code.splitlines()
    if block.lang == "console":
        raw = [ln[2:] for ln in raw if ln.startswith("$ ")]
    out: list[str] = []
    buf = ""
    for ln in raw:
        if ln.rstrip().endswith("\\"):
            buf += ln.rstrip()[:-1] + " "
            continue
        buf += ln
        cmd = buf.strip()
        buf = ""
        if cmd and not cmd.startswith("#"):
            out.append(cmd)
    return out


SHELL_SYNTAX = re.compile(r"[|&;<>$`*?]|\[|\]")


def run_command(cmd: str, cwd: Path, where: str) -> None:
    words = shlex.split(cmd, comments=True)
    if not words:
        return
    if words[0] == "interp" and not SHELL_SYNTAX.search(cmd.split(" #")[0]):
        res = CliRunner().invoke(app, words[1:], catch_exceptions=True)
        if res.exit_code != 0:
            detail = res.output[-3000:]
            if res.exception is not None and not isinstance(res.exception, SystemExit):
                detail += f"\n{type(res.exception).__name__}: {res.exception}"
            pytest.fail(f"{where}: `{cmd}` exited {res.exit_code}:\n{detail}")
        return
    if words[0] == "make":
        cwd, cmd = ROOT, "make -n " + " ".join(words[1:])
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    res = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=1800)
    if res.returncode != 0:
        pytest.fail(f"{where}: `{cmd}` exited {res.returncode}:\n{res.stdout[-2000:]}"
                    f"\n{res.stderr[-3000:]}")


# Small stand-ins for files a block treats as the reader's own (``<!-- uses: ... -->``).

def _tiny_run(path: Path, **train: object) -> None:
    cfg = interp.RunConfig().replace(data={"p": 11, "corrupt": 0.3}, model={"width": 12},
                                     train={"steps": 40, "save_every": 10, **train})
    interp.train_to_file(cfg, path)


def _mlp_state(path: Path, p: int) -> None:
    import torch
    torch.save(interp.MLP(p, interp.MLPConfig(width=16)).state_dict(), path)


def _tl_state(path: Path, p: int) -> None:
    """A TransformerLens-named one-layer Transformer, as TransformerLens saves it, with a
    grokking model's inputs m, n, = (token p)."""
    import torch
    cfg = interp.TransformerConfig(d_model=8, n_heads=2, d_mlp=16, n_ctx=3, extra_tokens=1)
    ours = interp.Transformer(p, cfg).state_dict()
    tl = {"W_E": "embed.W_E", "W_pos": "pos_embed.W_pos", "W_U": "unembed.W_U",
          "W_in": "blocks.0.mlp.W_in", "W_out": "blocks.0.mlp.W_out"}
    tl |= {f"W_{k}": f"blocks.0.attn.W_{k}" for k in "QKVO"}
    torch.save({tl[k]: v for k, v in ours.items()}, path)


def _generic_mlp(path: Path, p: int) -> None:
    """An ordinary two-layer torch MLP on concatenated one-hots (fc1 bias-free)."""
    from safetensors.numpy import save_file
    rng = np.random.default_rng(0)
    save_file({"fc1.weight": rng.normal(size=(16, 2 * p)).astype(np.float32),
               "fc2.weight": rng.normal(size=(p, 16)).astype(np.float32)}, str(path))


def _analyzed_demo(folder: Path) -> None:
    run = folder.with_name("demo.h5")
    if not run.exists():
        _tiny_run(run)
    res = CliRunner().invoke(app, ["analyze", str(run), "--out", str(folder)])
    assert res.exit_code == 0, res.output


FIXTURES = {
    "run.h5": _tiny_run,
    "checkpoints/demo.h5": _tiny_run,
    "checkpoints/wd15.h5": lambda path: _tiny_run(path, weight_decay=15.0),
    "wd0.h5": _tiny_run,
    "wd5.h5": lambda path: _tiny_run(path, weight_decay=5.0),
    "wd15.h5": lambda path: _tiny_run(path, weight_decay=15.0),
    "model.pt": lambda path: _mlp_state(path, 97),
    "tl_grokking.pt": lambda path: _tl_state(path, 113),
    "mlp.safetensors": lambda path: _generic_mlp(path, 97),
    "checkpoints/demo-analysis": _analyzed_demo,
}


def make_fixtures(block: Block, cwd: Path) -> None:
    for name in block.markers.get("uses", "").split():
        target = cwd / name
        if target.exists():
            continue
        if name not in FIXTURES:
            pytest.fail(f"{block.where}: no stand-in for {name!r}; add one to FIXTURES.")
        target.parent.mkdir(parents=True, exist_ok=True)
        FIXTURES[name](target)


def run_page(page: Path, cwd: Path, *, slow: bool) -> list[Block]:
    """Run a page's blocks in order; returns those that ran."""
    namespace: dict[str, object] = {"__name__": "__main__"}
    ran = []
    for block in parse_blocks(page):
        if not block.runnable or "not-run" in block.markers:
            continue
        if "slow" in block.markers and not slow:
            continue
        make_fixtures(block, cwd)
        if block.lang == "python":
            code = compile(block.code, block.where, "exec")
            try:
                exec(code, namespace)
            except Exception as exc:
                raise AssertionError(f"{block.where}: the python block raised {exc!r}") from exc
        else:
            for cmd in command_lines(block):
                run_command(cmd, cwd, block.where)
        ran.append(block)
    return ran


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The examples are tiny: one thread is faster, and much faster on a busy machine."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_runnable_block_is_run_or_marked(page):
    for block in parse_blocks(page):
        if not block.runnable:
            continue
        if "not-run" in block.markers:
            assert block.markers["not-run"], f"{block.where}: not-run needs a reason"
        unknown = set(block.markers) - {"slow", "not-run", "uses"}
        assert not unknown, f"{block.where}: unknown markers {unknown}"
        if block.lang != "python":
            for cmd in command_lines(block):
                assert "[" not in cmd or "not-run" in block.markers, (
                    f"{block.where}: `{cmd}` uses [optional] syntax; write a runnable command "
                    "(synopses go in ```text blocks)")


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_commands_are_in_fences(page):
    """An indented (unfenced) code block escapes the tests: commands go in fences."""
    inside = False
    for n, line in enumerate(page.read_text().splitlines(), 1):
        if FENCE.match(line):
            inside = not inside
        elif not inside and re.match(r"^ {4,}(interp|python|make|pip) ", line):
            pytest.fail(f"{_page_id(page)}:{n}: a command outside a fenced block: {line.strip()}")


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_page_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = [b for b in parse_blocks(page) if b.runnable]
    ran = run_page(page, tmp_path, slow=False)
    for block in blocks:
        assert block in ran or block.markers.keys() & {"slow", "not-run"}, (
            f"{block.where}: a {block.lang} block was neither run nor marked")


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_page_examples_run_including_slow(page, tmp_path, monkeypatch):
    if not any("slow" in b.markers for b in parse_blocks(page)):
        pytest.skip("no slow blocks: the default suite runs this page")
    monkeypatch.chdir(tmp_path)
    run_page(page, tmp_path, slow=True)


# The parser itself, on a page written here.

def test_parser_reads_markers_languages_and_continuations(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n<!-- slow -->\n```bash\ninterp train --p 11 \\\n    --steps 5"
                    "  # tiny\n# a comment\n```\n\n```json\n{}\n```\n\n"
                    "<!-- uses: run.h5 -->\n<!-- not-run: needs a cluster -->\n"
                    "```console\n$ interp inspect run.h5\noutput line\n```\n")
    blocks = parse_blocks(page)
    assert [b.lang for b in blocks] == ["bash", "json", "console"]
    assert blocks[0].markers == {"slow": ""} and blocks[1].markers == {}
    assert blocks[2].markers == {"uses": "run.h5", "not-run": "needs a cluster"}
    assert command_lines(blocks[0]) == ["interp train --p 11      --steps 5  # tiny"]
    assert command_lines(blocks[2]) == ["interp inspect run.h5"]


# The CLI reference is complete: every command, argument and option of the app.

def _cli_sections() -> dict[str, str]:
    text = (DOCS / "cli.md").read_text()
    parts = re.split(r"^## `interp ([a-z-]+)`.*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_cli_reference_lists_every_command_and_option():
    group = typer.main.get_command(app)  # typer's (vendored) click Group
    sections = _cli_sections()
    assert set(sections) == set(group.commands), (
        f"docs/cli.md sections {sorted(sections)} != commands {sorted(group.commands)}")
    for name, cmd in group.commands.items():
        first_cells = [ln.split("|")[1] for ln in sections[name].splitlines()
                       if ln.startswith("| `")]
        documented = {o for cell in first_cells for o in re.findall(r"`(--[a-z0-9-]+)`", cell)}
        declared = set()
        for param in cmd.params:
            if param.param_type_name == "argument":
                meta = (param.metavar or param.name.upper()).rstrip(".")
                assert any(f"`{meta}" in cell for cell in first_cells), (
                    f"docs/cli.md: no row for argument {meta} of interp {name}")
            else:
                declared.update(param.opts + param.secondary_opts)
        assert declared <= documented, (
            f"docs/cli.md: interp {name} options without a row: {sorted(declared - documented)}")
        assert documented <= declared, (
            f"docs/cli.md: rows for options interp {name} lacks: {sorted(documented - declared)}")


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_interp_command_parses(page):
    """Slow and not-run commands too: their options and values must be valid."""
    group = typer.main.get_command(app)
    for block in parse_blocks(page):
        if block.lang not in RUN_LANGS - {"python"}:
            continue
        for cmd in command_lines(block):
            words = shlex.split(cmd, comments=True)
            if words[0] != "interp" or SHELL_SYNTAX.search(cmd.split(" #")[0]):
                continue
            if words[1].startswith("-"):  # an option of interp itself (--version)
                options = {o for p in group.params for o in p.opts + p.secondary_opts}
                assert words[1] in options | {"-h", "--help"}, f"{block.where}: `{cmd}`"
                continue
            assert words[1] in group.commands, f"{block.where}: unknown command in `{cmd}`"
            if {"-h", "--help"} & set(words):  # prints the help and exits
                continue
            try:
                group.commands[words[1]].make_context(f"interp {words[1]}", words[2:])
            except Exception as exc:
                pytest.fail(f"{block.where}: `{cmd}` does not parse: {exc}")


def test_help_examples_parse():
    """The examples in `interp COMMAND --help` name real options with valid values."""
    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():
        examples: list[str] = []
        continued = False
        for line in (ln.strip() for ln in (cmd.help or "").splitlines()):
            if continued:  # the previous line ended with a backslash
                examples[-1] = examples[-1].rstrip("\\") + " " + line
            elif line.startswith("interp "):
                examples.append(line)
            continued = line.endswith("\\") and bool(examples)
        assert examples, f"interp {name} --help shows no example"
        for example in examples:
            words = shlex.split(example, comments=True)
            assert words[1] == name, f"interp {name} --help: example {example!r}"
            cmd.make_context(f"interp {name}", words[2:])  # raises on a bad option or value


# The API reference is complete: every public name has a heading.

def test_api_reference_documents_every_public_name():
    headings = [ln for ln in (DOCS / "api.md").read_text().splitlines() if ln.startswith("#")]
    named = {n for ln in headings for n in re.findall(r"`(?:interp\.)?([A-Za-z_]+)", ln)}
    missing = sorted(set(interp.__all__) - named)
    assert not missing, f"docs/api.md has no heading for {missing}"


# Links and the index.

def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    heads = re.findall(r"^#+ (.*)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_relative_links_and_anchors_resolve():
    for page in PAGES:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path = (page.parent / target).resolve() if target else page
            if path.name in PENDING and path.parent == DOCS and not path.exists():
                continue
            assert path.exists(), f"{_page_id(page)}: broken link {target}"
            if anchor and path.suffix == ".md":
                assert anchor in _anchors(path), f"{_page_id(page)}: no #{anchor} in {target}"


def test_docs_index_links_every_page_and_readme_links_the_index():
    index = (DOCS / "README.md").read_text()
    for page in DOCS.glob("*.md"):
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not link {page.name}"
    for name in PENDING:
        assert f"]({name})" in index
    assert "](docs/README.md)" in (ROOT / "README.md").read_text()
