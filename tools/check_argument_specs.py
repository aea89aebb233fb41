#!/usr/bin/env python
"""Every role documents exactly the variables it defaults, each prefixed with the role's name.

For each roles/<role>: the keys of defaults/main.yml must equal the options of the `main`
entry point in meta/argument_specs.yml, and every one must start with `<role>_`.
Private role variables (`__<role>_*`) belong in vars/ and are not checked here.
"""

import os
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def problems_of(role_dir):
    role = os.path.basename(role_dir)
    spec = load(os.path.join(role_dir, "meta", "argument_specs.yml"))
    if spec is None:
        return ["meta/argument_specs.yml is missing"]
    documented = set((spec.get("argument_specs", {}).get("main", {}) or {}).get("options", {}) or {})
    defaults = set(load(os.path.join(role_dir, "defaults", "main.yml")) or {})
    found = ["variable %s has a default but no argument spec" % v for v in sorted(defaults - documented)]
    found += ["variable %s is documented but has no default (give it one, or mark it required)" % v
              for v in sorted(documented - defaults)
              if not spec["argument_specs"]["main"]["options"][v].get("required")]
    found += ["variable %s is not prefixed with %s_" % (v, role)
              for v in sorted(documented | defaults) if not v.startswith(role + "_")]
    return found


def main():
    roles_dir = os.path.join(ROOT, "roles")
    failed = False
    roles = sorted(d for d in os.listdir(roles_dir) if not d.startswith((".", "_"))) if os.path.isdir(roles_dir) else []
    for role in roles:
        for problem in problems_of(os.path.join(roles_dir, role)):
            print("roles/%s: %s" % (role, problem))
            failed = True
    print("argument specs: %d role(s) checked, %s" % (len(roles), "FAILED" if failed else "ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
