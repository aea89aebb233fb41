# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The programs that run on hosts, as one zip archive built from the collection's module_utils.

Internal to sharedsw.cvmfs; may change in any release. Controller side only; pure Python.

The programs (the publish job, the notification consumer, the sync command, the checks) are the
module_utils files that end in an ``if __name__ == "__main__":`` block. The archive holds them and
every module_utils file they import, directly or not (found by reading the source, so a new or
split file follows without a list to keep), as the package ``sharedsw_cvmfs``, plus a
``__main__.py``. On a host it is both

* a sys.path entry: ``PYTHONPATH=<archive> python3 -m sharedsw_cvmfs._publish_job ...`` (the units);
* a zip application: ``python3 <archive> _publish_job ...`` and ``python3 <archive> --version``.

The bytes depend only on the source files and the version (sorted entries, fixed timestamps and
permissions), so deploying it again changes nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import io
import json
import os
import zipfile

PACKAGE = "sharedsw_cvmfs"
ARCHIVE_NAME = "sharedsw-cvmfs.pyz"
_COLLECTION_PREFIX = "ansible_collections.sharedsw.cvmfs."
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644

_MAIN = '''\
"""Run a sharedsw.cvmfs host program: python3 %(archive)s PROGRAM [ARGUMENTS] (or --version)."""
import runpy
import sys

from %(package)s import PROGRAMS, __version__


def main():
    args = sys.argv[1:]
    if args[:1] == ["--version"]:
        print(__version__)
        return 0
    if not args or args[0] not in PROGRAMS:
        sys.stderr.write("usage: python3 %%s PROGRAM [ARGUMENTS]\\nPROGRAM is one of: %%s\\n"
                         %% (sys.argv[0], ", ".join(PROGRAMS)))
        return 2
    sys.argv = args
    runpy.run_module("%(package)s." + args[0], run_name="__main__", alter_sys=True)
    return 0


sys.exit(main())
'''

_INIT = '''\
"""The host programs of the Ansible collection sharedsw.cvmfs %(version)s, built from its
module_utils by the action sharedsw.cvmfs.host_program; do not edit."""
__version__ = "%(version)s"
PROGRAMS = %(programs)r
'''


class HostProgramError(Exception):
    """The module_utils files cannot make a working host program; the message says where."""


def collection_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def module_utils_dir():
    return os.path.join(collection_root(), "plugins", "module_utils")


def collection_version(root=None):
    """The version of the collection: MANIFEST.json of an installed copy, else galaxy.yml of a checkout."""
    root = root or collection_root()
    manifest = os.path.join(root, "MANIFEST.json")
    if os.path.exists(manifest):
        with open(manifest) as handle:
            return json.load(handle)["collection_info"]["version"]
    import yaml  # controller side: PyYAML comes with ansible-core
    with open(os.path.join(root, "galaxy.yml")) as handle:
        return str(yaml.safe_load(handle)["version"])


def entry_points(source_dir):
    """Names of the top-level modules of ``source_dir`` that run as programs (a ``__main__`` block)."""
    names = []
    for name in sorted(os.listdir(source_dir)):
        path = os.path.join(source_dir, name)
        if name.endswith(".py") and os.path.isfile(path) and _has_main_block(_parse(path)):
            names.append(name[:-3])
    return names


def build_archive(source_dir, version, programs=None, modules=None):
    """The archive's bytes: ``programs`` (default: :func:`entry_points`) and their import closure
    (``modules``, as :func:`import_closure` gives it, when the caller has it already)."""
    programs = list(programs if programs is not None else entry_points(source_dir))
    modules = modules if modules is not None else import_closure(source_dir, programs)
    files = dict((PACKAGE + "/" + relative, _read(os.path.join(source_dir, relative))) for relative in modules)
    files["__main__.py"] = (_MAIN % {"archive": ARCHIVE_NAME, "package": PACKAGE}).encode()
    files[PACKAGE + "/__init__.py"] = (_INIT % {"version": version, "programs": tuple(programs)}).encode()
    return _zip(files)


def import_closure(source_dir, programs):
    """Paths (relative to ``source_dir``, ``/``-separated, sorted) of ``programs`` and all they import."""
    seen = set()
    todo = [(program,) for program in programs]
    for program in todo:
        if _module_file(source_dir, program) is None:
            raise HostProgramError("host program %s: no file %s.py in %s" % (program[0], program[0], source_dir))
    while todo:
        parts = todo.pop()
        relative = _module_file(source_dir, parts)
        if relative in seen:
            continue
        seen.add(relative)
        todo.extend(_parent_packages(parts))
        todo.extend(_imported_modules(source_dir, parts, relative))
    return sorted(seen)


def _imported_modules(source_dir, parts, relative):
    """The module_utils modules that the module ``parts`` (file ``relative``) imports, anywhere in it."""
    package = parts if relative.endswith("/__init__.py") else parts[:-1]
    found = []
    for node in _import_statements(os.path.join(source_dir, relative)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                _refuse_absolute(alias.name, relative, node)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                _refuse_absolute(node.module or "", relative, node)
                continue
            found.extend(_from_import_targets(source_dir, package, node, relative))
    return found


def _from_import_targets(source_dir, package, node, relative):
    if node.level - 1 > len(package):
        raise HostProgramError("%s line %d: the relative import goes above module_utils" % (relative, node.lineno))
    base = package[:len(package) - (node.level - 1)]
    target = base + tuple(node.module.split(".")) if node.module else base
    dotted = "." * node.level + (node.module or "")
    if target and _module_file(source_dir, target) is None:
        raise HostProgramError("%s line %d imports %s, which is not a module_utils file" % (relative, node.lineno, dotted))
    found = [target] if target else []
    for alias in node.names:
        if _module_file(source_dir, target + (alias.name,)) is not None:
            found.append(target + (alias.name,))
    return found


def _refuse_absolute(module, relative, node):
    if (module + ".").startswith(_COLLECTION_PREFIX):
        raise HostProgramError("%s line %d imports %s: on hosts the collection is not installed, so a module "
                               "used by a host program must reach its siblings by relative import "
                               "(from ._name import ...)" % (relative, node.lineno, module))


def _parent_packages(parts):
    return [parts[:end] for end in range(1, len(parts))]


def _module_file(source_dir, parts):
    """``a/b.py`` or ``a/b/__init__.py`` for the module ``("a", "b")``, or None."""
    for candidate in ("/".join(parts) + ".py", "/".join(parts) + "/__init__.py"):
        if os.path.isfile(os.path.join(source_dir, candidate)):
            return candidate
    return None


def _has_main_block(tree):
    for node in tree.body:
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"
                and len(node.test.comparators) == 1 and isinstance(node.test.comparators[0], ast.Constant)
                and node.test.comparators[0].value == "__main__"):
            return True
    return False


# Every role that installs the host programs builds the archive (about 130 files): each file is
# parsed and walked once per controller process, not once per question asked of it.
_PARSED = {}


def _parsed(path):
    """The file's syntax tree and its import statements (anywhere in it, also inside functions)."""
    status = os.stat(path)
    key = (path, status.st_mtime_ns, status.st_size)
    if key not in _PARSED:
        try:
            tree = ast.parse(_read(path), filename=path)
        except SyntaxError as error:
            raise HostProgramError("%s cannot be read as Python: %s" % (path, error))
        _PARSED[key] = (tree, [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))])
    return _PARSED[key]


def _parse(path):
    return _parsed(path)[0]


def _import_statements(path):
    return _parsed(path)[1]


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def _zip(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.external_attr = _FILE_MODE << 16
            info.create_system = 3  # Unix, whatever the controller is
            archive.writestr(info, files[name], compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return buffer.getvalue()
