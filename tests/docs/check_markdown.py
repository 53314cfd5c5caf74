#!/usr/bin/env python3
"""check_markdown.py: the README and docs/ render as CommonMark and link only
inside the repository.

For each Markdown file given, cmark (the CommonMark reference renderer)
parses it to XML, and:
  - every heading of the source (a line starting with '#', outside fences)
    is a heading in the rendering: a fence left open swallows the rest of
    the file, headings included;
  - no code block holds a line that looks like a fence (a closing fence
    with text after it does not close anything);
  - every link and image is relative, names a file or folder that exists in
    the repository, and an anchor names a heading of the target;
  - with --readme: the README links docs/rfc/RFC-002-event-driven-architecture.md.
Prints one line per problem and exits 1 if there was any.

usage: check_markdown.py REPO_ROOT [--readme README.md] FILE.md...
"""
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

NS = "{http://commonmark.org/xml/1.0}"


def render(path):
    out = subprocess.run(["cmark", "--to", "xml", path], check=True, capture_output=True)
    return ET.fromstring(out.stdout)


def text_of(node):
    """The text of an inline node: its text and code parts (the XML's
    indentation is not text)."""
    parts = []
    for n in node.iter():
        if n.tag in (NS + "text", NS + "code"):
            parts.append(n.text or "")
        elif n.tag in (NS + "softbreak", NS + "linebreak"):
            parts.append(" ")
    return "".join(parts)


def slug(title):
    """GitHub's anchor for a heading."""
    s = title.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def source_headings(path):
    headings, fence = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^(`{3,}|~{3,})", line)
            if m:
                if fence is None:
                    fence = m.group(1)[0] * len(m.group(1))
                elif line.strip() == fence[0] * len(line.strip()) and len(line.strip()) >= len(fence):
                    fence = None
                continue
            if fence is None and re.match(r"^#{1,6} ", line):
                headings.append(line.lstrip("#").strip())
    return headings


def anchors(path, cache={}):
    if path not in cache:
        cache[path] = {slug(text_of(h)) for h in render(path).iter(NS + "heading")}
    return cache[path]


def check(root, path, problems):
    doc = render(path)
    rendered = [text_of(h).strip() for h in doc.iter(NS + "heading")]
    for h in source_headings(path):
        plain = re.sub(r"[`*_]", "", h)
        if not any(re.sub(r"[`*_]", "", r) == plain for r in rendered):
            problems.append(f"{path}: heading '{h}' is not rendered as one (a fence left open?)")
    for block in doc.iter(NS + "code_block"):
        for line in (block.text or "").splitlines():
            if re.match(r"^\s*(```|~~~)", line):
                problems.append(f"{path}: a code block holds a fence line: '{line.strip()}'")
    links = [n.get("destination") for n in doc.iter(NS + "link")]
    links += [n.get("destination") for n in doc.iter(NS + "image")]
    for dest in links:
        if re.match(r"^[a-z][a-z0-9+.-]*:", dest, re.I):
            problems.append(f"{path}: link to '{dest}' leaves the repository")
            continue
        target, _, anchor = dest.partition("#")
        full = os.path.normpath(os.path.join(os.path.dirname(path), target)) if target else path
        if not os.path.realpath(full).startswith(os.path.realpath(root) + os.sep):
            problems.append(f"{path}: link to '{dest}' leaves the repository")
        elif not os.path.exists(full):
            problems.append(f"{path}: link to '{dest}': no such file")
        elif anchor and full.endswith(".md") and anchor not in anchors(full):
            problems.append(f"{path}: link to '{dest}': no such heading")
    return [n.get("destination") for n in doc.iter(NS + "link")]


def main(argv):
    root, files, readme = argv[1], [], None
    args = iter(argv[2:])
    for a in args:
        if a == "--readme":
            readme = next(args)
            files.append(readme)
        else:
            files.append(a)
    problems = []
    for path in files:
        links = check(root, path, problems)
        if path == readme and "docs/rfc/RFC-002-event-driven-architecture.md" not in links:
            problems.append(f"{path}: does not link docs/rfc/RFC-002-event-driven-architecture.md")
    for p in problems:
        print(p)
    print(f"checked {len(files)} Markdown files: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
