# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Prometheus text exposition format, written for node_exporter's textfile collector.

Internal to sharedsw.cvmfs; may change in any release. Pure Python, no Ansible import. Owns
:class:`Families` (the metric names a program may set, with their HELP and TYPE, and the samples
set) and :func:`write_textfile` (the whole file in one rename, so the collector never reads half
of it). The format is written directly: it is a few lines of text per family
(https://prometheus.io/docs/instrumenting/exposition_formats/), and hosts then need no
``prometheus_client`` package.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ._cvmfs_state import write_file_atomic


def _escape_help(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(value):
    return str(value).replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def format_value(value):
    """A sample value as the format spells it: integers as they are, ``+Inf``, ``-Inf``, ``NaN``."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if value.is_integer() and abs(value) < 2 ** 53 else repr(value)


class Families:
    """Metric families, in the order given as ``(name, type, help)``; only those with samples are written."""

    def __init__(self, catalogue):
        self.catalogue = list(catalogue)
        self.samples = dict((name, []) for name, _kind, _help in self.catalogue)

    def set(self, name, value, **labels):
        """Add the sample ``name{labels} value`` (``KeyError`` for a name not in the catalogue)."""
        self.samples[name].append((sorted(labels.items()), value))

    def has(self, name):
        return bool(self.samples[name])

    def render(self):
        lines = []
        for name, kind, help_text in self.catalogue:
            if not self.samples[name]:
                continue
            lines.append("# HELP %s %s" % (name, _escape_help(help_text)))
            lines.append("# TYPE %s %s" % (name, kind))
            for labels, value in self.samples[name]:
                label_text = ",".join('%s="%s"' % (key, _escape_label(val)) for key, val in labels)
                lines.append("%s%s %s" % (name, "{%s}" % label_text if label_text else "", format_value(value)))
        return "".join(line + "\n" for line in lines)


def write_textfile(path, text):
    """Replace ``path`` (mode 0644) with ``text`` by a rename from a temporary file in the same
    directory whose name starts with a dot and does not end in ``.prom``, so the collector skips it."""
    write_file_atomic(path, text, mode=0o644)
