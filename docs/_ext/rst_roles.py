"""Griffe extension: the docstrings' reST roles as Markdown, for the API site (mkdocs.yml).

The docstrings keep PyG's reST habits (``:math:`x```, ``.. math::``, ``:class:`Foo```); the
site renders Google-style Markdown.  After griffe has loaded ``dnwgraph`` this rewrites every
docstring once, before mkdocstrings parses it:

* ``:math:`x``` becomes ``$x$`` and a ``.. math::`` block a ``$$ ... $$`` block, both typeset by
  ``pymdownx.arithmatex``;
* ``:class:``, ``:func:``, ``:meth:``, ``:attr:``, ``:data:``, ``:mod:``, ``:exc:`` and ``:obj:``
  become a cross-reference (``[`Foo`][dnwgraph.x.Foo]``, resolved by mkdocs-autorefs) when the
  target is rendered on an API page, and inline code otherwise (``torch.Tensor``, private
  helpers).  Names resolve as Python would, in the scope of the docstring's object; ``~`` keeps
  the last component as the title; functions and methods get ``()``, as Sphinx writes them.

A required reference fails the strict build, so a renamed target is caught; the source files
are not edited.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import griffe

ROLE = re.compile(r":(?P<role>math|class|func|meth|attr|data|mod|exc|obj):`(?P<text>[^`]+)`")
DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<rest>.*)$")
LINK_ROLES = ("class", "func", "meth", "attr", "data", "mod", "exc", "obj")


def convert_math_blocks(text: str) -> str:
    """Replace every ``.. math::`` directive (and its indented body) by a ``$$`` block at the
    directive's indentation, with a blank line on each side."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        match = DIRECTIVE.match(lines[i])
        if match is None:
            out.append(lines[i])
            i += 1
            continue
        indent, body = match["indent"], [match["rest"]] if match["rest"] else []
        i += 1
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > len(indent)):
            body.append(lines[i])
            i += 1
        maths = textwrap.dedent("\n".join(body)).strip("\n").splitlines()
        if out and out[-1].strip():
            out.append("")
        out += [f"{indent}$$", *(f"{indent}{m}".rstrip() for m in maths), f"{indent}$$", ""]
    return "\n".join(out).rstrip("\n") + ("\n" if text.endswith("\n") else "")


def convert_roles(text: str, link: Callable[[str, str], str]) -> str:
    """Replace the inline roles: ``:math:`` by ``$...$`` (a line break inside becomes a
    space) and the others by ``link(role, target)``."""

    def replace(match: re.Match[str]) -> str:
        if match["role"] == "math":
            return "$" + re.sub(r"\s*\n\s*", " ", match["text"].strip()) + "$"
        return link(match["role"], match["text"])

    return ROLE.sub(replace, text)


def convert(text: str, link: Callable[[str, str], str]) -> str:
    """A reST docstring as Markdown: math blocks, then inline roles."""
    return convert_roles(convert_math_blocks(text), link)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def split_target(text: str) -> tuple[str, str]:
    """``(title, target)`` of a role's text: ``Title <target>``, ``~a.b`` (title ``b``),
    ``!a.b`` (no link) or ``a.b``."""
    explicit = re.fullmatch(r"(?P<title>.+?)\s*<(?P<target>[^>]+)>", text.strip())
    if explicit:
        return explicit["title"], explicit["target"]
    target = text.strip().lstrip("!")
    if target.startswith("~"):
        target = target[1:]
        return target.rsplit(".", 1)[-1], target
    return target, target


class RstRoles(griffe.Extension):
    """Rewrite the reST roles of every docstring of the loaded packages (see the module)."""

    def __init__(self, api_dir: str = "docs/api") -> None:
        super().__init__()
        self.api_dir = Path(api_dir)

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        rendered = rendered_paths(loader.modules_collection, self.api_dir)
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value, _linker(obj, rendered, loader))
                obj.docstring.__dict__.pop("parsed", None)  # parsed lazily: drop a stale cache


def _walk(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)  # type: ignore[arg-type]


def rendered_paths(collection: griffe.ModulesCollection, api_dir: Path) -> set[str]:
    """Canonical paths of the objects that the API pages render: each ``::: path`` and, below
    it, every public member with a docstring but no submodule (what mkdocstrings shows by
    default)."""
    paths: set[str] = set()

    def add(obj: Any) -> None:
        obj = obj.final_target if obj.is_alias else obj
        paths.add(obj.canonical_path)
        if obj.kind in (griffe.Kind.CLASS, griffe.Kind.MODULE):
            for name, member in obj.members.items():
                if member.is_alias or member.is_module or name.startswith("_"):
                    continue  # a package's submodules are not shown
                if member.docstring is None:
                    continue
                add(member)

    for page in sorted(api_dir.glob("*.md")):
        for path in re.findall(r"^::: (\S+)", page.read_text(), re.M):
            try:
                add(collection[path])
            except (KeyError, griffe.AliasResolutionError):
                continue
    return paths


def _linker(obj: griffe.Object, rendered: set[str], loader: griffe.GriffeLoader):
    def link(role: str, text: str) -> str:
        title, target = split_target(text)
        if role in ("func", "meth") and not title.endswith(")"):
            title += "()"
        path = _resolve(obj, target, loader)
        if path in rendered and not text.strip().startswith("!"):
            return f"[`{title}`][{path}]"
        return f"`{title}`"

    return link


def _resolve(obj: griffe.Object, target: str, loader: griffe.GriffeLoader) -> str | None:
    """The canonical path of ``target`` seen from ``obj``'s scope, or ``None``.  A name of the
    top-level package that griffe cannot see (``dnwgraph`` resolves its names lazily) is looked
    up in the package's public subpackages."""
    head, _, tail = target.partition(".")
    try:
        path = obj.resolve(head)
    except griffe.NameResolutionError:
        path = head
    full = f"{path}.{tail}" if tail else path
    candidates = [full]
    top, _, rest = full.partition(".")
    if rest and top in loader.modules_collection.members:
        package = loader.modules_collection[top]
        candidates += [
            f"{top}.{name}.{rest}"
            for name, sub in package.members.items()
            if not name.startswith("_") and not sub.is_alias and sub.is_module
        ]
    for candidate in candidates:
        try:
            return loader.modules_collection[candidate].canonical_path
        except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
    return None
