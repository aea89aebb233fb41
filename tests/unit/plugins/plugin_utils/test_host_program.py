"""The host-program archive (plugin_utils/_host_program): which files it holds and how it is built.

The archive's content is the import closure of the entry points, found in the source, so these
tests build it from small module_utils trees written here as well as from the collection's own.
"""

import io
import os
import subprocess
import sys
import zipfile

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.plugin_utils import _host_program as hp

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
TEMPLATE_DIRS = [os.path.join(REPO_ROOT, "roles", role, "templates") for role in ("publisher", "stratum0", "stratum1")]


def _tree(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(root)


def _names(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.namelist()


MAIN = 'if __name__ == "__main__":\n    main()\n'


def test_a_module_imported_only_indirectly_is_in_the_archive(tmp_path):
    source = _tree(tmp_path, {
        "_prog.py": "from ._direct import thing\n\ndef main():\n    pass\n\n" + MAIN,
        # imported inside a function, by a module the entry point imports
        "_direct.py": "def thing():\n    from ._indirect import other\n    return other\n",
        "_indirect.py": "from . import _deepest\nimport json\nother = 1\n",
        "_deepest.py": "VALUE = 2\n",
        "_unused.py": "VALUE = 3\n",
    })
    names = _names(hp.build_archive(source, "1.2.3"))
    assert "sharedsw_cvmfs/_deepest.py" in names
    assert "sharedsw_cvmfs/_indirect.py" in names
    assert "sharedsw_cvmfs/_unused.py" not in names


def test_subpackages_bring_their_init_files(tmp_path):
    source = _tree(tmp_path, {
        "_prog.py": "from ._sync.plan import make\n" + MAIN,
        "_sync/__init__.py": "from .rules import RULES\n",
        "_sync/rules.py": "from .._common import Error\nRULES = []\n",
        "_sync/plan.py": "from . import rules\n",
        "_common.py": "class Error(Exception):\n    pass\n",
    })
    names = _names(hp.build_archive(source, "1.2.3"))
    for name in ("_sync/__init__.py", "_sync/rules.py", "_sync/plan.py", "_common.py", "_prog.py"):
        assert "sharedsw_cvmfs/" + name in names


def test_a_file_changed_since_the_last_build_is_read_again(tmp_path):
    source = _tree(tmp_path, {"_prog.py": "x = 1\n" + MAIN, "_new.py": "VALUE = 1\n"})
    assert "sharedsw_cvmfs/_new.py" not in _names(hp.build_archive(source, "1.2.3"))
    (tmp_path / "_prog.py").write_text("from . import _new\n" + MAIN)   # another size: another key
    assert "sharedsw_cvmfs/_new.py" in _names(hp.build_archive(source, "1.2.3"))


def test_programs_are_the_modules_with_a_main_block(tmp_path):
    source = _tree(tmp_path, {"_a.py": MAIN, "_b.py": "x = 1\n", "_c.py": "import sys\n" + MAIN})
    assert hp.entry_points(source) == ["_a", "_c"]


def test_an_absolute_import_of_the_collection_is_refused_with_its_place(tmp_path):
    source = _tree(tmp_path, {
        "_prog.py": "from ._mid import x\n" + MAIN,
        "_mid.py": "from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import x\n",
    })
    with pytest.raises(hp.HostProgramError, match=r"_mid\.py line 1 .*relative import"):
        hp.build_archive(source, "1.2.3")


def test_an_import_of_a_missing_sibling_is_refused(tmp_path):
    source = _tree(tmp_path, {"_prog.py": "from ._gone import x\n" + MAIN})
    with pytest.raises(hp.HostProgramError, match=r"_prog\.py line 1 imports \._gone, which is not"):
        hp.build_archive(source, "1.2.3")


def test_the_archive_is_the_same_bytes_every_time_and_holds_only_code(tmp_path):
    source = _tree(tmp_path / "one", {"_prog.py": "from . import _b\n" + MAIN, "_b.py": "x = 1\n",
                                      "secrets.json": "{}", "__pycache__/_b.cpython-311.pyc": "junk"})
    first = hp.build_archive(source, "1.2.3")
    os.utime(os.path.join(source, "_b.py"), (0, 0))
    assert hp.build_archive(source, "1.2.3") == first
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == ["__main__.py", "sharedsw_cvmfs/__init__.py", "sharedsw_cvmfs/_b.py",
                                           "sharedsw_cvmfs/_prog.py"]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_the_collections_programs_include_every_program_the_units_run():
    """Each ``-m sharedsw_cvmfs.<program>`` of the roles' unit templates is a program of the archive."""
    run = set()
    for directory in TEMPLATE_DIRS:
        for name in os.listdir(directory):
            if name.endswith(".service.j2"):
                with open(os.path.join(directory, name)) as handle:
                    for line in handle:
                        if line.startswith("ExecStart="):
                            run.update(word.split(".", 1)[1] for word in line.split()
                                       if word.startswith(hp.PACKAGE + "."))
    assert run, "no unit template runs a host program"
    assert run <= set(hp.entry_points(hp.module_utils_dir()))


def test_every_unit_that_runs_a_program_has_the_archive_on_its_path():
    """A unit that runs ``-m sharedsw_cvmfs.<program>`` finds the package only in the archive: its
    PYTHONPATH must be the role's ``__<role>_program`` (the archive), not the directory around it."""
    checked = 0
    for directory in TEMPLATE_DIRS:
        role = os.path.basename(os.path.dirname(directory))
        for name in os.listdir(directory):
            if not name.endswith(".service.j2"):
                continue
            with open(os.path.join(directory, name)) as handle:
                text = handle.read()
            if " -m %s." % hp.PACKAGE not in text:
                continue
            checked += 1
            assert "PYTHONPATH={{ __%s_program }} " % role in text, "%s/%s: PYTHONPATH is not the archive" % (role, name)
    assert checked, "no unit template runs a host program"


def test_the_collection_version_is_in_the_archive():
    data = hp.build_archive(hp.module_utils_dir(), hp.collection_version())
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        init = archive.read("sharedsw_cvmfs/__init__.py").decode()
    assert '__version__ = "%s"' % hp.collection_version() in init


def _host_python():
    """The distribution's Python, which runs the programs on hosts; ours where there is none."""
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    path = tmp_path_factory.mktemp("program") / hp.ARCHIVE_NAME
    path.write_bytes(hp.build_archive(hp.module_utils_dir(), hp.collection_version()))
    return str(path)


@pytest.mark.parametrize("program", hp.entry_points(hp.module_utils_dir()))
def test_each_program_starts_from_the_archive_alone(archive, program, tmp_path):
    """``--help`` imports the program and everything it imports at load time: run it isolated from
    the collection (``-I``: no PYTHONPATH, no user site, no current directory), from an empty
    directory, as a zip application; then as the units run it (the archive on PYTHONPATH)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    as_zipapp = subprocess.run([_host_python(), "-I", archive, program, "--help"], cwd=str(empty),
                               capture_output=True, text=True, check=False, env={"PATH": "/usr/bin:/bin"})
    assert as_zipapp.returncode == 0, as_zipapp.stderr
    assert "usage:" in as_zipapp.stdout
    as_unit = subprocess.run([_host_python(), "-s", "-m", "%s.%s" % (hp.PACKAGE, program), "--help"], cwd=str(empty),
                             capture_output=True, text=True, check=False,
                             env={"PATH": "/usr/bin:/bin", "PYTHONPATH": archive})
    assert as_unit.returncode == 0, as_unit.stderr
    assert as_unit.stdout == as_zipapp.stdout


def test_every_module_a_program_may_import_later_is_in_the_archive(archive):
    """Modules imported inside functions are not loaded by ``--help``; import every module of the
    archive, isolated from the collection, so a lazily imported one cannot be missing either."""
    with zipfile.ZipFile(archive) as handle:
        modules = [name[:-3].replace("/", ".") for name in handle.namelist()
                   if name.startswith(hp.PACKAGE + "/") and name.endswith(".py") and not name.endswith("__init__.py")]
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    proc = subprocess.run([_host_python(), "-I", "-c", "import sys; sys.path.insert(0, %r)\n%s" % (archive, code)]
                          + modules, cwd="/", capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_the_archive_says_its_version_and_lists_its_programs(archive):
    version = subprocess.run([_host_python(), "-I", archive, "--version"], capture_output=True, text=True, check=False)
    assert version.stdout.strip() == hp.collection_version()
    usage = subprocess.run([_host_python(), "-I", archive, "no_such_program"], capture_output=True, text=True, check=False)
    assert usage.returncode == 2
    assert "PROGRAM is one of: %s" % ", ".join(hp.entry_points(hp.module_utils_dir())) in usage.stderr
