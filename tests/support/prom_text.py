"""A small, strict parser of the Prometheus text exposition format (version 0.0.4), for tests.

Written from the format's description, independently of the code under test: every sample line
must belong to a family announced by ``# HELP`` and ``# TYPE`` lines before it, names and label
names must be valid, label values properly escaped, values numbers. Returns
``{name: {"help": str, "type": str, "samples": [(labels_dict, float)]}}``; raises ``ValueError``
naming the line that is wrong.
"""

import math
import re

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
_SAMPLE = re.compile(r"^(%s)(\{(.*)\})? (\S+)( -?[0-9]+)?$" % NAME)
_LABEL = re.compile(r'(%s)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)' % LABEL_NAME)
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def _labels(text, number):
    labels = {}
    position = 0
    while position < len(text):
        match = _LABEL.match(text, position)
        if not match:
            raise ValueError("line %d: bad label set {%s}" % (number, text))
        name, value = match.group(1), re.sub(r'\\\\|\\"|\\n', lambda m: _UNESCAPE[m.group(0)], match.group(2))
        if name in labels:
            raise ValueError("line %d: label %s twice" % (number, name))
        labels[name] = value
        position = match.end()
    return labels


def _value(text, number):
    special = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    if text in special:
        return special[text]
    try:
        return float(text)
    except ValueError:
        raise ValueError("line %d: value %r is not a number" % (number, text))


def _family_of(name, families):
    for suffix in ("", "_bucket", "_sum", "_count"):
        base = name[:len(name) - len(suffix)] if suffix and name.endswith(suffix) else name
        if base in families and families[base]["type"] is not None:
            return families[base]
    return None


def parse(text):
    if text and not text.endswith("\n"):
        raise ValueError("the text does not end with a line break")
    families = {}
    seen = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        meta = re.match(r"^# (HELP|TYPE) (%s) ?(.*)$" % NAME, line)
        if meta:
            kind, name, rest = meta.groups()
            family = families.setdefault(name, {"help": None, "type": None, "samples": []})
            if family["samples"]:
                raise ValueError("line %d: %s after samples of %s" % (number, kind, name))
            if kind == "TYPE":
                if rest not in TYPES or family["type"] is not None:
                    raise ValueError("line %d: bad or repeated TYPE %r" % (number, rest))
                family["type"] = rest
            else:
                family["help"] = rest
            continue
        if line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            raise ValueError("line %d: not a sample line: %r" % (number, line))
        name = match.group(1)
        family = _family_of(name, families)
        if family is None or family["help"] is None:
            raise ValueError("line %d: sample %s without HELP and TYPE before it" % (number, name))
        labels = _labels(match.group(3) or "", number)
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise ValueError("line %d: duplicate sample %s%s" % (number, name, labels))
        seen.add(key)
        family["samples"].append((labels, _value(match.group(4), number)))
    return families


def value(families, name, **labels):
    """The value of the one sample of ``name`` whose labels include ``labels``."""
    found = [v for sample_labels, v in families[name]["samples"]
             if all(sample_labels.get(k) == w for k, w in labels.items())]
    if len(found) != 1:
        raise KeyError("%d samples of %s with %s" % (len(found), name, labels))
    return found[0]
