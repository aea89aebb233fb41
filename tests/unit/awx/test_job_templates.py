"""The AWX job templates as code (playbooks/vars/awx.yml, applied by playbooks/awx_configure.yml),
checked against the awx.awx modules' own option schemas and AWX's survey rules, without an AWX."""

import os
import re

import pytest
import yaml
from ansible.parsing.yaml.loader import AnsibleLoader

from tests.conftest import REPO_ROOT

# Playbooks the job templates call that other work delivers; until they exist in the repository,
# the checks that need the file are skipped for them (they run as soon as the file is there).
PLANNED_PLAYBOOKS = {
    "playbooks/site.yml": "the whole service (branch lab)",
    "playbooks/add_repository.yml": "day-2: add a repository",
    "playbooks/publish.yml": "day-2: publish now",
    "playbooks/resign.yml": "day-2: re-sign whitelists",
}

SURVEY_TYPES = ("text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect")

# AWX's survey rules (awx/api/views: JobTemplateSurveySpec._validate_spec_data), as a JSON schema
SURVEY_SCHEMA = {
    "type": "object",
    "required": ["name", "description", "spec"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "spec": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["question_name", "variable", "type", "required"],
            "additionalProperties": False,
            "properties": {
                "question_name": {"type": "string", "minLength": 1},
                "question_description": {"type": "string"},
                "variable": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
                "type": {"enum": list(SURVEY_TYPES)},
                "required": {"type": "boolean"},
                "min": {"type": ["integer", "number"]},
                "max": {"type": ["integer", "number"]},
                "default": {},
                "choices": {"oneOf": [{"type": "array", "items": {"type": "string"}, "minItems": 1},
                                      {"type": "string"}]},
            },
        }},
    },
}

TEMPLATE_KEYS_NOT_MODULE_OPTIONS = {"credentials"}  # kinds of cvmfs_awx_credentials, mapped to names by the playbook


def load_vars(path):
    with open(path, encoding="utf-8") as handle:
        return AnsibleLoader(handle).get_single_data()


def module_options(fqcn):
    namespace, collection, name = fqcn.split(".")
    import ansible_collections

    for base in ansible_collections.__path__:
        path = os.path.join(base, namespace, collection, "plugins", "modules", name + ".py")
        if os.path.exists(path):
            source = open(path, encoding="utf-8").read()
            match = re.search(r"DOCUMENTATION\s*=\s*r?'''(.*?)'''", source, re.S) or \
                re.search(r'DOCUMENTATION\s*=\s*r?"""(.*?)"""', source, re.S)
            doc = yaml.safe_load(match.group(1))
            options = dict(doc["options"])
            for option in list(options.values()):
                for alias in option.get("aliases", []):
                    options[alias] = option
            return options
    raise AssertionError("module %s is not installed" % fqcn)


@pytest.fixture(scope="module")
def awx():
    return load_vars(os.path.join(REPO_ROOT, "playbooks", "vars", "awx.yml"))


@pytest.fixture(scope="module")
def configure_tasks():
    with open(os.path.join(REPO_ROOT, "playbooks", "awx_configure.yml"), encoding="utf-8") as handle:
        plays = AnsibleLoader(handle).get_single_data()
    return plays[0]["tasks"]


def templates(awx):
    return awx["cvmfs_awx_job_templates"]


def test_the_five_required_templates_and_unique_names(awx):
    names = [t["name"] for t in templates(awx)]
    assert len(names) == len(set(names))
    playbooks = set(t["playbook"] for t in templates(awx))
    assert {"playbooks/site.yml", "playbooks/add_repository.yml", "playbooks/publish.yml", "playbooks/resign.yml",
            "playbooks/provision_openstack.yml"} <= playbooks


def test_template_keys_are_options_of_awx_job_template_with_the_right_types(awx):
    options = module_options("awx.awx.job_template")
    python_types = {"bool": bool, "dict": dict, "str": str, "int": int, "list": list}
    for template in templates(awx):
        for key, value in template.items():
            if key in TEMPLATE_KEYS_NOT_MODULE_OPTIONS:
                continue
            assert key in options, "%s: %s is not an option of awx.awx.job_template" % (template["name"], key)
            wanted = python_types.get(options[key].get("type", "str"))
            if wanted is not None:
                assert isinstance(value, wanted), "%s: %s must be %s" % (template["name"], key, wanted.__name__)
            if "choices" in options[key]:
                assert value in options[key]["choices"]


def test_configure_playbook_uses_only_real_module_options(configure_tasks):
    for task in configure_tasks:
        module = [k for k in task if k.startswith(("awx.awx.", "ansible.builtin."))]
        assert len(module) == 1, task.get("name")
        if not module[0].startswith("awx.awx."):
            continue
        options = module_options(module[0])
        unknown = sorted(set(task[module[0]]) - set(options))
        assert not unknown, "%s: unknown options %s of %s" % (task["name"], unknown, module[0])


def test_playbooks_exist_or_are_planned(awx):
    for template in templates(awx):
        path = os.path.join(REPO_ROOT, template["playbook"])
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                plays = AnsibleLoader(handle).get_single_data()
            assert isinstance(plays, list) and plays, "%s is not a playbook" % template["playbook"]
            assert all("hosts" in play or "ansible.builtin.import_playbook" in play or "import_playbook" in play
                       for play in plays), "%s: every play needs hosts" % template["playbook"]
        else:
            assert template["playbook"] in PLANNED_PLAYBOOKS, (
                "%s calls %s, which neither exists nor is planned" % (template["name"], template["playbook"]))


def test_planned_playbooks_are_all_used(awx):
    used = set(t["playbook"] for t in templates(awx))
    assert set(PLANNED_PLAYBOOKS) <= used, "stale entries in PLANNED_PLAYBOOKS: %s" % (set(PLANNED_PLAYBOOKS) - used)


def test_credentials_name_known_kinds(awx):
    for template in templates(awx):
        assert set(template.get("credentials", [])) <= set(awx["cvmfs_awx_credentials"]), template["name"]


def survey_problems(spec):
    import jsonschema

    problems = [e.message for e in jsonschema.Draft7Validator(SURVEY_SCHEMA).iter_errors(spec)]
    if problems:
        return problems
    variables = [q["variable"] for q in spec["spec"]]
    if len(variables) != len(set(variables)):
        problems.append("duplicate survey variables %s" % variables)
    for question in spec["spec"]:
        where = question["variable"]
        kind = question["type"]
        default = question.get("default")
        if kind in ("multiplechoice", "multiselect"):
            choices = question.get("choices")
            if not choices:
                problems.append("%s: %s needs choices" % (where, kind))
                continue
            if isinstance(choices, str):
                choices = choices.split("\n")
            values = default.split("\n") if kind == "multiselect" and isinstance(default, str) else [default]
            if default not in (None, "") and not set(values) <= set(choices):
                problems.append("%s: default %r is not among the choices %s" % (where, default, choices))
        elif kind in ("integer", "float"):
            if default not in (None, "") and (isinstance(default, bool) or not isinstance(default, (int, float))):
                problems.append("%s: default must be a number" % where)
            elif default not in (None, ""):
                if "min" in question and default < question["min"]:
                    problems.append("%s: default below min" % where)
                if "max" in question and default > question["max"]:
                    problems.append("%s: default above max" % where)
        else:
            if default is not None and not isinstance(default, str):
                problems.append("%s: default of a %s question must be a string" % (where, kind))
            elif default:
                if "min" in question and len(default) < question["min"]:
                    problems.append("%s: default shorter than min" % where)
                if "max" in question and len(default) > question["max"]:
                    problems.append("%s: default longer than max" % where)
        if "min" in question and "max" in question and question["min"] > question["max"]:
            problems.append("%s: min above max" % where)
        if kind == "password" and default not in (None, ""):
            problems.append("%s: a password question must not carry a default in code" % where)
    return problems


def test_surveys_are_valid(awx):
    with_survey = [t for t in templates(awx) if t.get("survey_spec")]
    assert {t["playbook"] for t in with_survey} >= {"playbooks/add_repository.yml"}
    for template in with_survey:
        assert template.get("survey_enabled") is True, template["name"]
        assert survey_problems(template["survey_spec"]) == [], template["name"]


def survey(*questions):
    return {"name": "x", "description": "", "spec": list(questions)}


def question(**fields):
    base = {"question_name": "q", "variable": "v", "type": "text", "required": True}
    base.update(fields)
    return base


@pytest.mark.parametrize("spec, problem", [
    (survey(), "should be non-empty"),
    (survey(question(type="date")), "is not one of"),
    (survey(question(type="multiplechoice", choices=["a"], default="b")), "not among the choices"),
    (survey(question(type="integer", min=1, max=5, default=9)), "above max"),
    (survey(question(), question()), "duplicate survey variables"),
    (survey(question(variable="bad-name")), "does not match"),
    (survey(question(type="password", default="hunter2")), "must not carry"),
    (survey(question(max=3, default="toolong")), "longer than max"),
])
def test_the_survey_checks_catch_mistakes(spec, problem):
    assert any(problem in p for p in survey_problems(spec)), survey_problems(spec)


def test_variables_of_existing_playbooks_are_consumed(awx):
    """Survey and extra variables must be read by the playbook (or its roles), not silently ignored."""
    for template in templates(awx):
        path = os.path.join(REPO_ROOT, template["playbook"])
        if not os.path.exists(path):
            continue
        text = open(path, encoding="utf-8").read()
        for root, _dirs, files in os.walk(os.path.join(REPO_ROOT, "roles")):
            for name in files:
                if name.endswith((".yml", ".yaml")):
                    text += open(os.path.join(root, name), encoding="utf-8").read()
        variables = list((template.get("extra_vars") or {}))
        variables += [q["variable"] for q in (template.get("survey_spec") or {}).get("spec", [])]
        for variable in variables:
            assert variable in text, "%s sets %s, which %s never reads" % (template["name"], variable,
                                                                           template["playbook"])


def test_schedule_targets_a_defined_template(awx, configure_tasks):
    schedule = [t for t in configure_tasks if "awx.awx.schedule" in t][0]["awx.awx.schedule"]
    assert schedule["unified_job_template"] in [t["name"] for t in templates(awx)]
    assert re.match(r"^DTSTART[;:].*\sRRULE:FREQ=", awx["cvmfs_awx_resign_schedule"])


def test_vault_credential_type_injects_only_defined_inputs(awx):
    kind = awx["cvmfs_awx_vault_credential_type"]
    fields = set(f["id"] for f in kind["inputs"]["fields"])
    assert set(kind["inputs"]["required"]) <= fields
    files = set(key.split(".", 1)[1] for key in kind["injectors"].get("file", {}))
    for section in kind["injectors"].values():
        for value in section.values():
            for name in re.findall(r"{{\s*([\w.]+)\s*}}|{%\s*if\s+([\w.]+)", str(value)):
                name = name[0] or name[1]
                if name.startswith("tower.filename."):
                    assert name.split(".", 2)[2] in files, name
                else:
                    assert name in fields, name
    assert set(kind["injectors"]["env"]) == {"VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT"}
