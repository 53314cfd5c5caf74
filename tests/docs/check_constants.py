#!/usr/bin/env python3
"""The numbers in docs/internals/ agree with the code.

A number in the design notes names the constant it comes from, in
backquotes, soon after it ("every 100 ms (`CHECKPOINT_EVERY_US`)"), so a
search finds both. This finds each such pair (the last number before a
backquoted CONSTANT_NAME, within a short distance, or "`NAME` (N)"), looks
the constant up as a #define in src/, shop/, include/ or cli/, and checks
the two agree, units
converted by the constant's suffix (_US, _MS, _S, _BYTES) and the number's
(ms, s, KiB, MiB). It fails naming every disagreement, and also when a
named constant no longer exists.

Usage: check_constants.py ROOT
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(sys.argv[1])
DEFINE = re.compile(r'^\s*#\s*define\s+([A-Z][A-Z0-9_]+)\s+(.+?)\s*(?:/\*.*)?$', re.M)
NAMED = re.compile(r'`([A-Z][A-Z0-9]*_[A-Z0-9_]+)`')
NUMBER = re.compile(r'(\d[\d,]*(?:\.\d+)?)\s*(ms|s|KiB|MiB)?\b')
WINDOW = 80  # characters before the name in which its number stands

UNIT = {None: 1, 'ms': 1e-3, 's': 1, 'KiB': 1024, 'MiB': 1024 * 1024}


def code_files():
    for folder in ('src', 'shop', 'include', 'cli'):
        yield from (ROOT / folder).rglob('*.[ch]')


def defines():
    found = {}
    for path in code_files():
        for name, value in DEFINE.findall(path.read_text(errors='replace')):
            found.setdefault(name, (value, path.relative_to(ROOT)))
    return found


def all_names():
    """Every identifier in the code (enum values, names of every kind)."""
    names = set()
    for path in code_files():
        names.update(re.findall(r'\b[A-Z][A-Z0-9_]+\b', path.read_text(errors='replace')))
    return names


def value_of(text):
    """The value of a #define made of integer arithmetic, else None."""
    expr = re.sub(r'(\d+)(?:LL|ULL|UL|L|U)\b', r'\1', text)
    if not re.fullmatch(r'[\d\s()+*/-]+', expr):
        return None
    return eval(expr)  # digits and operators only


def in_doc_units(name, value):
    """The constant's value in seconds (times) or as it is (sizes, counts)."""
    for suffix, scale in (('_US', 1e-6), ('_MS', 1e-3), ('_S', 1)):
        if name.endswith(suffix):
            return value * scale, 'time'
    return value, 'plain'


AFTER = re.compile(r'\s*\((\d[\d,]*(?:\.\d+)?)\s*(ms|s|KiB|MiB)?\)')


def check(doc, consts, names):
    problems = []
    text = doc.read_text()
    for m in NAMED.finditer(text):
        name = m.group(1)
        if name not in names:
            problems.append(f'{doc.name}: `{name}` is named but is nowhere in the code')
            continue
        after = AFTER.match(text, m.end())  # "`NAME` (2)"
        before = list(NUMBER.finditer(text[max(0, m.start() - WINDOW):m.start()]))
        if name not in consts or not (after or before):
            continue  # not a #define (an enum value, say), or no number by it
        raw, where = consts[name]
        value = value_of(raw)
        if value is None:
            continue  # not plain arithmetic: not ours to judge
        number, unit = (after or before[-1]).group(1), (after or before[-1]).group(2)
        said = float(number.replace(',', '')) * UNIT[unit]
        have, kind = in_doc_units(name, value)
        if kind == 'time' and unit is None:
            continue  # a count next to a time constant: not its number
        if abs(said - have) > 1e-9 * max(1, abs(have)):
            problems.append(f'{doc.name}: says {number}{" " + unit if unit else ""} next to '
                            f'`{name}`, but {where} defines it as {raw}')
    return problems


def main():
    consts, names = defines(), all_names()
    problems = []
    docs = sorted((ROOT / 'docs' / 'internals').glob('*.md'))
    for doc in docs:
        problems += check(doc, consts, names)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    print(f'numbers next to constants agree in {len(docs)} design notes')
    return 0


sys.exit(main())
